"""Outages are bounded and visible: a stalled provider gives up within the step's budget with every retry
shown, and a stalled Vault never delays an emergency revocation, which needs only the provider."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import hvac
from pydantic import SecretStr
from sqlalchemy import select

from bot.incidents.models import TimelineEvent
from bot.providers.openai_admin import OpenAIAdminProvider
from bot.providers.vault import VaultStore
from bot.runbooks import service
from bot.runbooks.context import Toolkit
from bot.runbooks.definitions import RunbookDefinition
from bot.runbooks.engine import Engine, EngineConfig
from bot.runbooks.models import Run, RunStatus, StepStatus
from tests.world import NO_WAIT, POLICY, RUNBOOKS, World, unique_name

RUNBOOK = "revoke-replace-audit-notify"


def budgeted(seconds: float, retries: int = 6) -> dict[str, RunbookDefinition]:
    """The shipped runbook with every step's budget cut to `seconds` (the default is 60 s)."""
    definition = RUNBOOKS[RUNBOOK]
    steps = {
        name: step.model_copy(update={"timeout_seconds": seconds, "retries": retries, "backoff_seconds": 0.3})
        for name, step in definition.steps.items()
    }
    return {**RUNBOOKS, RUNBOOK: definition.model_copy(update={"steps": steps})}


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts TCP connections and never answers: a provider that is up but stuck."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        listener.close()


def engine_for(world: World, runbooks: dict[str, RunbookDefinition], toolkit: Toolkit) -> Engine:
    config = EngineConfig(lease_ttl=timedelta(seconds=30), backoff_scale=1.0, waits=NO_WAIT)
    return Engine(world.database, runbooks, toolkit, config, policy=POLICY)


def start(world: World, runbooks: dict[str, RunbookDefinition], key_id: int) -> str:
    return service.start_run(
        world.database, runbooks, policy=POLICY, key_id=key_id, runbook=RUNBOOK, mode="emergency",
        actor="U0ONCALL1", reason="abused from unknown IPs",
    )  # fmt: skip


def test_a_stalled_provider_gives_up_within_the_budget_with_every_retry_shown(world: World) -> None:
    key_id = world.add_key(unique_name("stall"), "staging")
    runbooks = budgeted(4.0)
    with silent_server() as url:
        provider = OpenAIAdminProvider(SecretStr(world.openai.admin_key), url, timeout=0.5, max_retries=0)
        client = hvac.Client(url=world.bao.addr, token=world.bao.token, timeout=3)
        engine = engine_for(
            world, runbooks, Toolkit({"openai": provider}, VaultStore(client), world.fingerprinter)
        )
        run_id = start(world, runbooks, key_id)
        seen: list[str] = []

        def watch(changed: str) -> None:
            with world.database.session() as session:
                run = session.get(Run, changed)
                assert run is not None
                seen.extend(s.last_error or "" for s in run.steps if s.name == "revoke_old")

        engine.on_change = watch
        began = time.monotonic()
        assert engine.execute(run_id) is RunStatus.NEEDS_ATTENTION
        took = time.monotonic() - began
    assert took < 4.0 + 0.5 + 1.0, f"took {took:.1f} s for a 4 s budget"
    with world.database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None and run.step("revoke_old").status is StepStatus.NEEDS_ATTENTION
        assert "budget 4 s" in (run.attention or "") and "OpenAI timed out" in (run.attention or "")
        retries = session.scalars(
            select(TimelineEvent).where(TimelineEvent.run_id == run_id, TimelineEvent.kind == "step.retrying")
        ).all()
    assert [e.data["attempt"] for e in retries] == list(range(1, len(retries) + 1)) and len(retries) >= 2
    assert all(e.data["of"] == 7 for e in retries)
    assert any("attempt 2 of 7, next in" in line for line in seen), seen  # shown live, while retrying


def test_a_stalled_vault_does_not_delay_an_emergency_revocation(world: World) -> None:
    name = unique_name("bao")
    key_id = world.add_key(name, "staging")
    old = world.keys[name]
    runbooks = budgeted(4.0, retries=2)
    client = hvac.Client(url=world.bao.addr, token=world.bao.token, timeout=1)
    provider = OpenAIAdminProvider(
        SecretStr(world.openai.admin_key), world.openai.base_url, timeout=3, max_retries=0
    )
    engine = engine_for(
        world, runbooks, Toolkit({"openai": provider}, VaultStore(client), world.fingerprinter)
    )
    run_id = start(world, runbooks, key_id)
    bao = world.bao._proc
    assert bao is not None
    os.kill(bao.pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        status = engine.execute(run_id)
        assert not world.openai.authenticates(old["value"]), "the leaked key must be dead despite Vault"
        assert status is RunStatus.NEEDS_ATTENTION
        with world.database.session() as session:
            run = session.get(Run, run_id)
            assert run is not None
            assert run.step("revoke_old").status is StepStatus.SUCCEEDED
            # the proof that the leaked secret no longer works needs it from Vault: it waits for Vault
            assert run.step("verify_revoked").status is StepStatus.NEEDS_ATTENTION
            assert "Vault" in (run.attention or "")
        assert time.monotonic() - began < 4.0 + 1.0 + 3.0
    finally:
        os.kill(bao.pid, signal.SIGCONT)
    service.retry_step(world.database, run_id, "U0ONCALL1", policy=POLICY)
    assert engine.execute(run_id) is RunStatus.SUCCEEDED


def test_a_long_backoff_is_a_durable_timer_not_a_sleep_holding_the_lease(world: World) -> None:
    from bot.runbooks.waits import wake_due

    name = unique_name("timer")
    key_id = world.add_key(name, "staging")
    world.openai.inject(r"/api_keys/", status=500, times=1, method="DELETE")
    runbooks = budgeted(60.0)
    plain = world.toolkit()
    config = EngineConfig(
        lease_ttl=timedelta(seconds=30), backoff_scale=1.0, waits=NO_WAIT, durable_retry_after=0.1
    )
    engine = Engine(world.database, runbooks, plain, config, policy=POLICY)
    run_id = start(world, runbooks, key_id)
    began = time.monotonic()
    assert engine.execute(run_id) is RunStatus.WAITING
    assert time.monotonic() - began < 5, "the backoff must not be slept in place"
    with world.database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None and run.lease_owner is None and run.wake_at is not None
        step = run.step("revoke_old")
        assert step.status is StepStatus.WAITING and "attempt 1 of 7, next in" in (step.last_error or "")
    assert wake_due(world.database) == []  # not due yet
    deadline = time.monotonic() + 10
    while not (woken := wake_due(world.database)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert woken == [run_id]
    assert engine.execute(run_id) is RunStatus.SUCCEEDED
    assert not world.openai.authenticates(world.keys[name]["value"])
