"""Deliver outbox notifications to Slack: the `Sender` that `bot.notifications.service` drives.

Person-facing kinds (owner/backup/consumer/emergency DMs, manager summaries) go to the person's DM;
``channel`` goes to the team channel. Every message carries Slack message metadata naming the row's
dedupe key, so a later reconciliation can find it. Any failure raises: ``deliver_pending`` records the
error text (with its explanation, e.g. "invite it with /invite @keybot") on the row and retries it later
with backoff, which also covers permanent errors that a human may fix meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bot.notifications.models import Notification
from bot.slack.api import PermanentSlackError, SlackAPI

__all__ = [
    "CHANNEL_KINDS",
    "DM_KINDS",
    "METADATA_EVENT_TYPE",
    "Renderer",
    "SlackSender",
    "default_render",
    "notification_metadata",
]

Renderer = Callable[[Notification], tuple[str, list[dict[str, Any]]]]

DM_KINDS = frozenset({"owner_dm", "backup_dm", "consumer", "emergency_dm", "manager_summary", "manager"})
CHANNEL_KINDS = frozenset({"channel"})
METADATA_EVENT_TYPE = "keybot_notification"
SECTION_LIMIT = 3000  # characters per section text (Slack's limit)
TEXT_LIMIT = 39_000  # Slack refuses message text over 40,000 characters
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def default_render(notification: Notification) -> tuple[str, list[dict[str, Any]]]:
    """Fallback text plus one mrkdwn section; the real Block Kit renderers live in ``bot.slack.blocks``."""
    text = _clip(f"{notification.subject}\n{notification.body}", TEXT_LIMIT)
    section = _clip(f"*{notification.subject}*\n{notification.body}", SECTION_LIMIT)
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": section}}]


def notification_metadata(notification: Notification) -> dict[str, Any]:
    """Slack message metadata naming the outbox row (its dedupe key holds ids only, never a secret)."""
    return {"event_type": METADATA_EVENT_TYPE, "event_payload": {"dedupe": notification.dedupe_key}}


class SlackSender:
    """`Sender` for the notifications outbox, through the one Slack wrapper.

    ``open_dms=True`` resolves a DM channel with ``conversations.open`` first (needs ``im:write``);
    the default posts with the user id as channel, which Slack delivers to the bot's DM with that person.
    """

    def __init__(self, api: SlackAPI, *, render: Renderer | None = None, open_dms: bool = False) -> None:
        self.api = api
        self.render: Renderer = render or default_render
        self.open_dms = open_dms

    def destination(self, notification: Notification) -> str:
        """The channel to post to; a DM kind addressed to something other than a person is refused."""
        recipient = notification.recipient.strip()
        is_user = _USER_ID.fullmatch(recipient) is not None
        if notification.kind in CHANNEL_KINDS or (notification.kind not in DM_KINDS and not is_user):
            return recipient
        if not is_user:
            raise PermanentSlackError("invalid_recipient", method="chat.postMessage", detail=recipient[:40])
        return self.api.open_dm(recipient) if self.open_dms else recipient

    def send(self, notification: Notification) -> None:
        channel = self.destination(notification)
        text, blocks = self.render(notification)
        self.api.post_message(channel, text, blocks, metadata=notification_metadata(notification))

    def was_delivered(self, notification: Notification) -> bool | None:
        """Always None (unknown), on purpose.

        A real check would read ``conversations.history`` with ``include_all_metadata`` and look for our
        dedupe key; that needs the ``*:history`` read scopes keybot deliberately does not request (least
        privilege: it never reads people's conversations) and is rate-limited per channel. With None the
        outbox marks an interrupted send FAILED instead of resending it: at most one copy of a page,
        and the failure stays visible on the run.
        """
        return None
