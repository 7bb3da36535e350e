"""Opening a run: what the engine keeps in memory is what the database holds, on both paths.

PostgreSQL opens with one read and one statement; when the key's lock is taken it writes nothing and falls
back to the Core path, which refuses with the holder or clears a finished run's stale lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from bot.incidents.models import Incident, TimelineEvent
from bot.incidents.service import verify_chain
from bot.registry.models import Consumer, Key, KeyOwner, KeyStatus, OwnerRole
from bot.runbooks import journal, service
from bot.runbooks.context import KeyFacts
from bot.runbooks.engine import RunBusy
from bot.runbooks.models import KeyLock, Run, RunStatus
from tests.world import POLICY, RUNBOOKS, World, unique_name


def open_run(world: World, key_id: int, runbook: str = "revoke-replace-audit-notify", **kwargs: Any) -> Any:
    return service.open_run(
        world.database, RUNBOOKS, key_id=key_id, runbook=runbook, mode=None, actor="U0ONCALL1",
        reason="pasted in a public gist", policy=POLICY, **kwargs,
    )  # fmt: skip


@contextmanager
def counted(world: World) -> Iterator[list[str]]:
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    event.listen(world.database.engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(world.database.engine, "before_cursor_execute", seen)


@pytest.mark.parametrize("runbook", ["revoke-replace-audit-notify", "rotate"])
def test_the_opened_run_is_what_the_database_holds(world: World, runbook: str) -> None:
    key_id = world.add_key(unique_name("open"), "staging")
    opened = open_run(world, key_id, runbook, lease=("test:1:opener", timedelta(seconds=60)))

    with world.database.session() as session:
        stored = journal.load(session, opened.state.id)
        facts = KeyFacts.load(session.connection(), key_id)
        run = session.get(Run, opened.state.id)
        key = session.get(Key, key_id)
        lock = session.get(KeyLock, key_id)
        assert run is not None and key is not None and lock is not None
        assert run.lease_owner == opened.lease_owner == "test:1:opener" and run.lease_expires_at is not None
        assert lock.run_id == opened.state.id
        if runbook == "rotate":
            assert opened.state.incident_id is None and key.status is KeyStatus.ROTATING
            return
        assert key.status is KeyStatus.COMPROMISED
        events = session.scalars(
            select(TimelineEvent).where(TimelineEvent.incident_id == opened.state.incident_id)
        ).all()
        assert [e.kind for e in events] == ["incident.opened", "run.started"]
        assert (events[-1].seq, events[-1].hash) == (opened.head.seq, opened.head.hash)
        assert verify_chain(session, opened.state.incident_id) == (2, [])
        incident = session.get(Incident, opened.state.incident_id)
        assert incident is not None and incident.opened_at == opened.state.incident_opened_at
    assert stored == opened.state and facts == opened.key


def test_postgresql_opens_with_one_read_and_one_statement(world: World) -> None:
    if world.database.engine.dialect.name != "postgresql":
        pytest.skip("the single-statement open is PostgreSQL's")
    key_id = world.add_key(unique_name("fast"), "staging")
    with counted(world) as statements:
        open_run(world, key_id)
    assert len(statements) == 2, statements


def test_a_taken_key_writes_nothing_and_names_the_holder(world: World) -> None:
    key_id = world.add_key(unique_name("taken"), "staging")
    first = open_run(world, key_id).state.id
    with world.database.session() as session:
        runs_before = session.scalar(select(func.count()).select_from(Run))
        incidents_before = session.scalar(select(func.count()).select_from(Incident))

    with pytest.raises(service.KeyBusy, match=first):
        open_run(world, key_id)
    with world.database.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == runs_before
        assert session.scalar(select(func.count()).select_from(Incident)) == incidents_before


def test_a_finished_runs_stale_lock_is_cleared(world: World) -> None:
    key_id = world.add_key(unique_name("stale"), "staging")
    first = open_run(world, key_id).state.id
    with world.database.session() as session:
        run = session.get(Run, first)
        assert run is not None
        run.status = RunStatus.SUCCEEDED  # finished, but its lock was left behind (a crash at the wrong time)

    second = open_run(world, key_id)
    with world.database.session() as session:
        lock = session.get(KeyLock, key_id)
        assert lock is not None and lock.run_id == second.state.id


def test_an_unknown_key_is_refused(world: World) -> None:
    with pytest.raises(service.RunRefused, match="no key #987654321"):
        open_run(world, 987654321)
    with world.database.session() as session:
        assert session.get(KeyLock, 987654321) is None


def test_an_opened_run_belongs_to_the_engine_that_opened_it(world: World) -> None:
    key_id = world.add_key(unique_name("owned"), "staging")
    opener, other = world.engine(), world.engine()
    opened = opener.start(key_id=key_id, runbook="revoke-replace-audit-notify", mode="emergency",
                          actor="U0ONCALL1", reason="pasted in a public gist")  # fmt: skip

    with pytest.raises(RunBusy, match="being executed by"):
        other.execute(opened)  # leased to the opener: another engine may not take it from memory or the row
    assert opener.execute(opened) is RunStatus.SUCCEEDED
    calls = len(world.openai.calls)
    assert opener.execute(opened) is RunStatus.SUCCEEDED  # again: read back from the database, nothing redone
    assert len(world.openai.calls) == calls


def test_a_key_with_many_owners_and_consumers_takes_one_incident_number(world: World) -> None:
    """The key's row comes back once per (owner, consumer) pair; the incident id is still drawn once."""
    crowded = world.add_key(unique_name("crowded"), "staging")
    with world.database.session() as session:
        session.add_all(
            [KeyOwner(key_id=crowded, slack_user_id=f"U0OWNER{i}X", role=OwnerRole.OWNER) for i in range(3)]
        )
        session.add_all([Consumer(key_id=crowded, name=f"svc-{i}", contact=None) for i in range(3)])
    first = open_run(world, crowded)
    second = open_run(world, world.add_key(unique_name("next"), "staging"))

    assert first.state.incident_id is not None and second.state.incident_id == first.state.incident_id + 1
    assert len(first.key.owners) == 4 and len(first.key.consumers) == 4
