"""Anomaly pages: the owner's DM and each escalation step (backup, team channel, manager), the update once
someone acknowledged, and the text sparkline App Home and the key card show.

Pure functions of :class:`AlertPage`, a frozen copy of what the alerts domain enqueued (the outbox row's
facts) or returns (its ``AlertView``), so golden files pin every step exactly. Buttons carry the alert id
and the version the page showed; the domain refuses a click on any other version.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.slack import ids, limits
from bot.slack.blocks.common import Block, actions, button, confirm, context, fields, header, section, when

BARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 60  # characters: six hours at one bar per six minutes
MAX_SIGNALS = 10
MAX_METRICS = 8
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


class AlertLike(Protocol):
    """The fields of the alerts domain's ``AlertView`` a page needs (duck-typed: no import of the domain)."""

    @property
    def id(self) -> int: ...
    @property
    def key_id(self) -> int: ...
    @property
    def key_name(self) -> str: ...
    @property
    def environment(self) -> str: ...
    @property
    def state(self) -> Any: ...
    @property
    def version(self) -> int: ...
    @property
    def signals(self) -> Sequence[str]: ...
    @property
    def score(self) -> float: ...
    @property
    def observed(self) -> Mapping[str, float]: ...
    @property
    def baseline(self) -> Mapping[str, float]: ...
    @property
    def opened_at(self) -> datetime: ...
    @property
    def acked_by(self) -> str | None: ...
    @property
    def step(self) -> Any: ...
    @property
    def next_step_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class AlertPage:
    """One page as shown: the alert, the step it is, and what comes next unless someone acknowledges."""

    alert_id: int
    version: int
    key_id: int
    key_name: str
    environment: str
    step: str = "owner"
    signals: tuple[str, ...] = ()
    observed: Mapping[str, float] = field(default_factory=dict)
    baseline: Mapping[str, float] = field(default_factory=dict)
    score: float = 0.0
    opened_at: datetime | None = None
    mention: str | None = None  # the on-call group, on the channel step
    next_step: str | None = None
    next_recipient: str | None = None
    next_step_at: datetime | None = None
    state: str = "open"
    acked_by: str | None = None
    run_id: str | None = None  # the emergency run Revoke now started


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _metrics(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for name, raw in list(value.items())[:MAX_METRICS]:
        number = _number(raw)
        if isinstance(name, str) and number is not None:
            out[name[:40]] = number
    return out


def _moment(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _text(value: object, limit: int = 200) -> str | None:
    return str(value)[:limit] if isinstance(value, str | int) and str(value) else None


def page_from_facts(facts: Mapping[str, Any]) -> AlertPage:
    """The page an ``alert_page``/``alert_update`` row describes; ValueError when it names no alert."""
    alert_id, version = _number(facts.get("alert_id")), _number(facts.get("alert_version"))
    if alert_id is None or alert_id != int(alert_id) or alert_id < 1:
        raise ValueError("alert facts name no alert")
    signals = facts.get("signals")
    return AlertPage(
        alert_id=int(alert_id),
        version=int(version) if version is not None else 0,
        key_id=int(_number(facts.get("key_id")) or 0),
        key_name=_text(facts.get("key_name")) or f"key #{facts.get('key_id')}",
        environment=_text(facts.get("environment"), 40) or "unknown",
        step=str(facts.get("step") or "owner")[:20],
        signals=tuple(str(s)[:300] for s in signals[:MAX_SIGNALS]) if isinstance(signals, list) else (),
        observed=_metrics(facts.get("observed")),
        baseline=_metrics(facts.get("baseline")),
        score=_number(facts.get("score")) or 0.0,
        opened_at=_moment(facts.get("opened_at")),
        mention=_text(facts.get("mention"), 120),
        next_step=_text(facts.get("next_step"), 20),
        next_recipient=_text(facts.get("next_recipient"), 120),
        next_step_at=_moment(facts.get("next_step_at")),
        state=str(facts.get("state") or "open")[:20],
        acked_by=_text(facts.get("acked_by") or facts.get("by"), 120),
        run_id=_text(facts.get("run_id"), 60),
    )


def _value(value: Any) -> str:
    return str(getattr(value, "value", value))


def page_from_alert(alert: AlertLike, **extra: Any) -> AlertPage:
    """The page for the domain's current view of an alert (``extra``: mention, next_recipient, run_id...)."""
    return AlertPage(
        alert_id=alert.id,
        version=alert.version,
        key_id=alert.key_id,
        key_name=alert.key_name,
        environment=alert.environment,
        step=_value(alert.step),
        signals=tuple(alert.signals),
        observed=dict(alert.observed),
        baseline=dict(alert.baseline),
        score=alert.score,
        opened_at=alert.opened_at,
        next_step_at=alert.next_step_at,
        state=_value(alert.state),
        acked_by=alert.acked_by,
        **extra,
    )


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """Bars ▁…█ from zero to the largest value; past ``width`` values, each bar is the max of its slice
    (a one-minute spike must stay visible). Missing or negative values count as zero; no values: ``""``."""
    clean = [v if isinstance(v, int | float) and math.isfinite(v) and v > 0 else 0.0 for v in values]
    if not clean or width < 1:
        return ""
    if len(clean) > width:
        size = len(clean) / width
        clean = [
            max(clean[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)]) for i in range(width)
        ]
    top = max(clean)
    if top <= 0:
        return BARS[0] * len(clean)
    last = len(BARS) - 1
    return "".join(BARS[min(last, math.ceil(v / top * last))] for v in clean)


def amount(value: float) -> str:
    """``1,240``, ``3.5``, ``0.012``: readable without losing a small cost."""
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


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


@dataclass(frozen=True)
class KeyTraffic:
    """A key's recent traffic for App Home and the key card: requests per minute and the window's totals."""

    key_id: int
    hours: int
    requests_per_minute: tuple[float, ...]
    totals: Mapping[str, float]


def traffic_line(traffic: KeyTraffic) -> str:
    """``▁▁▂█▁ 1,240 requests · 88,000 tokens · $1.20 in 6 h``."""
    totals = traffic.totals
    parts = [f"{amount(totals.get('requests', 0.0))} requests"]
    if totals.get("tokens"):
        parts.append(f"{amount(totals['tokens'])} tokens")
    if totals.get("cost_usd"):
        parts.append(f"${totals['cost_usd']:,.2f}")
    errors = totals.get("status_401", 0.0) + totals.get("status_429", 0.0)
    if errors:
        parts.append(f"{amount(errors)} 401/429s")
    spark = sparkline(traffic.requests_per_minute)
    return f"`{spark}` " + " · ".join(parts) + f" in {traffic.hours} h"


def alert_line(page: AlertPage) -> str:
    """One open alert for App Home and the key card: key, what was seen, its state, since when."""
    seen = limits.mrkdwn(", ".join(page.signals[:3]) or "unusual traffic", 300)
    since = f" · since {when(page.opened_at)}" if page.opened_at else ""
    return f"• 🚨 {_title(page)} · {seen} · {closed_line(page)}{since}"
