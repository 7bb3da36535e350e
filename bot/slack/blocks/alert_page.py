"""The facts an anomaly page shows, as :class:`AlertPage`: a frozen copy of what the alerts domain enqueued
(the outbox row's facts, which may be anything and are bounded here) or returns (its ``AlertView``).

Kept apart from the rendering in :mod:`bot.slack.blocks.alerts` so delivery, App Home and the key card
build pages without pulling in every block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

MAX_SIGNALS = 10
MAX_METRICS = 8


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
