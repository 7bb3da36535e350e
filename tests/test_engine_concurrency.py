"""What others can do to a run while the engine holds it: abort it, take its lease, write to its timeline.

The engine re-reads nothing between steps, so these prove it still notices: an abort stops it before the
next outside change, a lost lease stops it without another write, and a human's note on the incident does
not fork the hash chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.exc import IntegrityError

from bot.db.base import utcnow
from bot.incidents.chain import PendingEvent
from bot.incidents.models import Incident, IncidentStatus, TimelineEvent
from bot.incidents.service import append_event, verify_chain
from bot.notifications.models import Notification
from bot.notifications.service import Message, outbox_rows
from bot.registry.models import Key, KeyStatus
from bot.runbooks import journal, lease, service
from bot.runbooks.context import Toolkit
from bot.runbooks.engine import RunBusy
from bot.runbooks.models import KeyLock, Run, RunStatus, StepStatus
from bot.runbooks.transition import Batch, IncidentChange, KeyRotated
from bot.runbooks.writer import LeaseLost, Writer
from tests.test_engine import run_of, start
from tests.world import POLICY, World, unique_name


class Hooked:
    """A provider that calls `hook` once, the first time `method` is called."""

    def __init__(self, inner: Any, method: str, hook: Callable[[], None]) -> None:
        self._inner, self._method, self._hook, self.fired = inner, method, hook, False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def hooked(*args: Any, **kwargs: Any) -> Any:
            if not self.fired:
                self.fired = True
                self._hook()
            return attr(*args, **kwargs)

        return hooked


def hooked_toolkit(world: World, method: str, hook: Callable[[], None]) -> tuple[Toolkit, Hooked]:
    plain = world.toolkit()
    provider = Hooked(plain.providers["openai"], method, hook)
    return Toolkit({"openai": provider}, plain.store, plain.fingerprinter), provider  # type: ignore[dict-item]


def events_of(world: World, run_id: str) -> list[TimelineEvent]:
    with world.database.session() as session:
        return list(session.scalars(select(TimelineEvent).where(TimelineEvent.run_id == run_id)))


def test_abort_during_a_step_stops_before_the_next_outside_change(world: World) -> None:
    name = unique_name("abort")
    key_id = world.add_key(name, "staging")
    run_id = start(world, key_id)
    abort = lambda: service.abort(world.database, run_id, "U0SECOND1", "wrong key", policy=POLICY)  # noqa: E731
    toolkit, provider = hooked_toolkit(world, "authenticates", abort)  # verify_new, just before revoke_old

    assert world.engine(toolkit).execute(run_id) is RunStatus.ABORTED

    assert provider.fired
    assert world.openai.calls_to(r"/api_keys/", method="DELETE") == []
    assert world.openai.authenticates(world.keys[name]["value"])
    run = run_of(world, run_id)
    assert run.status is RunStatus.ABORTED and "aborted by U0SECOND1" in (run.attention or "")
    assert run.lease_owner is None
    kinds = [e.kind for e in events_of(world, run_id)]
    assert "run.aborted" in kinds and "run.succeeded" not in kinds
    revoke = [e.kind for e in events_of(world, run_id) if e.data.get("effect") == "provider.revoke"]
    assert revoke == ["effect.intent", "effect.cancelled"]
    with world.database.session() as session:
        assert session.get(KeyLock, key_id) is None
        assert verify_chain(session)[1] == []


def test_lost_lease_stops_the_engine_without_touching_the_run(world: World) -> None:
    name = unique_name("lease")
    key_id = world.add_key(name, "staging")
    run_id = start(world, key_id)

    def take_over() -> None:
        with world.database.session() as session:
            session.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(lease_owner="elsewhere:1:thief", lease_expires_at=utcnow() + timedelta(minutes=5))
            )

    toolkit, _ = hooked_toolkit(world, "authenticates", take_over)
    with pytest.raises(RunBusy, match="taken over"):
        world.engine(toolkit).execute(run_id)

    assert world.openai.calls_to(r"/api_keys/", method="DELETE") == []
    run = run_of(world, run_id)
    assert run.lease_owner == "elsewhere:1:thief" and run.status is RunStatus.RUNNING


def test_a_note_added_mid_run_joins_the_chain_without_forking_it(world: World) -> None:
    name = unique_name("note")
    key_id = world.add_key(name, "staging")
    run_id = start(world, key_id)
    incident_id = run_of(world, run_id).incident_id
    assert incident_id is not None

    def note() -> None:
        with world.database.session() as session:
            append_event(session, incident_id, "note.added", "U0HUMAN01", {"text": "customer reports 401s"})

    toolkit, provider = hooked_toolkit(world, "find", note)
    assert world.engine(toolkit).execute(run_id) is RunStatus.SUCCEEDED

    assert provider.fired
    with world.database.session() as session:
        events = list(
            session.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.incident_id == incident_id)
                .order_by(TimelineEvent.seq)
            )
        )
        checked, breaks = verify_chain(session, incident_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.kind for e in events].count("note.added") == 1
    assert checked == len(events) and breaks == []


def test_writer_raises_a_database_failure(world: World) -> None:
    unreachable = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2}
    )
    writer = Writer(unreachable, "run_nowhere", 1, None, "test:1:w", timedelta(seconds=30))
    batch = Batch(run={"status": RunStatus.RUNNING, "attention": None, "finished_at": None, "context": {}},
                  steps=[], events=[])  # fmt: skip
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)connect|refused"):
        writer.write(batch)
    writer.close()
    assert time.monotonic() - started < 10


class SlowReads:
    """Usage takes 1.2 s; when audit events are read next, what does the database say about the run?"""

    def __init__(self, inner: Any, world: World, run_id: str) -> None:
        self._inner, self._world, self._run_id = inner, world, run_id
        self.seen: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def usage(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(1.2)
        return self._inner.usage(*args, **kwargs)

    def audit_events(self, *args: Any, **kwargs: Any) -> Any:
        if not self.seen:
            self.seen = {s.name: s.status.value for s in run_of(self._world, self._run_id).steps}
        return self._inner.audit_events(*args, **kwargs)


def test_a_slow_read_lets_the_record_catch_up_before_the_next_one(world: World) -> None:
    """Reads do not write the run's record each time, but never let it fall more than a second behind."""
    key_id = world.add_key(unique_name("slow"), "staging")
    run_id = start(world, key_id)
    plain = world.toolkit()
    slow = SlowReads(plain.providers["openai"], world, run_id)
    toolkit = Toolkit({"openai": slow}, plain.store, plain.fingerprinter)  # type: ignore[dict-item]

    assert world.engine(toolkit).execute(run_id) is RunStatus.SUCCEEDED
    assert slow.seen["identify"] == "succeeded" and slow.seen["assess"] == "running"


def claimed_writer(world: World, run_id: str) -> tuple[Writer, Any]:
    """A writer holding the run's lease, as the engine would, and the run as it was read."""
    with world.database.session() as session:
        assert lease.claim(session, run_id, "test:1:writer", timedelta(seconds=60))
        state = journal.load(session, run_id)
    assert state is not None
    writer = Writer(
        world.database.engine, run_id, state.key_id, state.incident_id, "test:1:writer", timedelta(seconds=60)
    )
    return writer, state


def full_batch(state: Any, recipient: str | None = "U0OWNER01") -> Batch:
    """The first step started, with an event, a notification, the incident contained, the key lock released
    and the key rotated: every part a transition can carry."""
    first = state.steps[0]
    started = {"step_id": first.id, **first.values(), "status": StepStatus.RUNNING, "attempts": 1}
    event = PendingEvent.now("step.started", "U0TEST001", run_id=state.id, step=first.name)
    notification = outbox_rows([Message("owner_dm", "U0OWNER01", "subject", "body")], dedupe_prefix=state.id,
                               incident_id=state.incident_id, run_id=state.id)[0]  # fmt: skip
    return Batch(
        run={"status": RunStatus.RUNNING, "attention": None, "finished_at": None, "context": {"n": 1}},
        steps=[started],
        events=[event],
        notifications=[{**notification, "recipient": recipient}],
        incident=IncidentChange(IncidentStatus.CONTAINED, contained=True),
        release_lock=True,
        key_rotated=KeyRotated("key_rotated_by_batch", "f" * 64, utcnow(), "secret/rotated"),
    )


def parts_written(world: World, state: Any) -> dict[str, bool]:
    with world.database.session() as session:
        key = session.get(Key, state.key_id)
        incident = session.get(Incident, state.incident_id)
        assert key is not None and incident is not None
        return {
            "step": run_of(world, state.id).steps[0].status is StepStatus.RUNNING,
            "event": any(e.kind == "step.started" for e in events_of(world, state.id)),
            "notification": bool(
                session.scalars(select(Notification).where(Notification.run_id == state.id)).all()
            ),
            "incident": incident.status is IncidentStatus.CONTAINED and incident.contained_at is not None,
            "lock released": session.get(KeyLock, state.key_id) is None,
            "key rotated": key.provider_key_id == "key_rotated_by_batch" and key.status is KeyStatus.ACTIVE,
        }


def test_every_part_of_a_batch_is_written(world: World) -> None:
    key_id = world.add_key(unique_name("parts"), "staging")
    run_id = start(world, key_id)
    writer, state = claimed_writer(world, run_id)
    with world.database.session() as session:
        family = session.get(Key, key_id).secret_family  # type: ignore[union-attr]

    writer.write(full_batch(state))
    writer.close()
    assert all(parts_written(world, state).values()), parts_written(world, state)
    with world.database.session() as session:
        key = session.get(Key, key_id)
        assert key is not None and key.secret_family == family and key.vault_path == "secret/rotated"
        assert key.fingerprint == "f" * 64


def test_a_failing_part_keeps_nothing_of_its_batch(world: World) -> None:
    key_id = world.add_key(unique_name("atomic"), "staging")
    run_id = start(world, key_id)
    writer, state = claimed_writer(world, run_id)

    with pytest.raises(IntegrityError):
        writer.write(full_batch(state, recipient=None))  # NOT NULL: the database refuses the notification
    assert not any(parts_written(world, state).values()), parts_written(world, state)

    writer.write(full_batch(state))  # the connection is still usable
    writer.close()
    assert all(parts_written(world, state).values())


def test_a_batch_without_the_lease_writes_nothing(world: World) -> None:
    key_id = world.add_key(unique_name("nolease"), "staging")
    run_id = start(world, key_id)
    writer, state = claimed_writer(world, run_id)
    with world.database.session() as session:
        session.execute(update(Run).where(Run.id == run_id).values(lease_owner="elsewhere:1:thief"))

    with pytest.raises(LeaseLost):
        writer.write(full_batch(state))
    writer.close()
    assert run_of(world, run_id).lease_owner == "elsewhere:1:thief"
    assert not any(parts_written(world, state).values()), parts_written(world, state)


class SlowFind:
    """The provider's first `find` takes `seconds`: an outside call longer than the run's lease."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self._inner, self._seconds, self.slow_calls = inner, seconds, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def find(self, *args: Any, **kwargs: Any) -> Any:
        if self.slow_calls == 0:
            self.slow_calls += 1
            time.sleep(self._seconds)
        return self._inner.find(*args, **kwargs)


def test_a_heartbeat_keeps_the_lease_through_a_call_longer_than_the_lease(world: World) -> None:
    import threading

    from bot.runbooks.engine import Engine, EngineConfig

    key_id = world.add_key(unique_name("beat"), "staging")
    run_id = start(world, key_id)
    plain = world.toolkit()
    slow = SlowFind(plain.providers["openai"], seconds=3.0)
    toolkit = Toolkit({"openai": slow}, plain.store, plain.fingerprinter)  # type: ignore[dict-item]
    base = world.engine()
    config = EngineConfig(lease_ttl=timedelta(seconds=1.2), backoff_scale=0.005, waits=base.config.waits)
    engine = Engine(world.database, base.runbooks, toolkit, config, policy=POLICY)
    outcome: list[RunStatus] = []
    runner = threading.Thread(target=lambda: outcome.append(engine.execute(run_id)))
    runner.start()
    time.sleep(2.2)  # inside the slow call, well past the 1.2 s lease
    with world.database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None and run.lease_owner == engine.worker
        assert run.lease_expires_at is not None and run.lease_expires_at > utcnow()
    with pytest.raises(RunBusy):
        world.engine().execute(run_id)
    runner.join(timeout=60)
    assert outcome == [RunStatus.SUCCEEDED]
