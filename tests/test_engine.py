"""The runbook engine end to end: real OpenBao, the spec-validated OpenAI stand-in, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.incidents.models import Incident, IncidentStatus, TimelineEvent
from bot.incidents.service import verify_chain
from bot.notifications.models import Notification
from bot.registry.models import Key, KeyStatus
from bot.registry.service import lookup
from bot.runbooks import service, waits
from bot.runbooks.models import KeyLock, Run, RunStatus, StepStatus
from tests.world import POLICY, RUNBOOKS, World, unique_name


def start(
    world: World,
    key_id: int,
    mode: str = "staged",
    actor: str = "U0ONCALL1",
    runbook: str = "revoke-replace-audit-notify",
) -> str:
    return service.start_run(
        world.database,
        RUNBOOKS,
        key_id=key_id,
        runbook=runbook,
        mode=mode,
        actor=actor,
        reason="key pasted in a public gist",
        policy=POLICY,
    )


def run_of(world: World, run_id: str) -> Run:
    with world.database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run


def vault_versions(world: World, name: str) -> dict[int, dict[str, object]]:
    path = world.keys[name]["path"].removeprefix("secret/")
    meta = world.bao.client().secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")["data"]
    return {int(k): v for k, v in meta["versions"].items()}


def test_staged_production_run_with_two_person_approval(world: World) -> None:
    name = unique_name()
    key_id = world.add_key(name, "production")
    old = world.keys[name]
    run_id = start(world, key_id)
    engine = world.engine()

    assert engine.execute(run_id) is RunStatus.AWAITING_APPROVAL
    run = run_of(world, run_id)
    assert [s.status for s in run.steps][:6] == [StepStatus.SUCCEEDED] * 6
    assert run.step("revoke_old").status is StepStatus.AWAITING_APPROVAL
    assert world.openai.authenticates(old["value"]), "staged mode must not revoke before approval"

    with pytest.raises(service.RunRefused, match=r"(?i)two-person rule"):
        service.approve(world.database, run_id, "U0ONCALL1", policy=POLICY)
    service.approve(world.database, run_id, "U0SECOND1", policy=POLICY)
    assert engine.execute(run_id) is RunStatus.SUCCEEDED

    assert not world.openai.authenticates(old["value"])
    assert len(world.openai.calls_to(r"/api_keys/" + old["id"], method="DELETE")) == 1
    versions = vault_versions(world, name)
    assert len(versions) == 2
    assert versions[1]["destroyed"] is True and versions[2]["destroyed"] is False
    new_secret = world.bao.client().secrets.kv.v2.read_secret_version(
        path=old["path"].removeprefix("secret/"), mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]["api_key"]
    assert world.openai.authenticates(new_secret)
    accounts = [a for a in world.openai.service_accounts.values() if a.name.startswith("keybot-")]
    assert len(accounts) == 1

    with world.database.session() as session:
        key = session.get(Key, key_id)
        assert key is not None and key.status is KeyStatus.ACTIVE and key.last_rotated_at is not None
        assert key.provider_key_id != old["id"]
        found = lookup(session, new_secret, world.fingerprinter)
        assert found.unique is not None and found.unique.id == key_id
        kinds = {(n.kind, n.recipient) for n in session.scalars(select(Notification))}
        assert {
            ("owner_dm", "U0OWNER01"),
            ("backup_dm", "U0BACKUP1"),
            ("manager_summary", "U0MANAGER1"),
            ("consumer", "U0CONSUME1"),
        } <= kinds
        assert any(kind == "channel" for kind, _ in kinds)
        incident = session.scalars(select(Incident)).one()
        assert incident.status is IncidentStatus.RESOLVED and incident.contained_at is not None
        assert session.get(KeyLock, key_id) is None
        checked, breaks = verify_chain(session)
        assert checked > 20 and breaks == []
        events = [e.kind for e in session.scalars(select(TimelineEvent).order_by(TimelineEvent.seq))]
        assert events.index("step.approved") < events.index("effect.intent", events.index("step.approved"))
    rendered = " ".join(str(e) for e in events)
    assert old["value"] not in rendered


def test_staged_never_revokes_before_verified_replacement(world: World) -> None:
    name = unique_name()
    key_id = world.add_key(name, "staging")
    old = world.keys[name]
    world.openai.inject(r"^/models$", status=401, times=None)
    run_id = start(world, key_id)
    assert world.engine().execute(run_id) is RunStatus.NEEDS_ATTENTION
    run = run_of(world, run_id)
    assert run.step("verify_new").status is StepStatus.NEEDS_ATTENTION
    assert "does not authenticate" in (run.attention or "")
    assert run.step("revoke_old").status is StepStatus.PENDING
    assert world.openai.calls_to(r"/api_keys/", method="DELETE") == []
    assert old["id"] in world.openai.keys


def test_emergency_revokes_first_and_warns_owners(world: World) -> None:
    name = unique_name()
    key_id = world.add_key(name, "staging")
    run_id = start(world, key_id, mode="emergency")
    assert world.engine().execute(run_id) is RunStatus.SUCCEEDED
    delete_index = next(i for i, c in enumerate(world.openai.calls) if c.method == "DELETE")
    create_index = next(
        i for i, c in enumerate(world.openai.calls) if c.method == "POST" and "service_accounts" in c.path
    )
    assert delete_index < create_index
    with world.database.session() as session:
        warned = session.scalars(select(Notification).where(Notification.kind == "emergency_dm")).all()
        assert [n.recipient for n in warned] == ["U0OWNER01"]


def test_transient_openai_errors_are_retried(world: World) -> None:
    name = unique_name()
    key_id = world.add_key(name, "staging")
    world.openai.inject(r"/api_keys/", status=429, times=2, method="DELETE", retry_after=1)
    world.openai.inject(r"/service_accounts$", status=500, times=1, method="POST")
    run_id = start(world, key_id)
    assert world.engine().execute(run_id) is RunStatus.SUCCEEDED
    run = run_of(world, run_id)
    assert run.step("revoke_old").attempts == 3 and run.step("mint").attempts == 2


def test_persistent_outage_needs_attention_then_retry_resumes(world: World) -> None:
    name = unique_name()
    key_id = world.add_key(name, "staging")
    world.openai.inject(r"/api_keys/", status=500, times=None, method="DELETE")
    run_id = start(world, key_id)
    assert world.engine().execute(run_id) is RunStatus.NEEDS_ATTENTION
    run = run_of(world, run_id)
    assert run.step("revoke_old").status is StepStatus.NEEDS_ATTENTION
    assert "gave up after 7 attempt(s)" in (run.attention or "")
    world.openai.faults.clear()
    service.retry_step(world.database, run_id, "U0ONCALL1", policy=POLICY)
    assert world.engine().execute(run_id) is RunStatus.SUCCEEDED
    assert not world.openai.authenticates(world.keys[name]["value"])


def test_bad_admin_key_is_explained_and_resumable(world: World) -> None:
    name = unique_name()
    key_id = world.add_key(name, "staging")
    run_id = start(world, key_id)
    broken = world.engine(world.toolkit(admin_key="sk-admin-wrong-key-000000000000"))
    assert broken.execute(run_id) is RunStatus.NEEDS_ATTENTION
    attention = run_of(world, run_id).attention or ""
    assert "OPENAI_ADMIN_KEY" in attention and "sk-admin-wrong" not in attention
    service.retry_step(world.database, run_id, "U0ONCALL1", policy=POLICY)
    assert world.engine().execute(run_id) is RunStatus.SUCCEEDED


def test_vault_unreachable_then_back(world: World) -> None:
    name = unique_name()
    key_id = world.add_key(name, "staging")
    run_id = start(world, key_id)
    offline = world.engine(world.toolkit(vault_addr="http://127.0.0.1:9"))
    assert offline.execute(run_id) is RunStatus.NEEDS_ATTENTION
    assert world.openai.authenticates(world.keys[name]["value"])
    service.retry_step(world.database, run_id, "U0ONCALL1", policy=POLICY)
    assert world.engine().execute(run_id) is RunStatus.SUCCEEDED
    assert len(vault_versions(world, name)) == 2


def test_second_run_on_same_key_is_told_who_holds_it(world: World) -> None:
    key_id = world.add_key(unique_name(), "staging")
    first = start(world, key_id, actor="U0ONCALL1")
    with pytest.raises(service.KeyBusy) as busy:
        start(world, key_id, actor="U0SECOND1")
    assert first in str(busy.value) and "U0ONCALL1" in str(busy.value)
    service.abort(world.database, first, "U0ONCALL1", "drill over", policy=POLICY)
    second = start(world, key_id, actor="U0SECOND1")
    assert second != first


def test_skip_needs_reason_and_unverified_revocation_keeps_leaked_version(world: World) -> None:
    name = unique_name()
    key_id = world.add_key(name, "staging")
    world.openai.inject(r"/api_keys/", status=500, times=None, method="DELETE")
    run_id = start(world, key_id)
    assert world.engine().execute(run_id) is RunStatus.NEEDS_ATTENTION
    with pytest.raises(service.RunRefused, match="reason"):
        service.skip_step(world.database, run_id, "U0ONCALL1", "  ", policy=POLICY)
    with pytest.raises(service.NotAllowed, match="U0OWNER01"):  # a safety step: owners or admins only
        service.skip_step(world.database, run_id, "U0ONCALL1", "revoked by hand", policy=POLICY)
    service.skip_step(world.database, run_id, "U0OWNER01", "revoked by hand in the console", policy=POLICY)
    assert world.engine().execute(run_id) is RunStatus.NEEDS_ATTENTION
    assert run_of(world, run_id).step("verify_revoked").status is StepStatus.NEEDS_ATTENTION
    service.skip_step(world.database, run_id, "U0OWNER01", "will check tomorrow", policy=POLICY)
    assert world.engine().execute(run_id) is RunStatus.FINISHED_WITH_EXCEPTIONS
    versions = vault_versions(world, name)
    assert versions[1]["destroyed"] is False, "never destroy before revocation is verified"
    run = run_of(world, run_id)
    assert run.step("cleanup").output.get("kept_version") == 1
    assert "the leaked key was NOT verified revoked" in (run.attention or "")
    with world.database.session() as session:
        key = session.get(Key, key_id)
        incident = session.get(Incident, run.incident_id)
        assert key is not None and key.status is KeyStatus.COMPROMISED
        assert incident is not None and not incident.status.closed
        owner_dm = session.scalars(select(Notification).where(Notification.kind == "owner_dm")).one()
        assert "revoked and replaced" not in owner_dm.subject + owner_dm.body
        assert "NOT verified revoked" in owner_dm.body


def test_manual_provider_waits_for_humans(world: World) -> None:
    name = unique_name()
    key_id = world.add_key(name, "staging", provider="manual")
    run_id = start(world, key_id)
    engine = world.engine()
    assert engine.execute(run_id) is RunStatus.WAITING_MANUAL
    run = run_of(world, run_id)
    waiting = next(s for s in run.steps if s.status is StepStatus.WAITING_MANUAL)
    assert waiting.name == "mint" and "Mark done" in waiting.output["instructions"]
    with pytest.raises(service.RunRefused):
        service.approve(world.database, run_id, "U0OTHER01", policy=POLICY)
    for _ in range(5):
        if run_of(world, run_id).status is RunStatus.WAITING:  # no traffic API: the consumer must confirm
            with pytest.raises(service.NotAllowed):
                waits.confirm_redeployed(world.database, run_id, f"api-{name}", "U0OUTSID1", policy=POLICY)
            waits.confirm_redeployed(world.database, run_id, f"api-{name}", "U0CONSUME1", policy=POLICY)
        else:
            service.mark_done(world.database, run_id, "U0OWNER01", "done in console", policy=POLICY)
        status = engine.execute(run_id)
        if status is RunStatus.SUCCEEDED:
            break
    assert status is RunStatus.SUCCEEDED
    run = run_of(world, run_id)
    assert run.step("revoke_old").output["attested_by"] == "U0OWNER01"
    with world.database.session() as session:
        owner_dm = session.scalars(select(Notification).where(Notification.kind == "owner_dm")).one()
        assert "confirmed by <@U0OWNER01>" in owner_dm.body and "not verified by keybot" in owner_dm.body
        key = session.get(Key, key_id)
        assert key is not None and key.status is KeyStatus.ACTIVE and key.fingerprint is None


def test_rotation_runbook_has_no_incident(world: World) -> None:
    key_id = world.add_key(unique_name(), "staging")
    run_id = start(world, key_id, runbook="rotate")
    assert world.engine().execute(run_id) is RunStatus.SUCCEEDED
    with world.database.session() as session:
        assert session.get(Key, key_id).status is KeyStatus.ACTIVE  # type: ignore[union-attr]
    with world.database.session() as session:
        assert session.scalars(select(Incident)).all() == []
        assert session.scalars(select(Notification.kind)).all()


def test_tampered_timeline_is_detected(world: World) -> None:
    key_id = world.add_key(unique_name(), "staging")
    run_id = start(world, key_id)
    world.engine().execute(run_id)
    with world.database.session() as session:
        event = session.scalars(select(TimelineEvent).where(TimelineEvent.kind == "step.succeeded")).first()
        assert event is not None
        event.actor = "U0MALLORY"
        seq = event.seq
    with world.database.session() as session:
        _, breaks = verify_chain(session)
    assert len(breaks) == 1 and breaks[0].seq == seq and "modified" in breaks[0].reason


def test_sealed_vault_during_mint_then_unsealed(
    database: object, openai_standin: object, openbao_isolated: object, fingerprinter: object
) -> None:
    """OpenBao sealed mid-run: the step needs attention with a clear reason; after unsealing it resumes."""
    world = World(database, openai_standin, openbao_isolated, fingerprinter, "sealed")  # type: ignore[arg-type]
    name = unique_name()
    key_id = world.add_key(name, "staging")
    run_id = start(world, key_id)
    world.bao.seal()
    assert world.engine().execute(run_id) is RunStatus.NEEDS_ATTENTION
    run = run_of(world, run_id)
    assert run.step("identify").status is StepStatus.NEEDS_ATTENTION
    assert "sealed" in (run.attention or "").lower() or "unavailable" in (run.attention or "").lower()
    assert world.openai.authenticates(world.keys[name]["value"]), "nothing outside changed"
    world.bao.unseal()
    service.retry_step(world.database, run_id, "U0ONCALL1", policy=POLICY)
    assert world.engine().execute(run_id) is RunStatus.SUCCEEDED
    assert not world.openai.authenticates(world.keys[name]["value"])


def test_rotating_a_production_key_needs_the_same_second_person(world: World) -> None:
    key_id = world.add_key(unique_name(), "production")
    run_id = start(world, key_id, runbook="rotate")
    engine = world.engine()
    assert engine.execute(run_id) is RunStatus.AWAITING_APPROVAL
    assert run_of(world, run_id).step("revoke_old").status is StepStatus.AWAITING_APPROVAL
    with pytest.raises(service.RunRefused, match=r"(?i)two-person rule"):
        service.approve(world.database, run_id, "U0ONCALL1", policy=POLICY)
    with pytest.raises(service.NotAllowed):
        service.approve(world.database, run_id, "U0OUTSID1", policy=POLICY)
    service.approve(world.database, run_id, "U0OWNER01", policy=POLICY)
    assert engine.execute(run_id) is RunStatus.SUCCEEDED


def test_a_run_keeps_the_step_definitions_it_started_with(world: World) -> None:
    """Editing the YAML mid-run (here: dropping production's approval) never changes a run in flight."""
    from bot.runbooks.engine import Engine

    key_id = world.add_key(unique_name(), "production")
    run_id = start(world, key_id)
    definition = RUNBOOKS["revoke-replace-audit-notify"]
    loosened = definition.steps["revoke_old"].model_copy(update={"approval": None})
    steps = {**definition.steps, "revoke_old": loosened}
    edited = {**RUNBOOKS, definition.name: definition.model_copy(update={"steps": steps})}
    base = world.engine()
    engine = Engine(world.database, edited, base.toolkit, base.config, policy=POLICY)
    assert engine.execute(run_id) is RunStatus.AWAITING_APPROVAL
    assert run_of(world, run_id).step("revoke_old").status is StepStatus.AWAITING_APPROVAL
