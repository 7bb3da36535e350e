"""Step timings, computed from timeline timestamps: never typed in, None when the moment never came.

Every timing is measured from the first sign of the leak (an alert on the key, the leak watcher's hit, or
the report that opened the incident), so they read as "how long until ...":

- detect: the first sign → the incident was opened;
- acknowledge: → the first thing a person did (an alert's Acknowledge, opening the incident by hand, a
  decision);
- contain: → the incident was contained (the old key revoked, or its scopes narrowed);
- replace: → keybot verified the replacement works;
- revoke: → keybot verified the old key is revoked;
- verify: → the run ended with every guarantee held (a run with exceptions never gets this one).

Steps a person marked done by hand are not keybot's verification, so they do not stop these clocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.postmortems.types import TIMING_NAMES

CONTAIN_ACTIONS = ("contain", "revoke_old")


@dataclass(frozen=True)
class Moment:
    """One timeline event, as much as timings need of it."""

    at: datetime
    kind: str
    human: bool
    action: str | None = None  # the step's action, for step events
    data: dict[str, Any] = field(default_factory=dict)


def first_sign(opened_at: datetime, signs: Iterable[datetime]) -> datetime:
    """The earliest sign no later than the opening (a sign after it is not how the leak was noticed)."""
    return min([opened_at, *(s for s in signs if s <= opened_at)])


def _first(
    moments: list[Moment], kinds: tuple[str, ...], actions: tuple[str, ...] | None = None
) -> datetime | None:
    for moment in moments:
        if moment.kind not in kinds:
            continue
        if actions is not None and moment.action not in actions:
            continue
        if moment.kind == "step.succeeded" and moment.data.get("skipped"):
            continue  # "nothing to do" (e.g. containment not requested) contained nothing
        return moment.at
    return None


def compute(
    first_seen: datetime,
    opened_at: datetime,
    moments: Iterable[Moment],
    *,
    acknowledged_at: datetime | None = None,
    opened_by_person: bool = True,
) -> dict[str, float | None]:
    """TIMING_NAMES → seconds since `first_seen` (None: it did not happen)."""
    ordered = sorted(moments, key=lambda m: m.at)
    human = [m.at for m in ordered if m.human and (opened_by_person or m.kind != "incident.opened")]
    acks = [t for t in (*human[:1], acknowledged_at) if t is not None]
    contained = _first(ordered, ("incident.contained",)) or _first(
        ordered, ("step.succeeded",), CONTAIN_ACTIONS
    )
    moments_at: dict[str, datetime | None] = {
        "detect": opened_at,
        "acknowledge": min(acks) if acks else None,
        "contain": contained,
        "replace": _first(ordered, ("step.succeeded",), ("verify_new",)),
        "revoke": _first(ordered, ("step.succeeded",), ("verify_revoked",)),
        "verify": _first(ordered, ("run.succeeded",)),
    }
    return {
        name: None if (at := moments_at[name]) is None else max(0.0, (at - first_seen).total_seconds())
        for name in TIMING_NAMES
    }
