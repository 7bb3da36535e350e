"""Starting runs, and (re-exported from decisions.py) the human decisions on them.

These are what the Slack buttons and the CLI call; they change state only, and the caller then asks the
engine to carry on. Each checks the authorization policy itself and raises a `RunRefused` whose message
tells the person why.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import NotRequired, TypedDict, Unpack

from bot.access.policy import Actor, Decision, NotAllowed, Policy, Subject
from bot.db.base import utcnow
from bot.db.busy import retry_when_locked
from bot.db.session import Database
from bot.runbooks import pg_transition
from bot.runbooks.containment import Released
from bot.runbooks.containment import release as release_containment
from bot.runbooks.context import KeyFacts
from bot.runbooks.decisions import (
    Decided,
    Seen,
    StaleDecision,
    abort,
    approve,
    clean,
    mark_done,
    retry_step,
    skip_step,
)
from bot.runbooks.definitions import RunbookDefinition
from bot.runbooks.opening import OpenedRun, RunPlan, open_with_core
from bot.runbooks.pg_open import open_on_postgresql
from bot.runbooks.refusals import KeyBusy, RunRefused

__all__ = [
    "Decided", "KeyBusy", "NotAllowed", "OpenedRun", "Released", "RunRefused", "RunRequest", "Seen",
    "StaleDecision", "abort", "approve", "mark_done", "open_run", "release_containment", "retry_step",
    "skip_step", "start_run",
]  # fmt: skip


class RunRequest(TypedDict):
    """What a person asks for when they start a run (Slack, CLI, bulk)."""

    key_id: int
    runbook: str
    mode: str | None  # None: the runbook's default mode
    actor: str
    reason: str
    severity: NotRequired[str]
    drill: NotRequired[bool]
    contain: NotRequired[bool]  # narrow the key's scopes first (reversible containment)
    in_revoker_group: NotRequired[bool]  # what Slack says about the revokers user group


def _authorizer(policy: Policy, runbook: RunbookDefinition, actor: Actor) -> Callable[[KeyFacts], None]:
    """Checked against the key as read inside the transaction that opens the run."""
    decision = Decision.START if runbook.incident else Decision.ROTATE

    def authorize(key: KeyFacts) -> None:
        subject = Subject(key.name, key.environment, tuple(key.owners), tuple(key.backups))
        policy.check(decision, actor, subject)

    return authorize


def start_run(
    database: Database,
    runbooks: dict[str, RunbookDefinition],
    *,
    policy: Policy,
    **request: Unpack[RunRequest],
) -> str:
    """Open a run (its incident, steps and key lock) for any engine to execute; returns its id."""
    return open_run(database, runbooks, policy=policy, **request).state.id


def open_run(
    database: Database,
    runbooks: dict[str, RunbookDefinition],
    *,
    policy: Policy,
    lease: tuple[str, timedelta] | None = None,
    **request: Unpack[RunRequest],
) -> OpenedRun:
    """`start_run`, optionally leasing the run to the engine that executes it next (see Engine.start)."""
    runbook, actor, reason = request["runbook"], request["actor"], request["reason"]
    definition = runbooks.get(runbook)
    if definition is None:
        raise RunRefused(f"unknown runbook {runbook!r}; known: {', '.join(sorted(runbooks))}")
    mode = request["mode"] or definition.default_mode
    if mode not in definition.modes:
        raise RunRefused(f"runbook {runbook} has no mode {mode!r}; choose {', '.join(definition.modes)}")
    reason = clean(reason)
    if definition.incident and not reason:
        raise RunRefused("a reason is required (what happened, where the key leaked)")
    now = utcnow()
    plan = RunPlan(
        run_id="run_" + secrets.token_hex(6),
        key_id=request["key_id"],
        runbook=runbook,
        mode=mode,
        actor=actor,
        reason=reason,
        severity=request.get("severity", "sev2"),
        drill=request.get("drill", False),
        contain=request.get("contain", False),
        incident=definition.incident,
        steps=definition.plan(mode),
        now=now,
        lease_owner=lease[0] if lease else None,
        lease_expires_at=now + lease[1] if lease else None,
        authorize=_authorizer(policy, definition, Actor(actor, request.get("in_revoker_group", False))),
    )
    if database.engine.dialect.name == "postgresql" and pg_transition.ENABLED:
        opened = open_on_postgresql(database.engine, plan)
        if opened is not None:
            return opened
    return retry_when_locked(lambda: open_with_core(database.engine, plan))  # also where a taken lock is seen
