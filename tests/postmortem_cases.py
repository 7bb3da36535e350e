"""Fixed incidents for the postmortem tests: rows and hash-chained timelines with fixed timestamps.

Each case is what a real run of that kind writes (the event kinds and data of bot/runbooks/engine.py,
decisions.py, waits.py, lifecycle.py), with times chosen so every timing is a known number; the output of
every template over them is byte-stable, so it is compared with golden files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.alerts.models import Alert
from bot.db.session import Database
from bot.incidents import chain
from bot.incidents.chain import GENESIS, Head, PendingEvent
from bot.incidents.models import Incident, IncidentStatus
from bot.registry.models import Consumer, Key, KeyOwner, KeyStatus, OwnerRole, Team
from bot.runbooks.models import Run, RunStatus, RunStep, StepStatus

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
"""The incident opens at 09:00 UTC (10:00 in the team's Europe/Paris)."""
ONCALL, SECOND, OWNER, BACKUP, CONSUMER, MANAGER = (
    "U0ONCALL1",
    "U0SECOND1",
    "U0OWNER01",
    "U0BACKUP1",
    "U0CONSUME1",
    "U0MANAGER1",
)
TITLES = {
    "identify": "Identify & lock",
    "assess": "Assess exposure",
    "contain": "Contain (reversible)",
    "mint": "Mint replacement",
    "distribute": "Distribute to consumers",
    "verify_new": "Verify replacement",
    "revoke_old": "Revoke leaked key",
    "verify_revoked": "Verify revocation",
    "audit": "Audit exposure window",
    "cleanup": "Clean up Vault",
    "notify": "Notify owners & managers",
}
STAGED = list(TITLES)
EMERGENCY = [
    "identify",
    "revoke_old",
    "verify_revoked",
    "mint",
    "distribute",
    "verify_new",
    "audit",
    "cleanup",
    "notify",
]
CASES = ("staged", "emergency", "exceptions", "false_alarm", "drill")
EXPOSURE = {"requests": 1250, "tokens": 360000, "cost_usd": 4.35}
WINDOW = ["2026-02-25T09:00:00+00:00", "2026-03-04T09:15:10+00:00"]


@dataclass(frozen=True)
class Case:
    incident_id: int
    key_id: int
    run_id: str | None


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def add_registry(database: Database, *, drill: bool = False, rotation_days: int | None = 90) -> int:
    with database.session() as session:
        team = Team(
            name="payments",
            slack_channel="C0PAYMENTS",
            manager_slack_id=MANAGER,
            timezone="Europe/Paris",
            rotation_days=rotation_days,
        )
        session.add(team)
        session.flush()
        key = Key(
            name="pay-prod" if not drill else "pay-prod-drill",
            provider="openai",
            provider_key_id="key_abc",
            environment="production",
            team_id=team.id,
            drill=drill,
            secret_family="sk-proj",
            secret_last4="Xy9Q",
            status=KeyStatus.ACTIVE,
        )
        session.add(key)
        session.flush()
        session.add_all(
            [
                KeyOwner(key_id=key.id, slack_user_id=OWNER, role=OwnerRole.OWNER),
                KeyOwner(key_id=key.id, slack_user_id=BACKUP, role=OwnerRole.BACKUP),
                Consumer(key_id=key.id, name="api-pay", contact=CONSUMER),
                Consumer(key_id=key.id, name="batch-pay", contact=None),
            ]
        )
        return key.id


Event = tuple[float, str, str, str | None, dict[str, Any]]


def write_incident(
    database: Database,
    *,
    incident_id: int,
    key_id: int,
    reason: str,
    status: IncidentStatus,
    opened: float,
    resolved: float | None,
    contained: float | None,
    events: list[Event],
    run: tuple[str, str, RunStatus, dict[str, tuple[StepStatus, dict[str, Any]]]] | None,
    drill: bool = False,
) -> None:
    """The incident, its run, steps and timeline (events: seconds after T0, kind, actor, step, data)."""
    with database.session() as session:
        title = f"{'[DRILL] ' if drill else ''}Leaked key pay-prod (production)"
        session.add(
            Incident(
                id=incident_id,
                key_id=key_id,
                title=title,
                severity="sev2",
                status=status,
                opened_by=ONCALL,
                reason=reason,
                drill=drill,
                opened_at=at(opened),
                contained_at=at(contained) if contained is not None else None,
                resolved_at=at(resolved) if resolved is not None else None,
            )
        )
        session.flush()
        run_id = None
        if run is not None:
            run_id, mode, run_status, steps = run
            session.add(
                Run(
                    id=run_id,
                    runbook="revoke-replace-audit-notify",
                    mode=mode,
                    key_id=key_id,
                    incident_id=incident_id,
                    status=run_status,
                    initiated_by=ONCALL,
                    reason=reason,
                    drill=drill,
                    created_at=at(opened),
                    updated_at=at(resolved or opened),
                    finished_at=at(resolved) if resolved is not None else None,
                )
            )
            session.flush()
            for position, (name, (step_status, fields)) in enumerate(steps.items()):
                session.add(
                    RunStep(
                        run_id=run_id,
                        position=position,
                        name=name,
                        action=name,
                        title=TITLES[name],
                        status=step_status,
                        **fields,
                    )
                )
        pending = [
            PendingEvent(
                kind,
                actor,
                data,
                at(seconds),
                run_id=run_id if kind != "incident.opened" else None,
                step=step,
            )
            for seconds, kind, actor, step, data in events
        ]
        chain.write(session, incident_id, Head(0, GENESIS), pending)


def add_alert(database: Database, key_id: int, *, opened: float, acked: float | None) -> None:
    with database.session() as session:
        session.add(
            Alert(
                key_id=key_id,
                signals=["requests"],
                score=0.999,
                observed={"requests": 900.0},
                baseline={"requests": 30.0},
                opened_at=at(opened),
                last_signal_at=at(opened),
                acked_at=at(acked) if acked is not None else None,
                acked_by=OWNER if acked else None,
                pagerduty_key="pd-1",
            )
        )


def _done(names: list[str], **special: dict[str, Any]) -> dict[str, tuple[StepStatus, dict[str, Any]]]:
    return {name: special.get(name, (StepStatus.SUCCEEDED, {"output": {}})) for name in names}  # type: ignore[misc]


def _succeeded(names: list[str], start: float, gap: float = 2.0) -> list[Event]:
    return [(start + i * gap, "step.succeeded", ONCALL, n, {"seconds": gap}) for i, n in enumerate(names)]


def staged(database: Database) -> Case:
    """A staged run with an approval, a consumer's Redeployed, first signed by an alert at 08:52."""
    key_id = add_registry(database)
    add_alert(database, key_id, opened=-480, acked=-270)
    events: list[Event] = [
        (
            0,
            "incident.opened",
            ONCALL,
            None,
            {
                "title": "Leaked key pay-prod (production)",
                "reason": "key pasted in a public gist",
                "key_status_before": "active",
            },
        ),
        (
            0,
            "run.started",
            ONCALL,
            None,
            {"runbook": "revoke-replace-audit-notify", "mode": "staged", "drill": False},
        ),
        (0, "step.started", ONCALL, "identify", {}),
        (1, "step.succeeded", ONCALL, "identify", {"seconds": 1.0}),
        (
            3,
            "assess.result",
            ONCALL,
            "assess",
            {"live": True, "requests": 1200, "tokens": 350000, "cost_usd": 4.2, "audit_events": 3},
        ),
        (3, "step.succeeded", ONCALL, "assess", {"seconds": 2.0}),
        (4, "step.succeeded", ONCALL, "contain", {"skipped": "containment not requested for this run"}),
        (5, "step.awaiting_approval", ONCALL, "mint", {"environment": "production", "two_person": True}),
        (180, "step.approved", SECOND, "mint", {"step": "mint"}),
        (182, "effect.intent", ONCALL, "mint", {"effect": "replacement.mint"}),
        (184, "step.succeeded", ONCALL, "mint", {"seconds": 4.0}),
        (185, "step.waiting", ONCALL, "distribute", {"why": "waiting for 1 of 1 consumer(s)"}),
        (900, "consumer.redeployed", CONSUMER, "distribute", {"consumer": "api-pay"}),
        (902, "step.succeeded", ONCALL, "distribute", {"seconds": 717.0}),
        (904, "step.succeeded", ONCALL, "verify_new", {"seconds": 2.0}),
        (906, "incident.contained", ONCALL, None, {}),
        (906, "step.succeeded", ONCALL, "revoke_old", {"seconds": 2.0}),
        (908, "step.succeeded", ONCALL, "verify_revoked", {"seconds": 2.0}),
        (910, "audit.exposure", ONCALL, "audit", {**EXPOSURE, "window": WINDOW, "events": []}),
        *_succeeded(["audit", "cleanup", "notify"], 910, 1.0),
        (913, "run.succeeded", ONCALL, None, {"attested": []}),
        (913, "incident.resolved", ONCALL, None, {}),
    ]
    run = ("run-staged-0001", "staged", RunStatus.SUCCEEDED, _done(STAGED))
    write_incident(
        database,
        incident_id=42,
        key_id=key_id,
        reason="key pasted in a public gist",
        status=IncidentStatus.RESOLVED,
        opened=0,
        resolved=913,
        contained=906,
        events=events,
        run=run,
    )
    return Case(42, key_id, run[0])


def emergency(database: Database) -> Case:
    """Emergency: revoked within a minute, replaced afterwards; no alert (the report is the first sign)."""
    key_id = add_registry(database, rotation_days=None)
    events: list[Event] = [
        (
            0,
            "incident.opened",
            ONCALL,
            None,
            {
                "title": "Leaked key pay-prod (production)",
                "reason": "abused from unknown IPs",
                "key_status_before": "active",
            },
        ),
        (
            0,
            "run.started",
            ONCALL,
            None,
            {"runbook": "revoke-replace-audit-notify", "mode": "emergency", "drill": False},
        ),
        (1, "step.succeeded", ONCALL, "identify", {"seconds": 1.0}),
        (40, "incident.contained", ONCALL, None, {}),
        (40, "step.succeeded", ONCALL, "revoke_old", {"seconds": 39.0}),
        (45, "step.succeeded", ONCALL, "verify_revoked", {"seconds": 5.0}),
        (60, "step.succeeded", ONCALL, "mint", {"seconds": 15.0}),
        (62, "step.succeeded", ONCALL, "distribute", {"seconds": 2.0}),
        (3900, "step.succeeded", ONCALL, "verify_new", {"seconds": 3838.0}),
        (3905, "audit.exposure", ONCALL, "audit", {**EXPOSURE, "window": WINDOW, "events": []}),
        *_succeeded(["audit", "cleanup", "notify"], 3905, 1.0),
        (3908, "run.succeeded", ONCALL, None, {"attested": []}),
        (3908, "incident.resolved", ONCALL, None, {}),
    ]
    run = ("run-emergency-0001", "emergency", RunStatus.SUCCEEDED, _done(EMERGENCY))
    write_incident(
        database,
        incident_id=43,
        key_id=key_id,
        reason="abused from unknown IPs",
        status=IncidentStatus.RESOLVED,
        opened=0,
        resolved=3908,
        contained=40,
        events=events,
        run=run,
    )
    return Case(43, key_id, run[0])


def exceptions(database: Database) -> Case:
    """Revocation failed and was marked done by hand (two people), the audit step was skipped; resolved by a
    person. Its notes carry blaming language and hostile markup, which must come out flagged and inert."""
    key_id = add_registry(database)
    note = "revoked in the console; Bob should have rotated it <!channel> [click](http://evil) {{ 7*7 }} `rm`"
    special = {
        "revoke_old": (StepStatus.SUCCEEDED, {"output": {"by_hand": True, "note": note}, "done_by": SECOND}),
        "audit": (StepStatus.SKIPPED, {"skip_reason": "usage API down", "output": {"skipped_by": OWNER}}),
    }
    events: list[Event] = [
        (
            0,
            "incident.opened",
            ONCALL,
            None,
            {
                "title": "Leaked key pay-prod (production)",
                "reason": "found in CI logs",
                "key_status_before": "active",
            },
        ),
        (
            0,
            "run.started",
            ONCALL,
            None,
            {"runbook": "revoke-replace-audit-notify", "mode": "staged", "drill": False},
        ),
        (1, "step.succeeded", ONCALL, "identify", {"seconds": 1.0}),
        (
            3,
            "assess.result",
            ONCALL,
            "assess",
            {"live": True, "requests": 80, "tokens": 9000, "cost_usd": None, "audit_events": 0},
        ),
        (3, "step.succeeded", ONCALL, "assess", {"seconds": 2.0}),
        (4, "step.succeeded", ONCALL, "contain", {"skipped": "containment not requested for this run"}),
        (6, "step.succeeded", ONCALL, "mint", {"seconds": 2.0}),
        (8, "step.succeeded", ONCALL, "distribute", {"seconds": 2.0}),
        (10, "step.succeeded", ONCALL, "verify_new", {"seconds": 2.0}),
        (
            12,
            "step.retrying",
            ONCALL,
            "revoke_old",
            {"error": "503 from provider", "attempt": 1, "of": 4, "in_seconds": 2.0},
        ),
        (30, "step.needs_attention", ONCALL, "revoke_old", {"reason": "gave up after 4 attempt(s)"}),
        (600, "step.mark_done_requested", ONCALL, "revoke_old", {"step": "revoke_old", "reason": note}),
        (660, "step.marked_done_after_failure", SECOND, "revoke_old", {"step": "revoke_old", "note": note}),
        (662, "step.succeeded", ONCALL, "verify_revoked", {"seconds": 2.0}),
        (664, "step.needs_attention", ONCALL, "audit", {"reason": "usage API down"}),
        (700, "step.skipped", OWNER, "audit", {"step": "audit", "reason": "usage API down"}),
        (702, "step.succeeded", ONCALL, "cleanup", {"seconds": 1.0}),
        (703, "step.succeeded", ONCALL, "notify", {"seconds": 1.0}),
        (
            703,
            "run.finished_with_exceptions",
            ONCALL,
            None,
            {"missing": ["revoke_old by hand", "audit skipped"]},
        ),
        (720, "note.added", OWNER, None, {"text": "The console showed the key as disabled at 09:11."}),
        (3600, "incident.resolved", OWNER, None, {"reason": "careless push of a .env; checked by hand"}),
    ]
    run = ("run-exceptions-01", "staged", RunStatus.FINISHED_WITH_EXCEPTIONS, _done(STAGED, **special))
    write_incident(
        database,
        incident_id=44,
        key_id=key_id,
        reason="found in CI logs",
        status=IncidentStatus.RESOLVED,
        opened=0,
        resolved=3600,
        contained=None,
        events=events,
        run=run,
    )
    return Case(44, key_id, run[0])


def false_alarm(database: Database) -> Case:
    """An alert that was a batch job: the run was aborted and the incident called a false alarm."""
    key_id = add_registry(database)
    add_alert(database, key_id, opened=-120, acked=-60)
    events: list[Event] = [
        (
            0,
            "incident.opened",
            ONCALL,
            None,
            {
                "title": "Leaked key pay-prod (production)",
                "reason": "traffic spike alert",
                "key_status_before": "active",
            },
        ),
        (
            0,
            "run.started",
            ONCALL,
            None,
            {"runbook": "revoke-replace-audit-notify", "mode": "staged", "drill": False},
        ),
        (1, "step.succeeded", ONCALL, "identify", {"seconds": 1.0}),
        (
            3,
            "assess.result",
            ONCALL,
            "assess",
            {"live": True, "requests": 5000, "tokens": 100000, "cost_usd": 0.5, "audit_events": 0},
        ),
        (3, "step.succeeded", ONCALL, "assess", {"seconds": 2.0}),
        (5, "step.awaiting_approval", ONCALL, "mint", {"environment": "production", "two_person": True}),
        (300, "run.aborted", OWNER, None, {"reason": "it is the nightly batch job"}),
        (
            330,
            "incident.false_alarm",
            OWNER,
            None,
            {
                "reason": "the nightly batch job, expected traffic",
                "key_status_restored": {"from": "compromised", "to": "active"},
            },
        ),
    ]
    steps = {
        "identify": (StepStatus.SUCCEEDED, {"output": {}}),
        "assess": (StepStatus.SUCCEEDED, {"output": {}}),
        "mint": (StepStatus.AWAITING_APPROVAL, {"output": {}}),
    }
    run = ("run-falsealarm-1", "staged", RunStatus.ABORTED, steps)
    write_incident(
        database,
        incident_id=45,
        key_id=key_id,
        reason="traffic spike alert",
        status=IncidentStatus.FALSE_ALARM,
        opened=0,
        resolved=330,
        contained=None,
        events=events,
        run=run,
    )
    return Case(45, key_id, run[0])


def drill(database: Database) -> Case:
    """A drill (DRILL-00003) on the sandbox copy: emergency mode, everything verified."""
    key_id = add_registry(database, drill=True)
    events: list[Event] = [
        (
            0,
            "incident.opened",
            ONCALL,
            None,
            {
                "title": "[DRILL] Leaked key pay-prod (production)",
                "reason": "quarterly drill",
                "key_status_before": "active",
            },
        ),
        (
            0,
            "run.started",
            ONCALL,
            None,
            {"runbook": "revoke-replace-audit-notify", "mode": "emergency", "drill": True},
        ),
        (1, "step.succeeded", ONCALL, "identify", {"seconds": 1.0}),
        (20, "incident.contained", ONCALL, None, {}),
        (20, "step.succeeded", ONCALL, "revoke_old", {"seconds": 19.0}),
        (22, "step.succeeded", ONCALL, "verify_revoked", {"seconds": 2.0}),
        *_succeeded(["mint", "distribute", "verify_new"], 30, 2.0),
        (
            40,
            "audit.exposure",
            ONCALL,
            "audit",
            {"requests": 0, "tokens": 0, "cost_usd": 0.0, "window": WINDOW},
        ),
        *_succeeded(["audit", "cleanup", "notify"], 40, 1.0),
        (43, "run.succeeded", ONCALL, None, {"attested": []}),
        (43, "incident.resolved", ONCALL, None, {}),
    ]
    run = ("run-drill-00001", "emergency", RunStatus.SUCCEEDED, _done(EMERGENCY))
    write_incident(
        database,
        incident_id=-3,
        key_id=key_id,
        reason="quarterly drill",
        status=IncidentStatus.RESOLVED,
        opened=0,
        resolved=43,
        contained=20,
        events=events,
        run=run,
        drill=True,
    )
    return Case(-3, key_id, run[0])


BUILDERS = {
    "staged": staged,
    "emergency": emergency,
    "exceptions": exceptions,
    "false_alarm": false_alarm,
    "drill": drill,
}
