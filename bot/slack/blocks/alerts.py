"""Anomaly pages: the owner's DM and each escalation step (backup, team channel, manager), the update once
someone acknowledged, and the one-line alert App Home and the key card show.

Pure functions of :class:`~bot.slack.blocks.alert_page.AlertPage` (the page's facts; the traffic text is
in :mod:`bot.slack.blocks.sparkline`), so golden files pin every step exactly. Buttons carry the alert id
and the version the page showed; the domain refuses a click on any other version.
"""

from __future__ import annotations

import re

from bot.slack import ids, limits
from bot.slack.blocks.alert_page import MAX_METRICS
from bot.slack.blocks.alert_page import AlertPage as AlertPage  # re-exported for key_card.py
from bot.slack.blocks.common import Block, actions, button, confirm, context, fields, header, section, when
from bot.slack.blocks.sparkline import KeyTraffic as KeyTraffic  # re-exported for key_card.py
from bot.slack.blocks.sparkline import amount
from bot.slack.blocks.sparkline import traffic_line as traffic_line  # re-exported for key_card.py

STEPS = ("owner", "backup", "channel", "manager")
CLOSED = {"acknowledged", "resolved", "false_positive"}
_MENTION = re.compile(r"^<!subteam\^[A-Z0-9]{2,20}(\|@?[\w.\-]{1,80})?>$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,20}$")
_STEP_NAMES = {
    "owner": "the owner",
    "backup": "the backup owner",
    "channel": "the team channel",
    "manager": "the manager",
}
_METRIC_NAMES = {
    "requests": "Requests/min",
    "tokens": "Tokens/min",
    "cost_usd": "Cost/min (USD)",
    "status_401": "401s/min",
    "status_429": "429s/min",
}


def _group(mention: str | None) -> str:
    """The on-call group as a Slack mention when it is one, else escaped text."""
    if not mention:
        return ""
    if _MENTION.match(mention):
        return mention
    if _GROUP_ID.match(mention):
        return f"<!subteam^{mention}>"
    return limits.escape(mention)


def _recipient(who: str | None) -> str:
    if who and who[:1] in "CG":
        return limits.channel(who)
    return limits.mention(who)


def _title(page: AlertPage) -> str:
    return f"*{limits.mrkdwn(page.key_name, 200)}* ({limits.mrkdwn(page.environment, 40)})"


def _intro(page: AlertPage) -> str:
    since = f" since {when(page.opened_at)}" if page.opened_at else ""
    key = _title(page)
    if page.step == "backup":
        return (
            f"You are the backup owner of {key}. Its owner has not acknowledged this page{since}. "
            "Please check the traffic below, or revoke the key."
        )
    if page.step == "channel":
        who = _group(page.mention)
        lead = f"{who} " if who else ""
        return (
            f"{lead}{key} shows unusual traffic and neither its owner nor its backup has acknowledged"
            f"{since}. Whoever is on call: please look."
        )
    if page.step == "manager":
        return (
            f"Escalated to you as the team's manager: {key} shows unusual traffic and nobody acknowledged"
            f"{since}, not in the team channel either."
        )
    return (
        f"keybot saw traffic on {key} that does not look like its usual pattern{since}. "
        "If it was you or your service, say so; if not, revoke the key now."
    )


def _numbers(page: AlertPage) -> list[tuple[str, str]]:
    pairs = []
    for name, seen in list(page.observed.items())[:MAX_METRICS]:
        label = _METRIC_NAMES.get(name, name.replace("_", " "))
        base = page.baseline.get(name)
        usual = f" (baseline {amount(base)})" if base is not None else ""
        pairs.append((limits.mrkdwn(label, 60), f"*{amount(seen)}*{usual}"))
    pairs.append(("Score", f"{page.score:.2f} of 1"))
    pairs.append(("Since", when(page.opened_at) if page.opened_at else "unknown"))
    return pairs[: limits.SECTION_FIELDS]


def _next_line(page: AlertPage) -> str:
    """When the chain moves on: ``Pages <@backup> at 14:32 UTC unless acknowledged``."""
    step = STEPS.index(page.step) + 1 if page.step in STEPS else None
    where = f"Escalation step {step} of {len(STEPS)} ({_STEP_NAMES[page.step]})" if step else "Escalation"
    if page.next_step_at is None:
        return f"{where} · the last step: nobody else is paged"
    who = _recipient(page.next_recipient) if page.next_recipient else None
    target = who or _STEP_NAMES.get(page.next_step or "", "the next step")
    return f"{where} · pages {target} at {when(page.next_step_at)} unless acknowledged"


def _signal_lines(page: AlertPage) -> str:
    lines = [f"• {limits.mrkdwn(s, 300)}" for s in page.signals] or ["• traffic unlike the key's usual"]
    return "*What was seen*\n" + "\n".join(lines)


def alert_buttons(page: AlertPage) -> Block:
    ref = ids.alert_ref(page.alert_id, page.version)
    revoke_confirm = confirm(
        "Revoke this key now?",
        f"keybot starts the *emergency* runbook on {_title(page)}: it revokes the key first, then "
        "replaces it. Services using it fail until they get the replacement.",
        "Revoke now",
        style="danger",
    )
    return actions(
        [
            button("Acknowledge", ids.ACK_ALERT, ref, style="primary"),
            button("That was me (expected)", ids.EXPECTED_ALERT, ref),
            button("Revoke now", ids.REVOKE_ALERT, ref, style="danger", confirm_with=revoke_confirm),
        ],
        block_id="alert_actions",
    )


def alert_text(page: AlertPage) -> str:
    """The notification preview: key and what was seen, never a value."""
    seen = ", ".join(page.signals[:3]) or "unusual traffic"
    return limits.mrkdwn(f"🚨 {page.key_name} ({page.environment}): {seen}", limits.FALLBACK_TEXT)


def _common(page: AlertPage, mark: str) -> list[Block]:
    return [
        header(f"{mark} Unusual traffic: {page.key_name} ({page.environment})", block_id="alert_header"),
    ]


def alert_page_blocks(page: AlertPage, spark: str | None = None) -> tuple[str, list[Block]]:
    """The page for ``page.step``: what was seen, the numbers, when the chain moves on, three buttons.

    A page whose alert is already closed renders as :func:`alert_closed_blocks` (no buttons to press).
    """
    if page.state in CLOSED:
        return alert_closed_blocks(page)
    blocks = [
        *_common(page, "🚨"),
        section(_intro(page), block_id="alert_intro"),
        section(_signal_lines(page), block_id="alert_signals"),
        *fields(_numbers(page), block_id="alert_numbers"),
    ]
    if spark:
        blocks.append(context(f"Requests/min, last hours: `{spark}`", block_id="alert_spark"))
    blocks += [
        context(_next_line(page), block_id="alert_next"),
        alert_buttons(page),
        context(
            f"alert #{page.alert_id} · key #{page.key_id}"
            + (" · the chart against the baseline follows in the thread" if spark else "")
            + " · keybot never shows key values",
            block_id="alert_footer",
        ),
    ]
    return alert_text(page), limits.fit_blocks(blocks, keep_tail=3)


def closed_line(page: AlertPage) -> str:
    """Who closed the alert and what it means, in one line (also App Home's alert state)."""
    who = limits.mention(page.acked_by) if page.acked_by else "someone"
    if page.state == "false_positive":
        return (
            f"👍 Marked expected by {who}: keybot raised this key's baseline for this pattern, so the same "
            "traffic does not page again."
        )
    if page.state == "resolved":
        return f"✅ Resolved by {who}."
    if page.state == "acknowledged":
        return f"👀 Acknowledged by {who}: the escalation stopped."
    return f"🔴 Open · paged {_STEP_NAMES.get(page.step, page.step)}"


def alert_closed_blocks(page: AlertPage) -> tuple[str, list[Block]]:
    """The page after someone answered it: who did, what happens now; the buttons are gone."""
    mark = "👍" if page.state == "false_positive" else "✅"
    lines = [closed_line(page)]
    if page.run_id:
        lines.append(f"🚨 Emergency revocation started: run `{limits.mrkdwn(page.run_id, 60)}`.")
    blocks = [
        *_common(page, mark),
        section("\n".join(lines), block_id="alert_closed"),
        section(_signal_lines(page), block_id="alert_signals"),
        *fields(_numbers(page), block_id="alert_numbers"),
        context(f"alert #{page.alert_id} · key #{page.key_id} · keybot never shows key values",
                block_id="alert_footer"),
    ]  # fmt: skip
    text = limits.mrkdwn(f"{page.key_name} ({page.environment}): {closed_line(page)}", limits.FALLBACK_TEXT)
    return text, limits.fit_blocks(blocks, keep_tail=1)


def alert_line(page: AlertPage) -> str:
    """One open alert for App Home and the key card: key, what was seen, its state, since when."""
    seen = limits.mrkdwn(", ".join(page.signals[:3]) or "unusual traffic", 300)
    since = f" · since {when(page.opened_at)}" if page.opened_at else ""
    return f"• 🚨 {_title(page)} · {seen} · {closed_line(page)}{since}"
