"""Containment is reversible: a run aborted before it revoked the key gives the key its scopes back.

Staged mode may narrow a leaked key to read-only while consumers still use it. If the on-call then aborts
(a false alarm, a wrong key), leaving it narrowed would be an outage keybot caused and nobody asked for.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.access.policy import NotAllowed
from bot.incidents.models import TimelineEvent
from bot.providers.base import KeyRef
from bot.registry.models import Key
from bot.runbooks import service
from bot.runbooks.context import WaitSettings
from bot.runbooks.engine import Engine, EngineConfig
from bot.runbooks.models import Run, RunStatus
from tests.world import POLICY, RUNBOOKS, World, unique_name

WAITING = WaitSettings(quiet_minutes=60.0)  # staged mode stops at distribute, after containment


def _contained_run(world: World, *, scopes: list[str] | None = None) -> tuple[str, str]:
    name = unique_name("contain")
    world.add_key(name, "staging")
    key_id = world.keys[name]["id"]
    if scopes is not None:  # set through the Admin API, so the audit log knows them, as it would for real
        provider = world.toolkit().providers["openai"]
        provider.restore_scopes(KeyRef(key_id, world.keys[name]["project"]), scopes)  # type: ignore[attr-defined]
    config = EngineConfig(lease_ttl=timedelta(seconds=30), backoff_scale=0.005, waits=WAITING)
    engine = Engine(world.database, RUNBOOKS, world.toolkit(), config, policy=POLICY)
    with world.database.session() as session:
        registry_id = session.scalar(select(Key.id).where(Key.name == name))
    assert registry_id is not None
    opened = engine.start(
        key_id=registry_id, runbook="revoke-replace-audit-notify", mode="staged", actor="U0ONCALL1",
        reason="pasted in a ticket", contain=True,
    )  # fmt: skip
    assert engine.execute(opened) is RunStatus.WAITING
    assert world.openai.keys[key_id].scopes == ["api.all.read"], "containment did not narrow the key"
    return opened.state.id, key_id


def _events(world: World, run_id: str) -> list[str]:
    with world.database.session() as session:
        return list(
            session.scalars(
                select(TimelineEvent.kind).where(TimelineEvent.run_id == run_id).order_by(TimelineEvent.id)
            )
        )


def test_abort_before_revocation_restores_the_scopes_once_and_records_it(world: World) -> None:
    run_id, key_id = _contained_run(world, scopes=["api.model.read", "api.responses.write"])
    service.abort(world.database, run_id, "U0ONCALL1", "wrong key", policy=POLICY)
    released = service.release_containment(world.database, world.toolkit, run_id, "U0ONCALL1", policy=POLICY)
    assert released.restored and "api.model.read, api.responses.write" in (released.message or "")
    assert world.openai.keys[key_id].scopes == ["api.model.read", "api.responses.write"]
    events = _events(world, run_id)
    assert events.index("provider.restore_scopes.started") < events.index("provider.restore_scopes.restored")
    again = service.release_containment(world.database, world.toolkit, run_id, "U0ONCALL1", policy=POLICY)
    assert again.message is None and _events(world, run_id) == events, "restored twice"


def test_an_unrestricted_key_goes_back_to_all_permissions(world: World) -> None:
    run_id, key_id = _contained_run(world, scopes=[])
    service.abort(world.database, run_id, "U0ONCALL1", "false alarm", policy=POLICY)
    released = service.release_containment(world.database, world.toolkit, run_id, "U0ONCALL1", policy=POLICY)
    assert released.restored and "all permissions" in (released.message or "")
    assert world.openai.keys[key_id].scopes == []


def test_unknown_previous_scopes_are_not_guessed_the_person_is_told(world: World) -> None:
    """Scopes changed outside the Admin API's audit trail: restoring "all permissions" would be a guess."""
    name_run, key_id = _contained_run(world)
    service.abort(world.database, name_run, "U0ONCALL1", "wrong key", policy=POLICY)
    with world.database.session() as session:
        run = session.get(Run, name_run)
        assert run is not None
        run.context = {**run.context, "contained_previous_scopes": None}
    released = service.release_containment(
        world.database, world.toolkit, name_run, "U0ONCALL1", policy=POLICY
    )
    assert not released.restored and "restore them by hand" in (released.message or "")
    assert world.openai.keys[key_id].scopes == ["api.all.read"]
    assert "containment.restore_unknown" in _events(world, name_run)


def test_a_failed_restore_is_reported_and_recorded_not_hidden(world: World) -> None:
    run_id, key_id = _contained_run(world, scopes=[])
    service.abort(world.database, run_id, "U0ONCALL1", "wrong key", policy=POLICY)
    world.openai.inject(r"/api_keys/key_", 500, times=10)
    released = service.release_containment(
        world.database, lambda: world.toolkit(), run_id, "U0ONCALL1", policy=POLICY
    )
    assert not released.restored and "could NOT be restored" in (released.message or "")
    assert world.openai.keys[key_id].scopes == ["api.all.read"]
    assert "provider.restore_scopes.failed" in _events(world, run_id)


def test_someone_who_may_not_abort_cannot_restore_and_nothing_changes(world: World) -> None:
    run_id, key_id = _contained_run(world)
    service.abort(world.database, run_id, "U0ONCALL1", "wrong key", policy=POLICY)
    before = _events(world, run_id)
    with world.database.session() as session:
        context_before = dict(session.get(Run, run_id).context)  # type: ignore[union-attr]
    with pytest.raises(NotAllowed):
        service.release_containment(world.database, world.toolkit, run_id, "U0STRANGER", policy=POLICY)
    assert world.openai.keys[key_id].scopes == ["api.all.read"]
    assert _events(world, run_id) == before
    with world.database.session() as session:
        assert session.get(Run, run_id).context == context_before  # type: ignore[union-attr]


def test_a_run_that_is_not_aborted_keeps_its_containment(world: World) -> None:
    run_id, key_id = _contained_run(world)
    with pytest.raises(service.RunRefused, match="only an aborted run"):
        service.release_containment(world.database, world.toolkit, run_id, "U0ONCALL1", policy=POLICY)
    assert world.openai.keys[key_id].scopes == ["api.all.read"]
