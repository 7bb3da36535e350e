"""The clock: one leader at a time, and a run stranded by a dead process is finished by the clock's job."""

from __future__ import annotations

import signal
from datetime import timedelta

from bot.db.session import Database
from bot.runbooks.models import RunStatus
from bot.runtime import Runtime
from bot.scheduling import leader
from bot.scheduling.clock import Clock
from tests.slack_world import make_settings
from tests.standins.slack_api import SlackStandin
from tests.test_crash_recovery import keybot, only_run
from tests.world import World, unique_name


def test_only_one_leader(database: Database) -> None:
    ttl = timedelta(seconds=30)
    assert leader.acquire(database, "clock", "a", ttl)
    assert not leader.acquire(database, "clock", "b", ttl)
    assert leader.acquire(database, "clock", "a", ttl), "the leader renews"
    leader.release(database, "clock", "a")
    assert leader.acquire(database, "clock", "b", ttl), "a released lease is taken over"


def test_clock_resumes_a_run_whose_process_died(world: World, slack_standin: SlackStandin) -> None:
    name = unique_name("clock")
    world.add_key(name, "staging")
    killed = keybot(world, "revoke", name, "--reason", "leak", "--yes", failpoint="after:mint")
    assert killed.returncode == -signal.SIGKILL
    runtime = Runtime(make_settings(world, slack_standin))
    clock = Clock(runtime, sender=None)
    assert clock.leading()
    assert clock.resume_stale_runs() == [only_run(world.database).id]
    assert only_run(world.database).status is RunStatus.SUCCEEDED
    runtime.database.dispose()
