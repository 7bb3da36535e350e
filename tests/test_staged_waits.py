"""Staged mode waits for consumers, durably: the run holds no process while it waits, and a real
`keybot clock` (accelerated) carries it on when every consumer confirmed, when the old key's traffic
stayed quiet, or, after the deadline, when the on-call chooses "Revoke now".
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import select

from bot.incidents.models import TimelineEvent
from bot.runbooks import waits
from bot.runbooks.models import RunStatus, StepStatus
from tests.test_crash_recovery import KEYBOT, keybot_env, only_run
from tests.world import POLICY, World, unique_name

TWO = [("api-a", "U0CONS0001"), ("api-b", "U0CONS0002")]


def env(world: World, **settings: str) -> dict[str, str]:
    values = keybot_env(world)
    values.update(
        KEYBOT_CLOCK_TICK_SECONDS="0.3",
        KEYBOT_WAIT_POLL_SECONDS="0.3",
        KEYBOT_QUIET_MINUTES="60",
        KEYBOT_DISTRIBUTE_DEADLINES="default=60",
    )
    values.update(settings)
    return values


def revoke(world: World, name: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KEYBOT, "revoke", name, "--reason", "pasted in a ticket", "--yes"],
        capture_output=True, text=True, env=env(world, **settings), timeout=120, check=False,
    )  # fmt: skip


@contextmanager
def clock(world: World, **settings: str) -> Iterator[subprocess.Popen[str]]:
    """A real `keybot clock` process on this test's database, stopped the way an operator stops it."""
    proc = subprocess.Popen(
        [*KEYBOT, "clock"],
        env=env(world, **settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def status(world: World) -> RunStatus:
    return only_run(world.database).status


def kinds(world: World, run_id: str) -> list[str]:
    with world.database.session() as session:
        return list(
            session.scalars(
                select(TimelineEvent.kind).where(TimelineEvent.run_id == run_id).order_by(TimelineEvent.id)
            )
        )


def test_the_old_key_is_revoked_only_after_the_last_consumer_confirmed(world: World) -> None:
    name = unique_name("wait")
    world.add_key(name, "staging", consumers=TWO)
    old = world.keys[name]
    started = revoke(world, name)
    assert started.returncode == 3, started.stderr
    assert "waiting for 2 of 2 consumer(s)" in started.stderr
    run = only_run(world.database)
    assert run.status is RunStatus.WAITING and run.lease_owner is None and run.wake_at is not None
    with clock(world):
        waits.confirm_redeployed(world.database, run.id, "api-a", "U0CONS0001", policy=POLICY)
        time.sleep(1.5)  # several clock ticks (each looks at traffic): one confirmation is not enough
        assert not only_run(world.database).step("distribute").status.done
        assert world.openai.authenticates(old["value"]), "revoked before every consumer confirmed"
        waits.confirm_redeployed(world.database, run.id, "api-b", "U0CONS0002", policy=POLICY)
        wait_until(lambda: status(world) is RunStatus.SUCCEEDED, "the clock to finish the run")
    assert not world.openai.authenticates(old["value"])
    events = kinds(world, run.id)
    last_confirmation = max(i for i, k in enumerate(events) if k == "consumer.redeployed")
    revoke_intent = events.index("effect.intent", events.index("step.started", last_confirmation))
    assert last_confirmation < revoke_intent
    distribute = only_run(world.database).step("distribute")
    assert distribute.output["confirmed"] == {"api-a": "U0CONS0001", "api-b": "U0CONS0002"}


def test_quiet_traffic_on_the_old_key_ends_the_wait(world: World) -> None:
    name = unique_name("wait")
    world.add_key(name, "staging", consumers=TWO)
    quick = {"KEYBOT_QUIET_MINUTES": "0.03"}  # 1.8 s without a request on the old key
    assert revoke(world, name, **quick).returncode == 3
    assert status(world) is RunStatus.WAITING
    with clock(world, **quick):
        wait_until(lambda: status(world) is RunStatus.SUCCEEDED, "the quiet-traffic path")
    distribute = only_run(world.database).step("distribute")
    assert distribute.output["quiet_minutes"] == 0.03
    assert sorted(distribute.output["unconfirmed"]) == ["api-a", "api-b"]
    assert not world.openai.authenticates(world.keys[name]["value"])


def test_after_the_deadline_the_on_call_decides_revoke_now(world: World) -> None:
    name = unique_name("wait")
    world.add_key(name, "staging", consumers=TWO)
    old = world.keys[name]
    now = int(time.time())
    for minute in range(-2, 5):  # the old key is busy: traffic never goes quiet
        world.openai.add_usage(old["id"], now + minute * 60, 100, 50, 7)
    short = {"KEYBOT_DISTRIBUTE_DEADLINES": "default=0.03"}  # 1.8 s; quiet stays at 60 min
    assert revoke(world, name, **short).returncode == 3
    run = only_run(world.database)
    with clock(world, **short):
        wait_until(lambda: status(world) is RunStatus.WAITING_MANUAL, "the deadline question")
        asked = only_run(world.database).step("distribute")
        assert asked.status is StepStatus.WAITING_MANUAL and asked.output.get("decide")
        assert world.openai.authenticates(old["value"])
        waits.revoke_now(world.database, run.id, "U0ONCALL1", policy=POLICY)
        wait_until(lambda: status(world) is RunStatus.SUCCEEDED, "revoke now")
    assert not world.openai.authenticates(old["value"])
    distribute = only_run(world.database).step("distribute")
    assert distribute.output["revoke_now_by"] == "U0ONCALL1"
    assert "distribute.revoke_now" in kinds(world, run.id)


def test_a_step_renamed_in_the_runbook_while_a_run_waits_sends_it_to_needs_attention(world: World) -> None:
    from bot.runbooks.engine import Engine
    from bot.runbooks.jobs import resume_stale_runs
    from bot.scheduling.jobs import ClockContext
    from tests.world import RUNBOOKS

    name = unique_name("renamed")
    world.add_key(name, "staging", consumers=TWO)
    assert revoke(world, name).returncode == 3
    run = only_run(world.database)
    assert run.status is RunStatus.WAITING
    definition = RUNBOOKS["revoke-replace-audit-notify"]
    steps = {("hand_out" if k == "distribute" else k): v for k, v in definition.steps.items()}
    modes = {
        m: [("hand_out" if s == "distribute" else s) for s in names] for m, names in definition.modes.items()
    }
    edited = {**RUNBOOKS, definition.name: definition.model_copy(update={"steps": steps, "modes": modes})}
    engine = world.engine()
    renamed = Engine(engine.database, edited, engine.toolkit, engine.config, policy=POLICY)

    class EditedRuntime:  # what `keybot clock` holds after someone edited the YAML and restarted it
        database = world.database

        def engine(self, *, durable_retries: bool = False) -> Engine:
            return renamed

    waits.confirm_redeployed(world.database, run.id, "api-a", "U0CONS0001", policy=POLICY)
    waits.confirm_redeployed(world.database, run.id, "api-b", "U0CONS0002", policy=POLICY)
    from sqlalchemy import update

    from bot.db.base import utcnow
    from bot.runbooks.engine import UNCLAIMED_GRACE
    from bot.runbooks.models import Run

    with world.database.session() as session:  # nobody executed the woken run: the clock's, after the grace
        session.execute(update(Run).where(Run.id == run.id).values(updated_at=utcnow() - 2 * UNCLAIMED_GRACE))
    clock_ = ClockContext(EditedRuntime(), None)  # type: ignore[arg-type]
    for _ in range(3):  # the clock keeps running: no crash loop, nothing else happens
        resume_stale_runs(clock_)
    stuck = only_run(world.database)
    assert stuck.status is RunStatus.NEEDS_ATTENTION
    assert "no longer defined" in (stuck.attention or "") and "distribute" in (stuck.attention or "")
    assert world.openai.authenticates(world.keys[name]["value"]), "nothing past the vanished step ran"
