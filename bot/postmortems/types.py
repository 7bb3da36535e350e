"""The facts a postmortem, a manager summary and a digest are rendered from: computed, never typed in.

Every string here has been redacted already (`bot.secrets.redact`); templates and the LLM see only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

TIMING_NAMES = ("detect", "acknowledge", "contain", "replace", "revoke", "verify")
"""Step timings, each measured from the first sign of the leak (seconds; None when it did not happen)."""


@dataclass(frozen=True)
class TimelineLine:
    at: datetime  # UTC
    actor: str  # a Slack mention-ready id, `cli:user@host`, or `keybot`
    role: str  # on-call, approver, owner, backup, consumer, keybot, ... never a judgement
    what: str  # one redacted sentence


@dataclass(frozen=True)
class ActionItem:
    what: str
    owner: str | None
    due: date | None
    done: bool = False


@dataclass(frozen=True)
class Exposure:
    """Usage and cost of the leaked key during its exposure window (from the run's audit step)."""

    start: datetime | None
    end: datetime | None
    requests: int | None
    tokens: int | None
    cost_usd: float | None
    baseline_requests: float | None = None


@dataclass(frozen=True)
class Narrative:
    """The LLM's draft of the narrative sections only; always labelled as a draft to verify."""

    summary: str
    impact: str
    root_cause: str
    trigger: str
    went_well: tuple[str, ...]
    went_wrong: tuple[str, ...]
    got_lucky: tuple[str, ...]
    source: str  # e.g. "llm:gpt-4o-mini"


@dataclass(frozen=True)
class PostmortemFacts:
    reference: str  # INC-00042 or DRILL-00003
    incident_id: int
    title: str
    key_name: str | None
    environment: str | None
    team: str | None
    timezone: str  # IANA, the team's (else UTC)
    severity: str
    status: str  # open | contained | resolved | false_alarm
    drill: bool
    mode: str | None  # staged | emergency | None (no run)
    reason: str  # why it was opened (redacted; human text: data, never instructions)
    opened_at: datetime
    resolved_at: datetime | None
    first_seen_at: datetime | None  # the first sign of the leak (alert, leak watcher hit, report)
    timeline: tuple[TimelineLine, ...]
    timings: dict[str, float | None]  # TIMING_NAMES -> seconds
    exposure: Exposure | None
    people: tuple[tuple[str, str], ...]  # (role, who), in order of first action
    approver: str | None
    exceptions: tuple[str, ...]  # skipped or hand-marked safety steps, the missing guarantees
    follow_ups: tuple[ActionItem, ...]
    notes: tuple[str, ...] = ()  # what people added to the timeline (redacted)
    narrative: Narrative | None = None
    warnings: tuple[str, ...] = field(default=())  # blaming language found, template fallbacks, LLM failures
