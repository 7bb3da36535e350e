"""Messages keybot sends outside the progress thread: notifications (DMs, channel, manager) and leak warnings.

Notification rows were redacted when enqueued; everything is escaped (and so redacted) again here, because a
message is the last exit before text reaches people and Slack's own logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from bot.notifications.models import Notification
from bot.notifications.render import cost_text
from bot.slack import ids, limits
from bot.slack.blocks.alert_page import page_from_facts
from bot.slack.blocks.alerts import alert_page_blocks
from bot.slack.blocks.common import Block, actions, button, context, fields, header, section

KIND_MARK = {
    "owner_dm": "🔑",
    "backup_dm": "🔑",
    "channel": "📣",
    "manager_summary": "📊",
    "consumer": "🔁",
    "emergency_dm": "🚨",
}
SECRET_KINDS = {
    "openai_project": "OpenAI project key",
    "openai_service_account": "OpenAI service-account key",
    "openai_admin": "OpenAI admin key",
    "openai_legacy": "OpenAI user key",
    "openai_other": "OpenAI key",
    "anthropic": "Anthropic key",
    "aws_access_key": "AWS access key id",
    "github_token": "GitHub token",
    "slack_token": "Slack token",
    "stripe_live": "Stripe live key",
    "google_api_key": "Google API key",
}
MAX_HITS_SHOWN = 10
ALERT_KINDS = frozenset({"alert_page", "alert_update"})


def alert_notification_blocks(facts: dict[str, Any]) -> tuple[str, list[Block]]:
    """An anomaly page (or its update) from the outbox row's facts; ValueError when they name no alert."""
    return alert_page_blocks(page_from_facts(facts))


def _fact(facts: dict[str, Any], name: str, limit: int = 200) -> str | None:
    value = facts.get(name)
    if value is None or value == "" or value == []:
        return None
    return limits.mrkdwn(str(value), limit)


def _fact_fields(kind: str, facts: dict[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str | None]] = [
        ("Key", limits.code(str(facts["key_name"])) if facts.get("key_name") else None),
        ("Redacted", limits.code(str(facts["redacted"])) if facts.get("redacted") else None),
        ("Environment", _fact(facts, "environment", 40)),
        ("Done by", limits.mention(str(facts["actor"])) if facts.get("actor") else None),
        ("Mode", _fact(facts, "mode", 32)),
        ("Incident", _fact(facts, "incident", 20)),
    ]
    if kind == "manager_summary":
        exposure = facts.get("exposure") or {}
        pairs += [
            ("Time to contain", _fact(facts, "time_to_contain", 60) or "unknown"),
            ("Requests while exposed", limits.mrkdwn(str(exposure.get("requests", "unknown")), 40)),
            ("Tokens while exposed", limits.mrkdwn(str(exposure.get("tokens", "unknown")), 40)),
            ("Cost while exposed", limits.mrkdwn(cost_text(exposure.get("cost_usd")), 40)),
        ]
    else:
        pairs += [
            ("Vault path", limits.code(str(facts["vault_path"]), 300) if facts.get("vault_path") else None),
            ("New version", _fact(facts, "new_version", 20)),
            ("New key id", limits.code(str(facts["new_key_id"])) if facts.get("new_key_id") else None),
        ]
    return [(label, value) for label, value in pairs if value is not None][: limits.SECTION_FIELDS]


def _redeployed_button(kind: str, facts: dict[str, Any], run_id: str | None) -> list[Block]:
    """Consumers confirm they redeployed; staged mode revokes the old key once all have (or later)."""
    consumer = facts.get("consumer")
    if kind != "consumer" or not consumer or not run_id or facts.get("mode") == "emergency":
        return []
    ref = ids.ActionRef(kind="run", id=run_id, step="distribute", extra={"consumer": str(consumer)[:120]})
    return [
        actions([button("Redeployed", ids.REDEPLOYED, ref, style="primary")], block_id="consumer_actions")
    ]


def notification_blocks(notification: Notification) -> tuple[str, list[Block]]:
    """Owner/backup DMs, channel and manager summaries, consumer and emergency messages, anomaly pages.

    The body (rendered by ``bot.notifications.render``) says what happened and what to do; the fields
    repeat the facts a reader scans for: key, who, mode, incident, Vault path and version.
    """
    facts = notification.facts or {}
    kind = notification.kind
    if kind in ALERT_KINDS:
        try:
            return alert_notification_blocks(facts)
        except ValueError:
            pass  # facts that name no alert: shown like any other notification, with no buttons
    mark = KIND_MARK.get(kind, "ℹ️")
    blocks = [
        header(f"{mark} {notification.subject}", block_id="notification_header"),
        section(limits.mrkdwn(notification.body, 2900), block_id="notification_body"),
    ]
    pairs = _fact_fields(kind, facts)
    if pairs:
        blocks += fields(pairs, block_id="notification_facts")
    blocks += _redeployed_button(kind, facts, notification.run_id)
    footer = []
    if facts.get("drill"):
        footer.append("🧪 *Drill*: practice run, no production change")
    if facts.get("run_id") or notification.run_id:
        footer.append(f"run `{limits.mrkdwn(str(facts.get('run_id') or notification.run_id), 60)}`")
    footer.append("keybot never shows key values; the replacement lives only in Vault")
    blocks.append(context(" · ".join(footer), block_id="notification_footer"))
    return limits.mrkdwn(notification.subject, limits.FALLBACK_TEXT), limits.fit_blocks(blocks)


class LeakHit(NamedTuple):
    """One secret the leak watcher found: its kind, redacted form and, if registered, the key it is.

    ``fingerprint`` (keyed HMAC, never the value) lets a Revoke button find an unregistered secret again.
    """

    kind: str
    redacted: str
    key_name: str | None
    owners: Sequence[str]
    key_id: int | None = None
    fingerprint: str | None = None


#: A hit as callers may pass it: a LeakHit, or a tuple (kind, redacted, key name, owners[, key id]).
LeakHitLike = (
    LeakHit
    | tuple[str, str, str | None, Sequence[str]]
    | tuple[str, str, str | None, Sequence[str], int | None]
)


class LeakIncident(NamedTuple):
    """The unowned incident the leak watcher opened for the unregistered secrets in one message."""

    id: int
    reference: str


def _hit_block(index: int, hit: LeakHit, offer_revoke: bool, incident: LeakIncident | None) -> Block:
    what = SECRET_KINDS.get(hit.kind, hit.kind.replace("_", " "))
    line = f"• {limits.mrkdwn(what, 60)} {limits.code(hit.redacted, 80)}"
    if hit.key_name is None:
        if incident is None or hit.fingerprint is None:
            line += " is *not in the registry*: find its owner and revoke it at the vendor."
            return section(line, block_id=f"leak_hit_{index}")
        line += (
            f" is *not in the registry*; keybot opened *{limits.mrkdwn(incident.reference, 20)}*. "
            "*Revoke…* looks it up at the provider and opens the revoke form, or says what to do."
        )
        ref = ids.ActionRef(kind="incident", id=str(incident.id), extra={"fp": hit.fingerprint})
        button_ = button("Revoke…", ids.REVOKE_FROM_LEAK, ref, style="danger") if offer_revoke else None
        return section(line, block_id=f"leak_hit_{index}", accessory=button_)
    owners = " ".join(limits.mention(o) for o in hit.owners) or "nobody (unowned key)"
    line += f" is registered as *{limits.mrkdwn(hit.key_name, 200)}*. Owners: {owners}"
    accessory = None
    if offer_revoke:
        ref = (
            ids.ActionRef(kind="key", id=str(hit.key_id))
            if hit.key_id is not None
            else ids.ActionRef(kind="key", id=hit.key_name, extra={"by": "name"})
        )
        accessory = button("Revoke & replace…", ids.REVOKE_FROM_LEAK, ref, style="danger")
    return section(line, block_id=f"leak_hit_{index}", accessory=accessory)


def leak_warning(
    poster: str,
    hits: Sequence[LeakHitLike],
    *,
    offer_revoke: bool,
    ask_delete: bool,
    incident: LeakIncident | None = None,
) -> tuple[str, list[Block]]:
    """The leak watcher's in-thread reply: what was posted (redacted), whose key it is, and what to do now.

    ``incident``: the one keybot opened for the unregistered secrets; they then get a Revoke button too.
    """
    found = [h if isinstance(h, LeakHit) else LeakHit(*h) for h in hits]
    count = "a secret" if len(found) == 1 else f"{len(found)} secrets"
    blocks = [
        section(
            f"🚨 {limits.mention(poster)} posted what looks like {count}. Treat it as leaked: deleting the "
            "message does not un-leak it.",
            block_id="leak_intro",
        )
    ]
    blocks += [_hit_block(i, hit, offer_revoke, incident) for i, hit in enumerate(found[:MAX_HITS_SHOWN])]
    if len(found) > MAX_HITS_SHOWN:
        blocks.append(limits.more_note(len(found) - MAX_HITS_SHOWN, noun="secrets"))
    if ask_delete:
        blocks.append(
            section(
                f"{limits.mention(poster)}, please *delete your message* (⋯ → Delete message); keybot "
                "cannot delete it for you. Then tell the owners where else it was pasted.",
                block_id="leak_delete",
            )
        )
    registered = any(h.key_name for h in found)
    revocable = registered or (incident is not None and any(h.fingerprint for h in found))
    hint = "Press *Revoke &amp; replace…* to start the runbook" if offer_revoke and registered else None
    if offer_revoke and not registered and revocable:
        hint = "Press *Revoke…* to start the runbook"
    blocks.append(
        context(
            hint or "Use `/revoke-key` with the redacted value to start the runbook",
            "keybot shows only redacted forms and stores fingerprints, never values",
            block_id="leak_footer",
        )
    )
    text = limits.mrkdwn(
        f"{poster} posted what looks like {count}: " + ", ".join(h.redacted for h in found[:MAX_HITS_SHOWN]),
        limits.FALLBACK_TEXT,
    )
    return text, limits.fit_blocks(blocks)
