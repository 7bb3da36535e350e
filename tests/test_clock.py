"""The clock: one leader at a time, and a run stranded by a dead process is finished by the clock's job."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest

from bot.db.session import Database
from bot.runbooks.models import RunStatus
from bot.runtime import Runtime
from bot.scheduling import leader
from bot.scheduling.clock import Clock
from bot.scheduling.jobs import job, registered
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
    standby = Clock(runtime, sender=None)
    assert standby.leading()
    assert clock.run_once() is None, "a clock that does not lead runs nothing"
    assert only_run(world.database).status is not RunStatus.SUCCEEDED
    leader.release(world.database, "clock", standby.holder)
    results = clock.run_once()
    assert results is not None and results["resume_stale_runs"] == [only_run(world.database).id]
    assert only_run(world.database).status is RunStatus.SUCCEEDED
    runtime.database.dispose()


def test_every_domain_registers_its_jobs_with_fixed_ids_coalesced_with_a_grace_time() -> None:
    jobs = registered()
    ids = [j.id for j in jobs]
    assert ids == [
        "alert_escalations", "alert_pagerduty", "deliver_notifications", "detect_anomalies",
        "forget_slack_events", "resume_stale_runs", "rotation_escalations", "rotation_reminders",
        "usage_openai_poll", "usage_retention", "weekly_digest",
    ]  # fmt: skip
    assert {j.run.__module__ for j in jobs} == {
        "bot.alerts.jobs",
        "bot.notifications.jobs",
        "bot.reminders.jobs",
        "bot.slack.jobs",
        "bot.runbooks.jobs",
        "bot.usage.jobs",
        "bot.postmortems.jobs",
    }
    with pytest.raises(ValueError, match="registered twice"):
        job("resume_stale_runs", every=1)(lambda clock: None)


def test_the_scheduler_runs_each_job_under_its_id_coalesced_one_at_a_time(database: Database) -> None:
    class Settings:
        clock_tick_seconds = 7.0

    class FakeRuntime:  # the scheduler only reads settings and the database
        settings = Settings()

    FakeRuntime.database = database  # type: ignore[attr-defined]
    scheduler = Clock(FakeRuntime(), sender=None).scheduler()  # type: ignore[arg-type]
    scheduled = {j.id: j for j in scheduler.get_jobs()}
    assert set(scheduled) == {j.id for j in registered()}
    for scheduled_job in scheduled.values():
        assert scheduled_job.coalesce and scheduled_job.max_instances == 1
        assert scheduled_job.misfire_grace_time >= 60
    assert scheduled["resume_stale_runs"].trigger.interval.total_seconds() == 7.0


@pytest.mark.cli_surface
def test_keybot_clock_once_runs_every_job_once_and_exits(world: World, slack_standin: SlackStandin) -> None:
    name = unique_name("once")
    world.add_key(name, "staging")
    killed = keybot(world, "revoke", name, "--reason", "leak", "--yes", failpoint="after:mint")
    assert killed.returncode == -signal.SIGKILL
    once = keybot(world, "clock", "--once")
    assert once.returncode == 0, once.stderr
    assert f"resume_stale_runs: ['{only_run(world.database).id}']" in once.stdout
    assert "deliver_notifications" in once.stdout and "forget_slack_events" in once.stdout
    assert only_run(world.database).status is RunStatus.SUCCEEDED
