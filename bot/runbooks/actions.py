"""The step actions. Each one is safe to run again after a crash: it looks for its earlier effect first.

Vendor-side steps for keys without an automated provider become checklists (NeedsHuman).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.db.base import utcnow
from bot.incidents.models import IncidentStatus, reference_for
from bot.notifications import render
from bot.notifications.service import Message
from bot.providers.base import KeyProvider, KeyRef, ProviderError, UsageBucket
from bot.registry.models import KeyStatus
from bot.runbooks import failpoints, guarantees
from bot.runbooks.context import NeedsDecision, NeedsHuman, StepContext, StepFailed, WaitFor
from bot.runbooks.transition import KeyRotated
from bot.secrets import redacted_form

Result = dict[str, Any]
EXPOSURE_LOOKBACK = timedelta(days=7)


def _provider(ctx: StepContext, checklist: str) -> KeyProvider:
    provider = ctx.provider
    if provider is None:
        raise NeedsHuman(checklist)
    return provider


def _exposure_window(ctx: StepContext) -> tuple[Any, Any]:
    end = utcnow()
    start = max(ctx.key.last_rotated_at or ctx.key.created_at, end - EXPOSURE_LOOKBACK)
    return start, end


def identify(ctx: StepContext) -> Result:
    """Pin what is being revoked. In staged mode, also snapshot which Vault version holds the leaked key
    (so cleanup destroys exactly that one); emergency mode revokes first and needs nothing but the
    provider, so a slow or down Vault never delays it: mint takes the snapshot instead."""
    ctx.state.setdefault("old_key_id", ctx.key.provider_key_id)
    ctx.state.setdefault("old_redacted", ctx.key.redacted)
    if ctx.mode != "emergency":
        _snapshot_leaked_version(ctx)
    return {
        "key": ctx.key.name,
        "owners": ctx.key.owners,
        "leaked_vault_version": ctx.state.get("leaked_version", "read after revocation"),
    }


def _snapshot_leaked_version(ctx: StepContext) -> None:
    if "leaked_version" in ctx.state:
        return
    leaked = None
    if ctx.toolkit.store is not None:
        candidates = [
            v.version
            for v in ctx.store.versions(ctx.key.vault_path)
            if v.run_id != ctx.run_id and v.state not in ("destroyed", "deleted", "previous")
        ]
        leaked = max(candidates) if candidates else None
        mark = getattr(ctx.store, "mark_leaked", None)
        if leaked is not None and callable(mark) and ctx.runbook != "rotate":
            with ctx.effect("vault.mark_leaked", path=ctx.key.vault_path, version=leaked):
                mark(ctx.key.vault_path, leaked)
    ctx.state["leaked_version"] = leaked


def _exposure(
    provider: object, ref: KeyRef | None, buckets: list[UsageBucket], start: datetime, end: datetime
) -> dict[str, Any]:
    """Requests and tokens from usage buckets; cost from the provider's costs API (daily buckets, so it
    covers the whole days the window touches). Cost is None when unknown, never a made-up zero."""
    cost: float | None = None
    if any(b.cost_usd is not None for b in buckets):
        cost = sum(b.cost_usd or 0 for b in buckets)
    read_costs = getattr(provider, "costs", None)
    if cost is None and ref is not None and callable(read_costs):
        try:
            cost = sum(c.cost_usd for c in read_costs(ref, start, end))
        except ProviderError:
            cost = None  # usage is what the runbook needs; an unreadable cost is reported as unknown
    return {
        "requests": sum(b.requests for b in buckets),
        "tokens": sum(b.input_tokens + b.output_tokens for b in buckets),
        "cost_usd": None if cost is None else round(cost, 4),
    }


def assess(ctx: StepContext) -> Result:
    provider = ctx.provider
    if provider is None:
        return {"skipped": f"no API to assess {ctx.key.provider} keys"}
    live = provider.find(ctx.key.ref)
    start, end = _exposure_window(ctx)
    buckets = provider.usage(ctx.key.ref, start, end) if live else []
    events = provider.audit_events(ctx.key.ref, start, end)
    exposure = _exposure(provider if live else None, ctx.key.ref, buckets, start, end)
    ctx.state["exposure"] = exposure
    ctx.record("assess.result", {"live": live is not None, **exposure, "audit_events": len(events)})
    return {"live": live is not None, **exposure, "audit_events": len(events)}


def contain(ctx: StepContext) -> Result:
    """Narrow the leaked key's scopes, only when asked: in staged mode consumers still depend on it."""
    if not ctx.state.get("contain"):
        return {"skipped": "containment not requested for this run"}
    narrow = getattr(ctx.provider, "contain", None)
    if not callable(narrow):
        return {"skipped": "provider has no reversible containment"}
    with ctx.effect("provider.contain", key_id=ctx.key.provider_key_id) as outcome:
        previous = narrow(ctx.key.ref)
        outcome["previous_scopes"] = previous
    ctx.state["contained_previous_scopes"] = previous
    return outcome


def mint(ctx: StepContext) -> Result:
    """Create the replacement and put it straight into Vault; a re-run reuses the version it already wrote."""
    _snapshot_leaked_version(ctx)  # emergency mode revoked first and reads Vault only now
    existing = ctx.store.find_run_version(ctx.key.vault_path, ctx.run_id)
    if existing is not None:
        ctx.state["new_version"], ctx.state["new_key_id"] = existing.version, existing.key_id
        return {"reused_vault_version": existing.version, "new_key_id": existing.key_id}
    path = ctx.key.vault_path
    provider = _provider(
        ctx,
        f"Create a replacement for {ctx.key.name} in the {ctx.key.provider} console and write it to "
        f"Vault at {path} as a new version; then press Mark done.",
    )
    first_attempt = not ctx.state.get("mint_tried")
    ctx.state["mint_tried"] = True  # committed with the intent, before the call: a re-run looks for leftovers
    # One intent covers both calls: the new value goes from the provider straight into Vault, with no
    # database round trip in between. A crash between them leaves a provider key the re-run sweeps away.
    key_ref = ctx.key.ref
    with ctx.effect("replacement.mint", idempotency_key=ctx.idempotency_key, path=path) as outcome:
        minted = provider.mint(key_ref, idempotency_key=ctx.idempotency_key, first_attempt=first_attempt)
        outcome.update(new_key_id=minted.key_id, owner_id=minted.owner_id)
        failpoints.hit("mint:minted")
        stored = ctx.store.write_pending(path, minted.value, key_id=minted.key_id, run_id=ctx.run_id)
        outcome["version"] = stored.version
    secret = minted.value.get_secret_value()
    ctx.state["new_version"] = stored.version
    ctx.state["new_key_id"] = minted.key_id
    ctx.state["new_owner_id"] = minted.owner_id
    ctx.state["new_fingerprint"] = ctx.toolkit.fingerprinter.fingerprint(secret)
    ctx.state["new_redacted"] = minted.redacted or redacted_form(secret)
    return {"new_key_id": minted.key_id, "vault_version": stored.version}


def distribute(ctx: StepContext) -> Result:
    """Ask each consumer's contact to redeploy; in staged mode, wait until it is safe to revoke.

    Staged mode waits (durably: bot/runbooks/waits.py) for the first of: every consumer confirmed, the old
    key's traffic stayed quiet for a while after distribution, or the deadline, when the on-call is asked
    "Revoke now" or "Wait longer". Emergency mode has already revoked, so it only tells.
    """
    facts = message_facts(ctx)
    added = _enqueue(ctx, render.consumer_messages(facts, ctx.key.consumers))
    contacts = sorted({name for name, contact in ctx.key.consumers if contact})
    result: Result = {"consumers_told": added, "consumers": len(ctx.key.consumers)}
    if not ctx.key.consumers:
        return {**result, "note": "no consumers are recorded for this key: nothing to wait for"}
    if ctx.mode == "emergency":
        return result
    if not contacts:
        return {
            **result,
            "note": "no consumer has a contact recorded: nobody can confirm, nothing to wait for",
        }
    now = utcnow()
    wait = ctx.state.setdefault("distribute", {})
    wait.setdefault("since", now.isoformat())
    wait.setdefault(
        "deadline", (now + timedelta(minutes=ctx.waits.deadline_minutes(ctx.key.environment))).isoformat()
    )
    confirmed = ctx.state.get("confirmed") or {}
    missing = [name for name in contacts if name not in confirmed]
    if not missing:
        return {**result, "confirmed": {name: confirmed[name] for name in contacts}}
    quiet = _quiet_since(ctx, datetime.fromisoformat(wait["since"]), now)
    if quiet is not None:
        return {**result, "quiet_minutes": quiet, "unconfirmed": missing}
    deadline = datetime.fromisoformat(wait["deadline"])
    if now >= deadline:
        raise NeedsDecision(
            f"{len(missing)} consumer(s) have not confirmed they redeployed ({', '.join(missing[:10])}) and "
            "the old key still has traffic. Revoke now (anything still using the old key breaks), "
            "or wait longer."
        )
    until = min(deadline, now + timedelta(seconds=ctx.waits.poll_seconds))
    raise WaitFor(
        until,
        f"waiting for {len(missing)} of {len(contacts)} consumer(s) to confirm they redeployed "
        f"({', '.join(missing[:10])}), or the old key's traffic to stay quiet for "
        f"{ctx.waits.quiet_minutes:g} min; deadline {deadline:%H:%M} UTC",
    )


def _quiet_since(ctx: StepContext, since: datetime, now: datetime) -> float | None:
    """Minutes the old key has had no traffic, if that is at least the quiet period since distribution."""
    quiet = timedelta(minutes=ctx.waits.quiet_minutes)
    provider = ctx.provider
    if provider is None or now - since < quiet or not ctx.key.provider_key_id:
        return None
    try:
        buckets = provider.usage(ctx.key.ref, now - quiet, now)
    except ProviderError:
        return None  # traffic unknown: keep waiting for people or the deadline
    if sum(b.requests for b in buckets) > 0:
        return None
    return round(quiet.total_seconds() / 60, 2)


def verify_new(ctx: StepContext) -> Result:
    provider = _provider(ctx, f"Check that {ctx.key.name}'s replacement works, then press Mark done.")
    version = ctx.state.get("new_version")
    if version is None:
        raise StepFailed("no replacement was minted in this run; retry the mint step first")
    secret = ctx.store.read(ctx.key.vault_path, int(version))
    if not provider.authenticates(secret):
        raise ProviderError.transient_failure("the replacement key does not authenticate yet")
    return {"authenticates": True}


def revoke_old(ctx: StepContext) -> Result:
    if ctx.mode == "staged" and ctx.completed.get("verify_new") != "succeeded":
        raise StepFailed("staged mode refuses to revoke before the replacement is verified")
    provider = _provider(
        ctx, f"Delete {ctx.key.name} ({ctx.key.redacted}) in the vendor console; then Mark done."
    )
    old_id = ctx.state.get("old_key_id")
    if old_id is None and ctx.key.redacted is None:
        raise StepFailed("the registry has neither a provider key id nor a redacted form for this key")
    if ctx.mode == "emergency":
        _enqueue(ctx, render.emergency_warning(message_facts(ctx)), dedupe="emergency")
    with ctx.effect("provider.revoke", key_id=old_id) as outcome:
        outcome["deleted_now"] = provider.revoke(ctx.key.ref, idempotency_key=ctx.idempotency_key)
    ctx.state["revoked_at"] = utcnow().isoformat()
    _mark_incident_contained(ctx)
    return outcome


def verify_revoked(ctx: StepContext) -> Result:
    """The old key is gone from the provider's list, and a request made with the leaked secret fails.

    In emergency mode the leaked Vault version is read here for the first time: after the revocation,
    so a slow or down Vault can delay the proof, never the revocation itself."""
    provider = _provider(ctx, f"Confirm {ctx.key.name} is gone from the vendor console; then Mark done.")
    if provider.find(ctx.key.ref) is not None:
        raise ProviderError.transient_failure("the provider still lists the old key")
    _snapshot_leaked_version(ctx)
    leaked = ctx.state.get("leaked_version")
    if leaked is not None:
        old_secret = ctx.store.read(ctx.key.vault_path, int(leaked))
        if provider.authenticates(old_secret):
            raise ProviderError.transient_failure("a request with the old key still succeeds")
    return {"gone": True, "old_key_rejected": leaked is not None}


def audit(ctx: StepContext) -> Result:
    provider = ctx.provider
    if provider is None:
        return {"skipped": f"no audit API for {ctx.key.provider} keys"}
    start, end = _exposure_window(ctx)
    buckets = provider.usage(ctx.key.ref, start, end)
    events = provider.audit_events(ctx.key.ref, start, end)
    exposure = _exposure(provider, ctx.key.ref, buckets, start, end) | {
        "window": [start.isoformat(), end.isoformat()]
    }
    ctx.state["exposure"] = exposure
    ctx.record(
        "audit.exposure",
        {
            **exposure,
            "events": [
                {"type": e.type, "at": e.effective_at.isoformat(), "actor": e.actor} for e in events[:200]
            ],
        },
    )
    return {**exposure, "audit_events": len(events)}


def cleanup(ctx: StepContext) -> Result:
    """Promote the replacement; destroy the leaked version only once revocation was verified.

    Both Vault changes are idempotent, so one committed intent covers the pair: a re-run after a crash
    between them promotes again (a no-op) and destroys.
    """
    result: Result = {}
    version = ctx.state.get("new_version")
    leaked = ctx.state.get("leaked_version")
    destroy = leaked is not None and ctx.completed.get("verify_revoked") == "succeeded"
    if leaked is not None and not destroy:
        result["kept_version"] = leaked
        ctx.record("cleanup.kept_leaked_version", {"version": leaked, "why": "revocation was not verified"})
    plan = {"promote": version, "destroy": leaked if destroy else None}
    if version is not None or destroy:
        with ctx.effect("vault.cleanup", path=ctx.key.vault_path, **plan):
            if version is not None:
                ctx.store.promote(ctx.key.vault_path, int(version))
                failpoints.hit("cleanup:promoted")
            if leaked is not None and destroy:
                ctx.store.destroy(ctx.key.vault_path, int(leaked))
                result["destroyed_version"] = leaked
    _update_registry(ctx)
    return {**result, "current_version": version}


def notify(ctx: StepContext) -> Result:
    facts = message_facts(ctx)
    messages = render.owner_messages(facts) + render.channel_message(facts) + render.manager_summary(facts)
    return {"enqueued": _enqueue(ctx, messages)}


def _enqueue(ctx: StepContext, messages: list[Message], dedupe: str | None = None) -> int:
    """Queue the messages with the step's next write (deduplicated, so a re-run never queues twice)."""
    ctx.journal.enqueue(messages, f"{ctx.run_id}:{dedupe or ctx.step}")
    return len(messages)


def _mark_incident_contained(ctx: StepContext) -> None:
    run = ctx.journal.run
    if run.incident_status is not IncidentStatus.OPEN:
        return
    ctx.journal.set_incident_status(IncidentStatus.CONTAINED, ctx.actor)
    if run.incident_opened_at is not None:
        seconds = int((utcnow() - run.incident_opened_at).total_seconds())
        ctx.state["time_to_contain"] = f"{seconds // 60} min {seconds % 60} s"


def _update_registry(ctx: StepContext) -> None:
    """The registry row now describes the replacement; the leaked secret's fingerprint is retired."""
    new_key_id = ctx.state.get("new_key_id")
    if new_key_id is None and ctx.provider is not None:
        return  # nothing was minted: the row keeps describing the leaked key (a missing guarantee)
    # A manual vendor's replacement was made by a person (attested): keybot knows no provider id or
    # fingerprint for it, so the row keeps its provider id and the leaked secret's fingerprint is retired.
    family = last4 = None
    redacted = ctx.state.get("new_redacted")
    if redacted and "..." in redacted:
        family, last4 = redacted.split("...", 1)[0], redacted[-4:]
    rotated = KeyRotated(
        provider_key_id=new_key_id,
        fingerprint=ctx.state.get("new_fingerprint"),
        rotated_at=utcnow(),
        vault_path=ctx.key.vault_path,
        secret_family=family,
        secret_last4=last4,
        status=KeyStatus.COMPROMISED
        if guarantees.exceptions(list(ctx.journal.run.steps))
        else KeyStatus.ACTIVE,
    )
    ctx.journal.key_rotated(rotated)


def message_facts(ctx: StepContext) -> dict[str, Any]:
    return {
        "key_name": ctx.key.name,
        "redacted": ctx.state.get("old_redacted") or ctx.key.redacted,
        "environment": ctx.key.environment,
        "actor": ctx.actor,
        "mode": ctx.mode,
        "runbook": ctx.runbook,
        "reason": ctx.state.get("reason"),
        "drill": ctx.drill,
        "vault_path": ctx.key.vault_path,
        "new_version": ctx.state.get("new_version"),
        "new_key_id": ctx.state.get("new_key_id"),
        "owners": ctx.key.owners,
        "backups": ctx.key.backups,
        "team_channel": ctx.key.team_channel,
        "manager": ctx.key.manager,
        "consumers": [c for c, _ in ctx.key.consumers],
        "incident": reference_for(ctx.incident_id) if ctx.incident_id else None,
        "exposure": ctx.state.get("exposure"),
        "time_to_contain": ctx.state.get("time_to_contain"),
        "run_id": ctx.run_id,
        "exceptions": guarantees.exceptions(list(ctx.journal.run.steps)),
        "attestations": guarantees.attestations(list(ctx.journal.run.steps)),
    }


ACTIONS: dict[str, Callable[[StepContext], Result]] = {
    "identify": identify,
    "assess": assess,
    "contain": contain,
    "mint": mint,
    "distribute": distribute,
    "verify_new": verify_new,
    "revoke_old": revoke_old,
    "verify_revoked": verify_revoked,
    "audit": audit,
    "cleanup": cleanup,
    "notify": notify,
}
