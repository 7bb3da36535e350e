"""What the alerts domain hands to surfaces: states, escalation steps and a secret-free view of an alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.runbooks.refusals import RunRefused


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"


ACTIVE_STATES = (AlertState.OPEN, AlertState.ACKNOWLEDGED)
"""An episode: at most one alert per key in these states (a partial unique index enforces it)."""


class PageStep(StrEnum):
    OWNER = "owner"
    BACKUP = "backup"
    CHANNEL = "channel"
    MANAGER = "manager"


class StaleAlert(RunRefused):
    """The alert changed since the person saw it: nothing was done, the surface should refresh."""


class AlertNotFound(RunRefused):
    """No such alert (or one on a drill key, which is never shown)."""


@dataclass(frozen=True)
class AlertView:
    """What surfaces render; never a secret."""

    id: int
    key_id: int
    key_name: str
    environment: str
    state: AlertState
    version: int
    signals: tuple[str, ...]
    score: float
    observed: dict[str, float]
    baseline: dict[str, float]
    opened_at: datetime
    acked_by: str | None
    step: PageStep
    next_step_at: datetime | None
    last_signal_at: datetime | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    run_id: str | None = None
