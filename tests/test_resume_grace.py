"""The clock leaves a run nobody holds to the process that just opened it (that process executes it and
publishes its Slack progress), takes it over once it has been left alone for the grace, takes a run whose
wait just ended at once, and a run the clock resumes updates its progress message like any other."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from bot.db.base import utcnow
from bot.runbooks import service
from bot.runbooks.engine import UNCLAIMED_GRACE
from bot.runbooks.jobs import resume_stale_runs
from bot.runbooks.models import Run, RunStatus
from bot.scheduling.jobs import ClockContext
from tests.world import POLICY, RUNBOOKS, World, unique_name


class Progress:
    def __init__(self) -> None:
        self.changes: list[str] = []
        self.flushed: list[str] = []

    def __call__(self, run_id: str) -> None:
        self.changes.append(run_id)

    def flush(self, run_id: str) -> None:
        self.flushed.append(run_id)


def opened(world: World) -> str:
    key_id = world.add_key(unique_name("grace"), "staging", consumers=[])
    return service.start_run(
        world.database, RUNBOOKS, key_id=key_id, runbook="revoke-replace-audit-notify", mode="emergency",
        actor="U0ONCALL1", reason="grace test", policy=POLICY,
    )  # fmt: skip


def status(world: World, run_id: str) -> RunStatus:
    with world.database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run.status


def test_a_fresh_unclaimed_run_is_left_to_its_opener_then_taken_over_with_its_progress(world: World) -> None:
    run_id = opened(world)
    progress = Progress()
    runtime: Any = type("R", (), {"database": world.database, "engine": lambda self, **_: world.engine()})()
    clock = ClockContext(runtime, None, progress)
    assert resume_stale_runs(clock) == [] and status(world, run_id) is RunStatus.RUNNING
    with world.database.session() as session:  # its opener died before claiming it
        session.execute(update(Run).where(Run.id == run_id).values(updated_at=utcnow() - UNCLAIMED_GRACE * 2))
    assert resume_stale_runs(clock) == [run_id]
    assert status(world, run_id) is RunStatus.SUCCEEDED
    assert run_id in progress.changes and progress.flushed == [run_id]


def test_a_run_whose_wait_just_ended_is_resumed_at_once(world: World) -> None:
    run_id = opened(world)
    engine = world.engine()
    assert engine.resume_stale(woken=[run_id]) == [run_id]
    assert status(world, run_id) is RunStatus.SUCCEEDED
