"""Undo containment when a run stops before revoking: an aborted run must not leave the key crippled.

Staged mode may narrow the leaked key's scopes (the `contain` step) while consumers still use it. If the run
is then aborted before the old key is revoked, that key stays in service, so its scopes go back to what
they were. The restore is an outside change like any other: written to the timeline before and after,
permission-checked like the abort, and done at most once; a failure is reported, never hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.access.policy import Actor, Decision, Policy
from bot.db.session import Database
from bot.providers.base import KeyRef
from bot.registry.models import redacted_form_of
from bot.runbooks.context import Toolkit
from bot.runbooks.decisions import _event, _load, as_actor, subject_of
from bot.runbooks.models import Run, RunStatus, StepStatus
from bot.runbooks.refusals import RunRefused
from bot.secrets import redact

RELEASED = "containment_released"


@dataclass(frozen=True)
class Released:
    """What became of the containment; `message` is None when the run had nothing contained."""

    message: str | None
    restored: bool = False


@dataclass(frozen=True)
class _Plan:
    provider: str
    ref: KeyRef
    scopes: list[str]
    toolkit: Callable[[], Toolkit] | None


def _contained_scopes(run: Run) -> tuple[bool, Any]:
    """Whether this run narrowed the key and has not released it, and the scopes it found before."""
    contained = any(
        s.action == "contain" and s.status is StepStatus.SUCCEEDED and "previous_scopes" in s.output
        for s in run.steps
    )
    revoked = any(s.action == "revoke_old" and s.status is StepStatus.SUCCEEDED for s in run.steps)
    context = run.context or {}
    if not contained or revoked or context.get(RELEASED):
        return False, None
    return True, context.get("contained_previous_scopes")


def release(
    database: Database,
    toolkit: Callable[[], Toolkit],
    run_id: str,
    actor: Actor | str,
    *,
    policy: Policy,
    drill_toolkit: Callable[[], Toolkit] | None = None,
) -> Released:
    """Restore the scopes an aborted run narrowed, with the run's own toolkit (the sandbox's for a drill)."""
    who = as_actor(actor)
    with database.session() as session:
        run, key = _load(session, run_id)
        if run.status is not RunStatus.ABORTED:
            raise RunRefused(
                f"run {run_id} is {run.status.value}; only an aborted run's containment is undone"
            )
        policy.check(Decision.ABORT, who, subject_of(run, key, None))
        pending, scopes = _contained_scopes(run)
        if not pending:
            return Released(None)
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            run.context = {**(run.context or {}), RELEASED: "unknown"}
            _event(session, run, "containment.restore_unknown", who, {}, "contain")
            return Released(
                f"The key's scopes were narrowed and keybot does not know what they were before: restore "
                f"them by hand in the {key.provider} console (key {key.name})."
            )
        plan = _Plan(
            key.provider,
            KeyRef(
                key.provider_key_id,
                key.project,
                redacted_form_of(key.secret_family, key.secret_last4),
                key.name,
            ),
            list(scopes),
            drill_toolkit if run.drill else toolkit,
        )
        _event(session, run, "provider.restore_scopes.started", who, {"scopes": plan.scopes}, "contain")
    error = _restore(plan)
    with database.session() as session:
        run, _key = _load(session, run_id)
        outcome = "failed" if error else "restored"
        run.context = {**(run.context or {}), RELEASED: outcome}
        data = {"scopes": plan.scopes} | ({"error": error} if error else {})
        _event(session, run, f"provider.restore_scopes.{outcome}", who, data, "contain")
    scopes = ", ".join(plan.scopes) or "all permissions"  # [] is how OpenAI says "unrestricted"
    if error:
        return Released(
            f"The key's scopes could NOT be restored ({error}); it still has the narrowed scopes: restore "
            f"{scopes} by hand."
        )
    return Released(f"The key's scopes were restored ({scopes}).", restored=True)


def _restore(plan: _Plan) -> str | None:
    if plan.toolkit is None:
        return "the sandbox is not available in this process"
    provider = plan.toolkit().providers.get(plan.provider)
    restore = getattr(provider, "restore_scopes", None)
    if not callable(restore):
        return f"provider {plan.provider} cannot restore scopes"
    try:
        restore(plan.ref, plan.scopes)
    except Exception as failure:  # reported to the person and on the timeline, never swallowed
        return redact(str(failure))[:300] or type(failure).__name__
    return None
