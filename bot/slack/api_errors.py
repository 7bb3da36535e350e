"""Slack API errors: which codes are worth retrying, and one plain sentence per code for a human.

Split out of :mod:`bot.slack.api` (which re-exports every name here) to keep each file short. A failed
call raises a :class:`PermanentSlackError` (retrying cannot help) or a :class:`TransientSlackError` (a later
attempt may succeed); each carries ``.code`` (Slack's, or ``http_<status>``/``connection_error``) and
``.explanation``: what to do. Error texts pass through :func:`bot.secrets.redact`.
"""

from __future__ import annotations

import re
from typing import Any

from bot.secrets import redact

__all__ = [
    "PermanentSlackError",
    "SlackError",
    "TransientSlackError",
    "explain",
    "is_transient_code",
    "slack_error",
]

_AUTH_HELP = (
    "Slack rejected the bot token: check SLACK_BOT_TOKEN (the xoxb- Bot User OAuth Token of the installed "
    "app; reinstall the app if the token was revoked or the app removed)"
)
_LAYOUT_BUG = "Slack rejected the message layout (Block Kit); this is a keybot bug, report it with this error"
_TRIGGER = "the button/command is older than 3 s; try again"
_RESPONSE_URL = "the command's response_url has expired (30 minutes, 5 uses at most); run the command again"
_SLACK_DOWN = "Slack had an internal problem (see https://slack-status.com); the call will be retried later"

_RATE = "Slack is rate-limiting keybot; it waited as Retry-After asked and will try again later"
_NO_USER = "Slack does not know that user id: check the owner/backup/manager ids in the registry"

#: Slack error code -> what a human should do. Codes not listed here are permanent with a generic hint.
_PERMANENT: dict[str, str] = {
    "not_in_channel": "keybot is not in that channel: invite it with /invite @keybot, then retry",
    "channel_not_found": (
        "Slack cannot find that channel (wrong id, deleted, or private without keybot): check the channel "
        "in the registry and invite keybot with /invite @keybot"
    ),
    "is_archived": "the channel is archived: unarchive it or set another team channel in the registry",
    **dict.fromkeys(("expired_trigger_id", "invalid_trigger_id"), _TRIGGER),
    "exchanged_trigger_id": "that click was already used to open a window; click the button again",
    **dict.fromkeys(("invalid_blocks", "invalid_blocks_format"), _LAYOUT_BUG),
    "invalid_arguments": "Slack rejected the request's arguments; this is a keybot bug, report it",
    "invalid_metadata_format": "Slack rejected the message metadata; this is a keybot bug, report it",
    "msg_too_long": "the message exceeds Slack's 40,000-character limit; keybot should have shortened it",
    "no_text": "keybot tried to post an empty message; this is a keybot bug, report it",
    **dict.fromkeys(("user_not_found", "users_not_found"), _NO_USER),
    "user_not_in_channel": "that person is not in the channel, so a message only they see cannot reach them",
    "cannot_dm_bot": "the recipient is a bot and cannot get DMs: put a person's user id in the registry",
    "invalid_recipient": "the recipient is not a Slack user id (like U024BE7LH): fix the registry entry",
    **dict.fromkeys(
        ("not_authed", "invalid_auth", "token_revoked", "token_expired", "account_inactive"), _AUTH_HELP
    ),
    "restricted_action": (
        "a workspace setting stops keybot from doing this here (e.g. an announcement-only channel): "
        "ask a Slack admin, or use another channel"
    ),
    "hash_conflict": "the view changed since keybot read it (someone else updated it); reload it and retry",
    "not_found": "that view is gone (closed, or too old); open it again",
    "message_not_found": "that message no longer exists in the channel (deleted?)",
    "cant_update_message": "keybot can only edit messages it posted itself",
    "edit_window_closed": "the message is too old to edit in this workspace",
    "no_such_subteam": "that user group does not exist: check the group id in keybot's configuration",
    "ekm_access_denied": "the workspace's Enterprise Key Management denied access; ask a Slack admin",
    "team_access_not_granted": "keybot is not installed for that workspace; install the app there",
    "unknown_method": "the Slack API does not know this method: check SLACK_API_URL (it must end with /api/)",
    **dict.fromkeys(("expired_url", "used_url", "no_service"), _RESPONSE_URL),
}
_TRANSIENT: dict[str, str] = {
    **dict.fromkeys(("ratelimited", "rate_limited"), _RATE),
    **dict.fromkeys(("internal_error", "fatal_error", "service_unavailable", "request_timeout"), _SLACK_DOWN),
    "connection_error": (
        "keybot cannot reach Slack (network, DNS, proxy or SLACK_API_URL); the call will be retried later"
    ),
}
_MANIFEST_HINT = "oauth_config.scopes.bot in slack-manifest.yaml"


def is_transient_code(code: str) -> bool:
    """Could a later attempt succeed? (HTTP 5xx and 429 count as transient, like Slack's own errors.)"""
    if code in _TRANSIENT:
        return True
    status = code.removeprefix("http_")
    return status.isdigit() and (int(status) >= 500 or int(status) in (408, 429))


def explain(code: str, *, needed: str | None = None) -> str:
    """One sentence for a human: what went wrong and what to do. ``needed`` names a missing OAuth scope."""
    if code == "missing_scope":
        scope = needed if needed and re.fullmatch(r"[a-z:._,]{1,200}", needed) else None
        what = f"the OAuth scope {scope}" if scope else "an OAuth scope this call needs"
        return (
            f"the bot token lacks {what}: add it under {_MANIFEST_HINT}, reinstall the app, "
            "and update SLACK_BOT_TOKEN if it changed"
        )
    if code in _PERMANENT:
        return _PERMANENT[code]
    if code in _TRANSIENT:
        return _TRANSIENT[code]
    if code.startswith("http_"):
        if is_transient_code(code):
            return f"Slack answered HTTP {code[5:]}; keybot retried and will try again later"
        return f"Slack answered HTTP {code[5:]}: check SLACK_API_URL (it must end with /api/)"
    return f"Slack answered {code!r}; see https://api.slack.com/methods for that method's errors"


class SlackError(Exception):
    """A failed Slack call. ``code``: Slack's error code; ``explanation``: what a human should do."""

    def __init__(
        self,
        code: str,
        *,
        method: str | None = None,
        status: int | None = None,
        needed: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.method = method
        self.status = status
        self.needed = needed
        self.detail = redact(detail)[:500] if detail else None
        self.retry_after = retry_after
        self.explanation = explain(code, needed=needed)
        where = f"{method}: " if method else ""
        extra = f" ({self.detail})" if self.detail else ""
        super().__init__(redact(f"{where}{code}: {self.explanation}{extra}"))

    @property
    def transient(self) -> bool:
        return isinstance(self, TransientSlackError)


class PermanentSlackError(SlackError):
    """Retrying the same call cannot help; a human (or a code fix) must act first."""


class TransientSlackError(SlackError):
    """Rate limit after retries, Slack 5xx, or the network; a later attempt may succeed."""


def slack_error(code: str, **kwargs: Any) -> SlackError:
    """The right subclass for ``code``."""
    cls = TransientSlackError if is_transient_code(code) else PermanentSlackError
    return cls(code, **kwargs)
