"""The App Home tab: open alerts on my keys, my keys (with their recent traffic), rotations due, my runs,
open incidents; each capped, each with an empty text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.views import View

from bot.incidents.models import Incident
from bot.registry.models import Key
from bot.registry.render import rotation_state
from bot.reminders.types import DueKey
from bot.runbooks.models import Run
from bot.slack import ids, limits
from bot.slack.blocks.alert_page import AlertPage
from bot.slack.blocks.alerts import alert_line
from bot.slack.blocks.common import Block, ago, button, chunk_lines, context, divider, header, section, when
from bot.slack.blocks.progress import RUN_MARK
from bot.slack.blocks.reminders import rotation_line
from bot.slack.blocks.sparkline import KeyTraffic, traffic_line

MAX_KEYS = 25
MAX_DUE = 10
MAX_RUNS = 10
MAX_INCIDENTS = 10
MAX_ALERTS = 10


def _capped(lines: list[str], total: int, shown: int, see: str) -> list[str]:
    if total > shown:
        lines.append(f"{limits.ELLIPSIS} {total - shown} more not shown — see `{see}`")
    return lines


def _key_lines(user_id: str, keys: Sequence[Key], now: datetime, rotation: Mapping[int, DueKey]) -> list[str]:
    lines = [
        f"• *{limits.mrkdwn(k.name, 200)}* · {limits.mrkdwn(k.environment, 40)} · "
        f"{limits.mrkdwn(k.status.value, 20)} · "
        + (rotation_line(rotation[k.id]) if k.id in rotation else limits.mrkdwn(rotation_state(k, now), 100))
        for k in keys[:MAX_KEYS]
    ]
    return _capped(lines, len(keys), MAX_KEYS, f"keybot registry list --owner {user_id}")


def _run_lines(runs: Sequence[Run]) -> list[str]:
    lines = [
        f"• {RUN_MARK[r.status]} `{limits.mrkdwn(r.id, 60)}` · key #{r.key_id} · "
        f"{limits.mrkdwn(r.runbook, 64)} ({limits.mrkdwn(r.mode, 32)}) · "
        f"{r.status.value.replace('_', ' ')} · started {when(r.created_at)}"
        + (" · [DRILL]" if r.drill else "")
        for r in runs[:MAX_RUNS]
    ]
    return _capped(lines, len(runs), MAX_RUNS, "keybot runs list")


def _incident_lines(incidents: Sequence[Incident], now: datetime) -> list[str]:
    lines = [
        f"• *{i.reference}* {limits.mrkdwn(i.title, 200)} · {limits.mrkdwn(i.severity.upper(), 8)} · "
        f"{i.status.value} · opened {ago(i.opened_at, now)} by {limits.mention(i.opened_by)}"
        for i in incidents[:MAX_INCIDENTS]
    ]
    return _capped(lines, len(incidents), MAX_INCIDENTS, "keybot runs list")


def _due_blocks(due: Sequence[tuple[Key, str]], rotation: Mapping[int, DueKey]) -> list[Block]:
    """Each due key with its state; the reminders' view (snoozed until, next reminder) when known."""
    blocks = []
    for index, (key, when_due) in enumerate(due[:MAX_DUE]):
        shown = rotation_line(rotation[key.id]) if key.id in rotation else limits.mrkdwn(when_due, 200)
        ref = ids.ActionRef(kind="key", id=str(key.id))
        blocks.append(
            section(
                f"*{limits.mrkdwn(key.name, 200)}* ({limits.mrkdwn(key.environment, 40)}): {shown}",
                block_id=f"home_due_{index}",
                accessory=button("Rotate now", ids.ROTATE_NOW, ref),
            )
        )
    if len(due) > MAX_DUE:
        blocks.append(limits.more_note(len(due) - MAX_DUE, "keybot registry list --due 30", "keys"))
    return blocks


def _traffic_lines(keys: Sequence[Key], traffic: Mapping[int, KeyTraffic]) -> list[str]:
    """Each of my keys that had traffic: a sparkline of requests per minute and the window's totals."""
    shown = [k for k in keys[:MAX_KEYS] if k.id in traffic]
    return [
        f"• *{limits.mrkdwn(k.name, 200)}* ({limits.mrkdwn(k.environment, 40)}) {traffic_line(traffic[k.id])}"
        for k in shown
    ]


def _traffic_blocks(lines: list[str]) -> list[Block]:
    if not lines:
        return []
    title = section("*Traffic, last 6 h* (requests per minute)", block_id="home_traffic_title")
    return [title, *_listing(lines, "", "home_traffic")]


def _alert_blocks(alerts: Sequence[AlertPage]) -> list[Block]:
    """Open alerts on my keys, with their state; none: the section is left out (most days)."""
    if not alerts:
        return []
    lines = _capped(
        [alert_line(a) for a in alerts[:MAX_ALERTS]], len(alerts), MAX_ALERTS, "keybot alerts list"
    )
    return [
        section(f"*🚨 Open alerts on your keys* ({len(alerts)})", block_id="home_alerts_title"),
        *_listing(lines, "", "home_alerts"),
        divider(),
    ]


def _listing(lines: list[str], empty: str, block_id: str) -> list[Block]:
    if not lines:
        return [context(empty, block_id=f"{block_id}_empty")]
    return [section(text, block_id=f"{block_id}_{i}") for i, text in enumerate(chunk_lines(lines))]


def app_home(
    user_id: str,
    my_keys: Sequence[Key],
    due: Sequence[tuple[Key, str]],
    my_runs: Sequence[Run],
    open_incidents: Sequence[Incident],
    now: datetime,
    *,
    notice: str | None = None,
    rotation: Mapping[int, DueKey] | None = None,
    traffic: Mapping[int, KeyTraffic] | None = None,
    alerts: Sequence[AlertPage] = (),
) -> dict[str, Any]:
    """A ``home`` view for ``views.publish``; ``due`` pairs a key with its human due text.

    ``notice`` answers a click on this tab (Slack gives App Home clicks no channel to answer in), so it
    comes first, where the person who clicked is looking. ``rotation`` (key id → the reminders' view)
    shows snoozes and the next reminder day of the keys due. ``traffic`` (key id → the last hours) and
    ``alerts`` (open alerts on my keys) come from anomaly detection; either may be empty.
    """
    spark = _traffic_lines(my_keys, traffic or {})
    blocks: list[Block] = [
        header("keybot", block_id="home_header"),
        *([section(f"📣 {limits.mrkdwn(notice, 2800)}", block_id="home_notice")] if notice else []),
        section(
            f"Hi {limits.mention(user_id)}. Leaked a key? Run `/revoke-key` with its name or redacted "
            "value (`sk-...Xy9Q`); `/key-owner` tells you who owns one.",
            block_id="home_intro",
        ),
        divider(),
        *_alert_blocks(alerts),
        section(f"*Your keys* ({len(my_keys)})", block_id="home_keys_title"),
        *_listing(
            _key_lines(user_id, my_keys, now, rotation or {}),
            "You own no keys in the registry. Ask your team lead to add you as an owner.",
            "home_keys",
        ),
        *_traffic_blocks(spark),
        divider(),
        section(f"*Rotations due* ({len(due)})", block_id="home_due_title"),
        *(_due_blocks(due, rotation or {}) or [context("Nothing due. 🎉", block_id="home_due_empty")]),
        divider(),
        section(f"*Your runs* ({len(my_runs)})", block_id="home_runs_title"),
        *_listing(_run_lines(my_runs), "No runs started by you.", "home_runs"),
        divider(),
        section(f"*Open incidents* ({len(open_incidents)})", block_id="home_incidents_title"),
        *_listing(_incident_lines(open_incidents, now), "No open incidents.", "home_incidents"),
        context(f"Updated {when(now)}", block_id="home_footer"),
    ]
    view = View(type="home", blocks=limits.fit_blocks(blocks, limits.HOME_BLOCKS, keep_tail=1))
    return view.to_dict()
