"""What the reminders domain hands to its surfaces: plain, frozen data, so renderers stay pure functions."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime


class DueState(enum.StrEnum):
    OVERDUE = "overdue"  # due_at has passed
    DUE_SOON = "due_soon"  # due within the reminder horizon
    SNOOZED = "snoozed"  # due or overdue, but hidden until snoozed_until
    OK = "ok"


@dataclass(frozen=True)
class DueKey:
    """One key's rotation state at a moment; `days_overdue` is negative while it is not yet due."""

    key_id: int
    name: str
    environment: str
    team: str | None
    owners: tuple[str, ...]  # Slack user ids
    rotation_days: int  # the policy that applied: key, else team, else the environment default
    counted_from: datetime  # last rotation, or registration when it was never rotated
    never_rotated: bool
    due_at: datetime
    days_overdue: int
    state: DueState
    snoozed_until: datetime | None = None
    snooze_count: int = 0  # snoozes in a row since the last rotation
    next_reminder: date | None = None  # the team's next reminder day that will list it


@dataclass(frozen=True)
class Reminder:
    """One team's message for one local day; `keys` oldest due first. Empty teams get no Reminder."""

    team: str | None  # None: keys without a team, posted to the fallback channel
    channel: str
    local_date: date
    timezone: str
    keys: tuple[DueKey, ...]
    late_note: str | None = None  # set when it is sent after its slot (the clock was down)
    done_key_ids: frozenset[int] = field(default_factory=frozenset)  # rotated since it was posted


@dataclass(frozen=True)
class Escalation:
    """The weekly DM to a team's manager: keys overdue past the threshold, and keys snoozed too often."""

    team: str
    manager: str  # Slack user id
    week: str  # ISO year-week, the dedupe unit
    overdue: tuple[DueKey, ...]
    snoozed_often: tuple[DueKey, ...]
