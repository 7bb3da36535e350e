"""A key's card (who owns it, where it lives, how it is rotated) and the ``/key-owner`` reply built on it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.registry.models import Key, OwnerRole
from bot.registry.render import key_card
from bot.reminders.types import DueKey
from bot.slack import limits
from bot.slack.blocks.alerts import AlertPage, KeyTraffic, alert_line, traffic_line
from bot.slack.blocks.common import Block, button, chunk_lines, context, fields, header, section, when
from bot.slack.blocks.reminders import rotation_line
from bot.slack.ids import OPEN_REVOKE, ActionRef

MAX_CANDIDATES_SHOWN = 20
DRILL_TAGS = frozenset({"drill", "sandbox"})


def is_drill(key: Key) -> bool:
    """Sandbox keys (and keys tagged ``drill``) are practice targets: their runs are marked [DRILL]."""
    return key.environment == "sandbox" or bool(DRILL_TAGS & {t.lower() for t in key.tags or []})


def _mentions(users: Sequence[str], empty: str) -> str:
    return ", ".join(limits.mention(u) for u in users) or empty


def _card_values(key: Key, now: datetime, rotation: DueKey | None = None) -> dict[str, str]:
    """The registry's key card, with people and channels turned into mentions and ids into code spans;
    with the reminders' view of the key (``rotation``), its state, any snooze and the next reminder."""
    values = {label: limits.mrkdwn(value, 500) for label, value in key_card(key, now)}
    if rotation is not None:
        values["Rotation"] = rotation_line(rotation)
    values["Owners"] = _mentions(key.owner_ids(OwnerRole.OWNER), "nobody (unowned)")
    values["Backups"] = _mentions(key.owner_ids(OwnerRole.BACKUP), "none")
    if key.redacted:
        values["Redacted"] = limits.code(key.redacted)
    if key.vault_path:
        values["Vault path"] = limits.code(key.vault_path, 300)
    if key.team and key.team.slack_channel:
        values["Team"] += f" ({limits.channel(key.team.slack_channel)})"
    return values


FIELD_ORDER = (
    "Status",
    "Redacted",
    "Environment",
    "Team",
    "Owners",
    "Backups",
    "Provider",
    "Vault path",
    "Last rotated",
    "Rotation",
)


MAX_ALERTS_SHOWN = 5


def key_card_blocks(
    key: Key,
    now: datetime,
    traffic: str | None = None,
    rotation: DueKey | None = None,
    *,
    usage: KeyTraffic | None = None,
    alerts: Sequence[AlertPage] = (),
) -> list[Block]:
    """Header, open alerts, ten facts, consumers, traffic and a footer: what on-call checks before revoking.

    ``usage`` is the key's recent traffic from the usage store (a sparkline with totals); ``alerts`` its
    open anomaly alerts. ``traffic`` is the provider's own last-hour summary."""
    values = _card_values(key, now, rotation)
    drill = is_drill(key)
    blocks = [
        header(f"{'🧪 ' if drill else '🔑 '}{key.name}", block_id="key_header"),
        *fields([(label, values[label]) for label in FIELD_ORDER], block_id="key_fields"),
        section(f"*Consumers*\n{values['Consumers']}", block_id="key_consumers"),
    ]
    if alerts:
        lines = [alert_line(a) for a in alerts[:MAX_ALERTS_SHOWN]]
        if len(alerts) > MAX_ALERTS_SHOWN:
            lines.append(f"{limits.ELLIPSIS} {len(alerts) - MAX_ALERTS_SHOWN} more: `keybot alerts list`")
        blocks.insert(1, section("*🚨 Open alerts*\n" + "\n".join(lines), block_id="key_alerts"))
    if usage is not None:
        blocks.append(
            section(f"*Last {usage.hours} h of traffic*\n{traffic_line(usage)}", block_id="key_usage")
        )
    if traffic is not None:
        blocks.append(
            section(f"*Last hour of traffic*\n{limits.mrkdwn(traffic, 1500)}", block_id="key_traffic")
        )
    notes = [f"keybot key #{key.id}"]
    if key.tags:
        notes.append("tags: " + limits.mrkdwn(", ".join(key.tags), 300))
    if traffic is None and usage is None:
        notes.append("traffic: not available")
    notes.append(f"as of {when(now)}")
    footer = [" · ".join(notes)]
    if key.description:
        footer.append(limits.mrkdwn(key.description, 500))
    if drill:
        footer.append("🧪 *Drill target*: sandbox key, runs are marked [DRILL]")
    blocks.append(context(*footer, block_id="key_context"))
    return blocks


def _candidate_line(key: Key) -> str:
    team = limits.mrkdwn(key.team.name, 100) if key.team else "no team"
    owners = _mentions(key.owner_ids(OwnerRole.OWNER), "unowned")
    redacted = f" · {limits.code(key.redacted)}" if key.redacted else ""
    return (
        f"• `#{key.id}` *{limits.mrkdwn(key.name, 200)}* · {limits.mrkdwn(key.environment, 40)} · "
        f"{team} · owners {owners}{redacted}"
    )


def candidate_lines(candidates: Sequence[Key], limit: int = MAX_CANDIDATES_SHOWN) -> list[str]:
    """One line per candidate key, with a last line counting the ones left out."""
    lines = [_candidate_line(k) for k in candidates[:limit]]
    if len(candidates) > limit:
        lines.append(f"{limits.ELLIPSIS} {len(candidates) - limit} more not shown — narrow the query")
    return lines


PASTED_WARNING = (
    "⚠️ *What you typed looks like a live secret.* keybot did not store or repeat it, but it is now in "
    "your Slack history: treat it as leaked."
)


def key_owner_reply(
    matches: Sequence[Key],
    now: datetime,
    *,
    suggestions: Sequence[str] = (),
    query_was_secret: bool = False,
    traffic: str | None = None,
    rotation: DueKey | None = None,
    usage: KeyTraffic | None = None,
    alerts: Sequence[AlertPage] = (),
) -> tuple[str, list[Block]]:
    """The ephemeral ``/key-owner`` answer: one card, a list to choose from, or close names.

    The query itself is never echoed: it may be the secret.
    """
    if len(matches) == 1:
        key = matches[0]
        owners = ", ".join(key.owner_ids(OwnerRole.OWNER)) or "nobody"
        text = limits.mrkdwn(f"{key.name} ({key.environment}) is owned by {owners}", limits.FALLBACK_TEXT)
        blocks = key_card_blocks(key, now, traffic, rotation, usage=usage, alerts=alerts)
        if query_was_secret:
            revoke = button(
                "Revoke & replace…", OPEN_REVOKE, ActionRef(kind="key", id=str(key.id)), style="danger"
            )
            blocks.insert(0, section(PASTED_WARNING, block_id="secret_warning", accessory=revoke))
        return text, limits.fit_blocks(blocks)

    if matches:
        text = (
            f"{len(matches)} keys match; ask again with one of their ids (e.g. /key-owner #{matches[0].id})."
        )
        blocks = [
            section(
                f"*{len(matches)} keys match.* Which one did you mean? "
                f"Ask again with its id, e.g. `/key-owner #{matches[0].id}`.",
                block_id="ambiguous",
            )
        ]
        blocks += [section(t) for t in chunk_lines(candidate_lines(matches))]
        if query_was_secret:
            blocks.insert(0, section(PASTED_WARNING, block_id="secret_warning"))
        return text, limits.fit_blocks(blocks)

    text = "No key in the registry matches that."
    blocks = []
    if query_was_secret:
        blocks.append(
            section(
                PASTED_WARNING + "\nIt is *not in the registry*: revoke it at the vendor now, then tell "
                "the security channel where it was posted.",
                block_id="secret_warning",
            )
        )
    else:
        blocks.append(section("*No key in the registry matches that.*", block_id="no_match"))
    if suggestions:
        names = ", ".join(limits.code(s, 100) for s in suggestions[:10])
        blocks.append(section(f"Did you mean {names}?", block_id="suggestions"))
    blocks.append(
        context(
            "Try a key name, a keybot id like `#12`, a provider key id, or a redacted value like "
            "`sk-proj-...Xy9Q`.",
            block_id="help",
        )
    )
    return text, blocks
