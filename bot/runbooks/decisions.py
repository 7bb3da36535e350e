"""The human decisions on a run: approve, retry, skip, mark done, abort.

Each one, inside the transaction that applies it:
- asks the policy (bot/access/policy.py) whether this person may make it;
- checks the decision is for the step and run version the person saw (`Seen`), so a stale or replayed
  click is refused instead of acting on whatever step is current now;
- on production, needs a second person for skipping or hand-marking a safety step;
- redacts free text before it is stored;
- bumps the run's version, so the same click applied twice changes the run once.

Each returns a `Decided`; refusals raise `RunRefused` (or its `NotAllowed`/`StaleDecision`) with words for
the person. Nothing is written when a decision is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.orm import Session

from bot.access.policy import SAFETY_ACTIONS, Actor, Decision, Policy, Role, Subject
from bot.db.base import Base, utcnow
from bot.db.session import Database
from bot.incidents.service import append_event
from bot.registry.models import Key, KeyStatus, OwnerRole
from bot.runbooks.models import KeyLock, Run, RunStatus, RunStep, StepStatus
from bot.runbooks.refusals import RunRefused
from bot.secrets import redact

MAX_REASON = 500
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class StaleDecision(RunRefused):
    """The person decided on a step or run version that is no longer current."""


@dataclass(frozen=True)
class Seen:
    """What the person saw when deciding: the step and the run's version (None: not bound, CLI)."""

    step: str | None = None
    version: int | None = None


@dataclass(frozen=True)
class Decided:
    """The outcome: `proceed` says whether the engine should carry the run on; `message` is for the person."""

    run_id: str
    message: str
    proceed: bool = True


def clean(text: str) -> str:
    """Free text as it may be stored: trimmed, bounded, and with every secret-shaped substring redacted.

    Control characters go first: PostgreSQL refuses NUL in text, and one inside a pasted secret would hide
    it from the redactor."""
    return redact(CONTROL.sub("", text).strip())[:MAX_REASON]


def as_actor(actor: Actor | str) -> Actor:
    return actor if isinstance(actor, Actor) else Actor(actor)


def lock_row(session: Session, model: type[Base], row_id: object) -> None:
    """Serialize decisions on one row. PostgreSQL does it with SELECT ... FOR UPDATE; on SQLite that is a
    no-op and reads take no lock, so two identical clicks at once would both read the same state and both
    apply. A no-op UPDATE first takes SQLite's write lock: the second decision waits (busy_timeout), then
    reads what the first committed."""
    if session.get_bind().dialect.name == "sqlite":
        table = cast(Table, model.__table__)
        session.execute(update(table).where(table.c.id == row_id).values(id=table.c.id))


def _load(session: Session, run_id: str) -> tuple[Run, Key]:
    lock_row(session, Run, run_id)
    run = session.get(Run, run_id, with_for_update=True)
    if run is None:
        raise RunRefused(f"no run {run_id!r}")
    key = session.get(Key, run.key_id)
    if key is None:
        raise RunRefused(f"run {run_id}'s key is no longer in the registry")
    return run, key


def subject_of(run: Run, key: Key, step: RunStep | None) -> Subject:
    return Subject(
        key_name=key.name,
        environment=key.environment,
        owners=tuple(key.owner_ids(OwnerRole.OWNER)),
        backups=tuple(key.owner_ids(OwnerRole.BACKUP)),
        starter=run.initiated_by,
        step_action=step.action if step else None,
        step_title=step.title if step else None,
    )


def _current(run: Run, *statuses: StepStatus) -> RunStep:
    step = next((s for s in run.steps if s.status in statuses), None)
    if step is None:
        raise RunRefused(f"run {run.id} is {run.status.value}; there is no step in that state")
    return step


def _describe(run: Run) -> str:
    step = next((s for s in run.steps if not s.status.done), None)
    where = f" at {step.title}" if step is not None and not run.status.finished else ""
    return f"{run.status.value.replace('_', ' ')}{where}"


def _bind(run: Run, step: RunStep | None, seen: Seen | None) -> None:
    """Refuse a decision made on a state of the run that is no longer current."""
    if seen is None:
        return
    stale_step = seen.step is not None and (step is None or step.name != seen.step)
    stale_version = seen.version is not None and seen.version != run.version
    if stale_step or stale_version:
        raise StaleDecision(
            f"That was decided on an earlier state of run {run.id}; it is now {_describe(run)}. "
            "Nothing was changed: look at the refreshed message and decide again."
        )


def _event(
    session: Session, run: Run, kind: str, actor: Actor, data: dict[str, Any], step: str | None
) -> None:
    if run.incident_id is not None:
        if actor.break_glass:
            data = {**data, "break_glass": actor.break_glass}
        append_event(session, run.incident_id, kind, actor.id, data, run_id=run.id, step=step)


def _open(run: Run) -> None:
    if run.status.finished:
        raise RunRefused(f"run {run.id} already {run.status.value.replace('_', ' ')}; nothing to decide")


def _at(
    session: Session, run_id: str, seen: Seen | None, *statuses: StepStatus
) -> tuple[Run, Key, RunStep | None]:
    """The run, its key and the step the decision is about (the first in one of `statuses`), refused when
    the run has finished or is no longer in the state the person saw."""
    run, key = _load(session, run_id)
    _open(run)
    step = next((s for s in run.steps if s.status in statuses), None)
    _bind(run, step, seen)
    return run, key, step


def approve(
    database: Database, run_id: str, actor: Actor | str, *, policy: Policy, seen: Seen | None = None
) -> Decided:
    who = as_actor(actor)
    with database.session() as session:
        run, key, step = _at(session, run_id, seen, StepStatus.AWAITING_APPROVAL)
        if run.status is not RunStatus.AWAITING_APPROVAL or step is None:
            raise RunRefused(f"run {run_id} is {_describe(run)}, not waiting for approval")
        policy.check(Decision.APPROVE, who, subject_of(run, key, step))
        step.approved_by = who.id
        step.status = StepStatus.PENDING
        run.status = RunStatus.RUNNING
        run.version += 1
        _event(session, run, "step.approved", who, {"step": step.name}, step.name)
    return Decided(run_id, f"Approved {step.title}.")


def retry_step(
    database: Database, run_id: str, actor: Actor | str, *, policy: Policy, seen: Seen | None = None
) -> Decided:
    who = as_actor(actor)
    with database.session() as session:
        run, key, step = _at(session, run_id, seen, StepStatus.NEEDS_ATTENTION)
        if run.status is not RunStatus.NEEDS_ATTENTION or step is None:
            raise RunRefused(f"run {run_id} is {_describe(run)}; only a step that needs attention is retried")
        policy.check(Decision.RETRY, who, subject_of(run, key, step))
        step.status, step.attempts = StepStatus.PENDING, 0
        run.status, run.attention = RunStatus.RUNNING, None
        run.version += 1
        _event(session, run, "step.retry_requested", who, {"step": step.name}, step.name)
    return Decided(run_id, f"Retrying {step.title}.")


def _second_person(
    session: Session,
    run: Run,
    step: RunStep,
    who: Actor,
    roles: set[Role],
    decision: Decision,
    reason: str,
    policy: Policy,
    subject: Subject,
) -> Decided | None:
    """On production, skipping or hand-marking a safety step takes two people: the first asks, a second
    owner or admin confirms. Returns the "asked" outcome, or None when the decision may be applied now."""
    if not (subject.production and step.action in SAFETY_ACTIONS):
        return None
    if who.break_glass and Role.ADMIN in roles:
        return None
    pending = step.output.get("pending")
    if isinstance(pending, dict) and pending.get("decision") == decision.value:
        if pending.get("by") == who.id:
            raise RunRefused(
                f"You already asked to {decision.value.replace('_', ' ')} {step.title}; a second person must "
                f"confirm: {policy.who(decision, subject, exclude=who.id)}."
            )
        return None
    step.output = {
        **step.output,
        "pending": {"decision": decision.value, "by": who.id, "reason": reason, "at": utcnow().isoformat()},
    }
    run.version += 1
    _event(
        session,
        run,
        f"step.{decision.value}_requested",
        who,
        {"step": step.name, "reason": reason},
        step.name,
    )
    return Decided(
        run.id,
        f"Recorded your request to {decision.value.replace('_', ' ')} {step.title} on production. "
        f"A second person must confirm it: {policy.who(decision, subject, exclude=who.id)}.",
        proceed=False,
    )


def skip_step(
    database: Database,
    run_id: str,
    actor: Actor | str,
    reason: str,
    *,
    policy: Policy,
    seen: Seen | None = None,
) -> Decided:
    who = as_actor(actor)
    reason = clean(reason)
    if not reason:
        raise RunRefused("skipping a step needs a reason (it goes on the incident timeline)")
    with database.session() as session:
        run, key, step = _at(session, run_id, seen, StepStatus.NEEDS_ATTENTION, StepStatus.WAITING_MANUAL)
        if run.status is RunStatus.AWAITING_APPROVAL:
            raise RunRefused("this step needs approval; it cannot be skipped (approve it, or abort the run)")
        if step is None or run.status not in (RunStatus.NEEDS_ATTENTION, RunStatus.WAITING_MANUAL):
            raise RunRefused(f"run {run_id} is {_describe(run)}; there is no step to skip")
        if step.action == "identify":
            raise RunRefused("identify cannot be skipped")
        subject = subject_of(run, key, step)
        roles = policy.check(Decision.SKIP, who, subject)
        asked = _second_person(session, run, step, who, roles, Decision.SKIP, reason, policy, subject)
        if asked is not None:
            return asked
        confirmed = step.output.get("pending") or {}
        step.status, step.skip_reason, step.finished_at = StepStatus.SKIPPED, reason, utcnow()
        step.output = {k: v for k, v in step.output.items() if k != "pending"} | {
            "skipped_by": who.id,
            **({"requested_by": confirmed.get("by")} if confirmed else {}),
        }
        run.status, run.attention = RunStatus.RUNNING, None
        run.version += 1
        _event(session, run, "step.skipped", who, {"step": step.name, "reason": reason}, step.name)
    return Decided(run_id, f"Skipped {step.title}; the run will end with exceptions.")


def mark_done(
    database: Database,
    run_id: str,
    actor: Actor | str,
    note: str = "",
    *,
    policy: Policy,
    seen: Seen | None = None,
) -> Decided:
    """A person did the step by hand. For a manual-vendor step that is an attestation; for a step keybot
    performs that failed, it is an exception the run will report."""
    who = as_actor(actor)
    note = clean(note)
    with database.session() as session:
        run, key, step = _at(session, run_id, seen, StepStatus.WAITING_MANUAL, StepStatus.NEEDS_ATTENTION)
        if step is None or run.status not in (RunStatus.WAITING_MANUAL, RunStatus.NEEDS_ATTENTION):
            raise RunRefused(f"run {run_id} is {_describe(run)}; no step is waiting to be marked done")
        if step.action == "identify":
            raise RunRefused("identify cannot be marked done by hand; retry it or abort the run")
        if step.output.get("decide"):
            raise RunRefused(f"{step.title} asks for a choice: revoke now, or wait longer")
        subject = subject_of(run, key, step)
        if step.action in SAFETY_ACTIONS and not note:
            raise RunRefused(f"marking {step.title} done by hand needs a note saying what you did and where")
        roles = policy.check(Decision.MARK_DONE, who, subject)
        asked = _second_person(session, run, step, who, roles, Decision.MARK_DONE, note, policy, subject)
        if asked is not None:
            return asked
        after_failure = step.status is StepStatus.NEEDS_ATTENTION
        now = utcnow()
        step.status, step.done_by, step.finished_at = StepStatus.SUCCEEDED, who.id, now
        output = {k: v for k, v in step.output.items() if k != "pending"} | {"note": note}
        if after_failure:
            output["by_hand"] = True
        else:
            output |= {"attested_by": who.id, "attested_at": now.isoformat()}
        step.output = output
        run.status, run.attention = RunStatus.RUNNING, None
        run.version += 1
        kind = "step.marked_done_after_failure" if after_failure else "step.attested"
        _event(session, run, kind, who, {"step": step.name, "note": note}, step.name)
    told = (
        "the run will end with exceptions" if after_failure else "recorded as confirmed by you, not verified"
    )
    return Decided(run_id, f"Marked {step.title} done; {told}.")


def abort(database: Database, run_id: str, actor: Actor | str, reason: str, *, policy: Policy) -> Decided:
    """Stop the run where it is. The key stays compromised and the incident open (a person resolves it,
    or calls it a false alarm: bot/incidents/lifecycle.py). Not bound to a version: abort is valid in any
    unfinished state, and a second abort is refused because the run has finished."""
    who = as_actor(actor)
    reason = clean(reason) or "no reason given"
    with database.session() as session:
        run, key = _load(session, run_id)
        _open(run)
        step = next((s for s in run.steps if not s.status.done), None)
        policy.check(Decision.ABORT, who, subject_of(run, key, step))
        run.status, run.finished_at = RunStatus.ABORTED, utcnow()
        run.attention = f"aborted by {who.id}: {reason}"
        run.version += 1
        lock = session.get(KeyLock, run.key_id)
        if lock is not None and lock.run_id == run.id:
            session.delete(lock)
        if run.incident_id is None and key.status is KeyStatus.ROTATING:
            key.status = KeyStatus.ACTIVE  # a planned rotation that stopped: the old key is still the key
        _event(session, run, "run.aborted", who, {"reason": reason}, None)
    return Decided(run_id, "Run aborted; the incident stays open until someone resolves it.", proceed=False)
