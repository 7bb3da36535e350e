"""The facts a postmortem is built from, read from the incident, its timeline, its runs, key and alerts.

Nothing here is typed in: timings come from timeline timestamps (`timings.py`), exposure from the run's
audit (or assess) step, exceptions from `bot.runbooks.guarantees`, follow-ups from what the run left
undone (`followups.py`). Every string is redacted; text people typed (reasons, notes) is kept as data.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.alerts.models import Alert
from bot.db.base import utcnow
from bot.incidents.models import Incident, TimelineEvent, reference_for
from bot.incidents.service import timeline
from bot.postmortems import events as ev
from bot.postmortems.blame import blaming_phrases
from bot.postmortems.followups import follow_ups
from bot.postmortems.timings import Moment, compute, first_sign
from bot.postmortems.types import Exposure, PostmortemFacts, TimelineLine
from bot.registry.models import Key, OwnerRole
from bot.runbooks import guarantees
from bot.runbooks.models import Run, RunStatus
from bot.runbooks.refusals import RunRefused

ALERT_LOOKBACK = timedelta(days=7)
"""An alert on the key this long before the incident counts as the first sign of it."""


class UnknownIncident(RunRefused):
    """No such incident: surfaces print one line."""


def _timezone(name: str | None) -> str:
    if not name:
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def _alerts(session: Session, key: Key | None, opened_at: datetime, run_ids: list[str]) -> list[Alert]:
    if key is None:
        return []
    near = Alert.opened_at.between(opened_at - ALERT_LOOKBACK, opened_at)
    which = or_(near, Alert.run_id.in_(run_ids)) if run_ids else near
    return list(session.scalars(select(Alert).where(Alert.key_id == key.id, which).order_by(Alert.opened_at)))


class _Roles:
    """Who someone was in this incident: by what they are to the key and run, never a judgement."""

    def __init__(self, incident: Incident, key: Key | None, runs: list[Run], approvers: set[str]) -> None:
        self.starters = {incident.opened_by, *(r.initiated_by for r in runs)}
        self.owners = set(key.owner_ids(OwnerRole.OWNER)) if key else set()
        self.backups = set(key.owner_ids(OwnerRole.BACKUP)) if key else set()
        self.contacts = {c.contact for c in key.consumers if c.contact} if key else set()
        self.manager = key.team.manager_slack_id if key and key.team else None
        self.approvers = approvers

    def of(self, who: str) -> str:
        if who == ev.KEYBOT:
            return "keybot"
        for role, members in (
            ("on-call", self.starters),
            ("approver", self.approvers),
            ("owner", self.owners),
            ("backup", self.backups),
            ("consumer contact", self.contacts),
        ):
            if who in members:
                return role
        return "manager" if who == self.manager else "responder"


def _exposure(events: list[TimelineEvent], alerts: list[Alert]) -> Exposure | None:
    """The audit step's figures (the whole window), else the assess step's (the first look)."""
    found = next((e for e in reversed(events) if e.kind == "audit.exposure"), None) or next(
        (e for e in reversed(events) if e.kind == "assess.result"), None
    )
    if found is None:
        return None
    data = found.data or {}
    window = data.get("window") or [None, None]
    baseline = next((a.baseline.get("requests") for a in alerts if a.baseline), None)

    def when(value: object) -> datetime | None:
        try:
            return datetime.fromisoformat(str(value)) if value else None
        except ValueError:
            return None

    def number(value: object) -> int | None:
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    cost = data.get("cost_usd")
    return Exposure(
        start=when(window[0]) if len(window) > 0 else None,
        end=when(window[1]) if len(window) > 1 else None,
        requests=number(data.get("requests")),
        tokens=number(data.get("tokens")),
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        baseline_requests=float(baseline) if isinstance(baseline, int | float) else None,
    )


def _exceptions(runs: list[Run], false_alarm: bool) -> list[str]:
    """Missing guarantees of every run; an unfinished run too, unless the incident was a false alarm."""
    lines: list[str] = []
    for run in runs:
        lines += [ev.text(line) for line in guarantees.exceptions(list(run.steps))]
        if false_alarm:
            continue
        if run.status is RunStatus.ABORTED:
            lines.append(
                ev.text(f"run {run.id} was aborted before it finished ({run.attention or 'no reason'})")
            )
        elif not run.status.finished:
            lines.append(
                ev.text(f"run {run.id} has not finished (it is {run.status.value.replace('_', ' ')})")
            )
    return lines


def build_facts(session: Session, incident_id: int, *, now: datetime | None = None) -> PostmortemFacts:
    """Everything a draft says, computed from the database; UnknownIncident when there is no such incident."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise UnknownIncident(f"no incident {reference_for(incident_id)}")
    key = session.get(Key, incident.key_id) if incident.key_id is not None else None
    runs = list(
        session.scalars(select(Run).where(Run.incident_id == incident_id).order_by(Run.created_at, Run.id))
    )
    events = timeline(session, incident_id)
    steps = {(run.id, step.name): step for run in runs for step in run.steps}
    approvers = {e.actor for e in events if e.kind == "step.approved"}
    roles = _Roles(incident, key, runs, approvers)
    alerts = _alerts(session, key, incident.opened_at, [r.id for r in runs])
    watcher = any(e.kind == "leak.detected" for e in events)

    lines: list[TimelineLine] = []
    moments: list[Moment] = []
    notes: list[str] = []
    for alert in alerts:
        if alert.opened_at <= incident.opened_at:
            signals = ", ".join(alert.signals or []) or "traffic"
            lines.append(
                TimelineLine(alert.opened_at, ev.KEYBOT, "keybot", f"Alert opened on the key ({signals})")
            )
        if alert.acked_at is not None and alert.acked_by and alert.acked_at <= incident.opened_at:
            lines.append(
                TimelineLine(
                    alert.acked_at,
                    ev.text(alert.acked_by, 120),
                    roles.of(alert.acked_by),
                    "Alert acknowledged",
                )
            )
    for event in events:
        data = event.data or {}
        step = steps.get((event.run_id or "", event.step or ""))
        keybot = ev.by_keybot(event.kind, data) or (watcher and event.kind == "incident.opened")
        moments.append(Moment(event.at, event.kind, not keybot, step.action if step else None, data))
        note = ev.note_of(event.kind, data)
        if note:
            notes.append(note)
        if event.kind in ev.HIDDEN_KINDS:
            continue
        actor = ev.KEYBOT if keybot else ev.text(event.actor, 120)
        lines.append(
            TimelineLine(
                event.at, actor, roles.of(actor), ev.describe(event.kind, data, step.title if step else None)
            )
        )
    lines.sort(key=lambda line: line.at)

    opened_at = incident.opened_at
    first_seen = first_sign(opened_at, [a.opened_at for a in alerts])
    acked = [a.acked_at for a in alerts if a.acked_at is not None and a.acked_at >= first_seen]
    timings = compute(
        first_seen,
        opened_at,
        moments,
        acknowledged_at=min(acked) if acked else None,
        opened_by_person=not watcher,
    )

    people: list[tuple[str, str]] = []
    seen: set[str] = set()
    everyone = (
        [line.actor for line in lines if line.actor != ev.KEYBOT]
        + sorted(roles.owners)
        + sorted(roles.backups)
    )
    everyone += sorted(roles.contacts) + ([roles.manager] if roles.manager else [])
    for who in everyone:
        if who not in seen:
            seen.add(who)
            people.append((roles.of(who), ev.text(who, 120)))
    people.append(("keybot", ev.KEYBOT))

    exceptions = _exceptions(runs, incident.status.value == "false_alarm")
    for run in runs:
        notes += [
            ev.text(f"{s.title}: {s.output['note']}")
            for s in run.steps
            if isinstance(s.output, dict) and s.output.get("note") and (s.done_by or s.output.get("by_hand"))
        ]
    mode = runs[-1].mode if runs else None
    team = key.team if key is not None else None
    warnings = _blame_warnings(incident.reason, notes, events)
    return PostmortemFacts(
        reference=reference_for(incident.id),
        incident_id=incident.id,
        title=ev.text(incident.title, 300),
        key_name=ev.text(key.name, 200) if key else None,
        environment=key.environment if key else None,
        team=ev.text(team.name, 120) if team else None,
        timezone=_timezone(team.timezone if team else None),
        severity=ev.text(incident.severity, 8),
        status=incident.status.value,
        drill=incident.drill,
        mode=mode,
        reason=ev.text(incident.reason, 2000),
        opened_at=opened_at,
        resolved_at=incident.resolved_at,
        first_seen_at=first_seen,
        timeline=tuple(lines),
        timings=timings,
        exposure=_exposure(events, alerts),
        people=tuple(people),
        approver=", ".join(sorted(ev.text(a, 120) for a in approvers)) or None,
        exceptions=tuple(exceptions),
        follow_ups=follow_ups(incident, key, runs, events, now=now or utcnow()),
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


def _blame_warnings(reason: str, notes: list[str], events: list[TimelineEvent]) -> list[str]:
    """Blaming language in anything a person typed: the reason, notes, skip and resolve reasons."""
    typed: list[tuple[str, str]] = [("the incident's reason", reason)]
    typed += [(f"note {i}", note) for i, note in enumerate(notes, 1)]
    typed += [
        (f"timeline event #{e.seq} ({e.kind})", str((e.data or {}).get("reason")))
        for e in events
        if e.kind != "incident.opened" and (e.data or {}).get("reason")
    ]
    warnings = []
    for where, value in typed:
        found = blaming_phrases(value)
        if found:
            warnings.append(f"blaming language in {where}: {', '.join(repr(f) for f in found)}")
    return warnings


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def facts_as_data(facts: PostmortemFacts) -> dict[str, Any]:
    """JSON-safe: datetimes as ISO 8601 (UTC), dates as YYYY-MM-DD; what templates and the LLM see."""
    data = asdict(facts)
    for name in ("opened_at", "resolved_at", "first_seen_at"):
        data[name] = _iso(getattr(facts, name))
    data["timeline"] = [{**asdict(line), "at": line.at.isoformat()} for line in facts.timeline]
    if facts.exposure is not None:
        data["exposure"] = {
            **asdict(facts.exposure),
            "start": _iso(facts.exposure.start),
            "end": _iso(facts.exposure.end),
        }
    data["people"] = [{"role": role, "who": who} for role, who in facts.people]
    data["follow_ups"] = [
        {**asdict(item), "due": item.due.isoformat() if item.due else None} for item in facts.follow_ups
    ]
    for name in ("exceptions", "notes", "warnings"):
        data[name] = list(getattr(facts, name))
    if facts.narrative is not None:
        data["narrative"] = {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in asdict(facts.narrative).items()
        }
    return data
