"""Revoking many keys at once (a leaked .env, a dumped CI secret store): bounded concurrency across processes.

One Python process is bound by its GIL at a few runs per second, so the work is spread over worker
processes, each running a few threads that pull keys from one shared queue: a slow key never holds up the
rest, and at most `processes × threads` runs are in flight. Every key still gets its own run (and incident),
through the same engine as a single revoke; a worker that dies leaves its runs leased to a dead process, which
`keybot clock` / `keybot runs resume` pick up.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from typing import Any

from bot.log import get_logger
from bot.runbooks import service
from bot.runbooks.engine import Engine, RunBusy

log = get_logger(__name__)

EngineFactory = Callable[[], Engine]
"""Builds one engine per worker thread. Must be picklable (a module-level function or a partial of one)
when more than one process is used: each worker process calls it itself."""

STOP = None
RESULT_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class BulkRequest:
    """What every run in the batch shares."""

    runbook: str
    mode: str
    actor: str
    reason: str
    severity: str = "sev2"


@dataclass(frozen=True)
class Outcome:
    key_id: int
    run_id: str | None
    status: str  # a RunStatus value, or "refused" / "error" / "lost"
    detail: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


def revoke_one(engine: Engine, key_id: int, request: BulkRequest) -> Outcome:
    """Start and execute one run; never raises, so one bad key cannot stop the batch."""
    try:
        opened = engine.start(
            key_id=key_id,
            runbook=request.runbook,
            mode=request.mode,
            actor=request.actor,
            reason=request.reason,
            severity=request.severity,
        )
    except service.RunRefused as refused:
        return Outcome(key_id, getattr(refused, "run_id", None), "refused", str(refused))
    except Exception as error:
        log.exception("bulk start failed", key_id=key_id)
        return Outcome(key_id, None, "error", f"{type(error).__name__}: {error}")
    run_id = opened.state.id
    try:
        return Outcome(key_id, run_id, engine.execute(opened).value)
    except RunBusy as busy:
        return Outcome(key_id, run_id, "refused", str(busy))
    except Exception as error:
        log.exception("bulk run failed", key_id=key_id, run_id=run_id)
        return Outcome(key_id, run_id, "error", f"{type(error).__name__}: {error}")


def _drain(factory: EngineFactory, request: BulkRequest, todo: Any, done: Any) -> None:
    """One worker thread: an engine from the factory, then keys until STOP. If the engine cannot be built,
    every key this thread takes is reported as an error with the reason (never a bare traceback)."""
    try:
        engine: Engine | None = factory()
        failure = ""
    except Exception as error:
        log.exception("bulk worker could not build its engine")
        engine, failure = None, f"this worker could not start: {type(error).__name__}: {error}"
    while (key_id := todo.get()) is not STOP:
        done.put(revoke_one(engine, key_id, request) if engine else Outcome(key_id, None, "error", failure))


def _threads(factory: EngineFactory, request: BulkRequest, todo: Any, done: Any, count: int) -> None:
    workers = [
        threading.Thread(target=_drain, args=(factory, request, todo, done), name=f"bulk-{i}", daemon=True)
        for i in range(count)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def revoke_many(
    key_ids: Iterable[int],
    request: BulkRequest,
    factory: EngineFactory,
    *,
    processes: int = 1,
    threads: int = 8,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Revoke every key; returns one outcome per distinct key, in completion order."""
    keys = list(dict.fromkeys(key_ids))
    if not keys:
        return []
    processes = max(1, min(processes, len(keys)))
    threads = max(1, min(threads, -(-len(keys) // processes)))
    spawned: list[SpawnProcess] = []
    if processes == 1:
        todo: Any = queue.Queue()
        done: Any = queue.Queue()
        runner = threading.Thread(target=_threads, args=(factory, request, todo, done, threads), daemon=True)
        alive: Callable[[], bool] = runner.is_alive
    else:
        context = multiprocessing.get_context("spawn")
        todo, done = context.Queue(), context.Queue()
        spawned = [
            context.Process(target=_threads, args=(factory, request, todo, done, threads), daemon=True)
            for _ in range(processes)
        ]
        alive = lambda: any(p.is_alive() for p in spawned)  # noqa: E731
    for key_id in keys:
        todo.put(key_id)
    for _ in range(processes * threads):
        todo.put(STOP)
    if processes == 1:
        runner.start()
    for process in spawned:
        process.start()
    outcomes: dict[int, Outcome] = {}
    try:
        while len(outcomes) < len(keys):
            try:
                outcome = done.get(timeout=RESULT_WAIT_SECONDS)
            except queue.Empty:
                if alive():
                    continue
                try:  # the last results may have landed between the timeout and the workers' exit
                    outcome = done.get(timeout=RESULT_WAIT_SECONDS)
                except queue.Empty:
                    break
            outcomes[outcome.key_id] = outcome
            if on_outcome is not None:
                on_outcome(outcome)
    finally:
        for process in spawned:
            process.join(timeout=5 if len(outcomes) == len(keys) else 0.1)
            if process.is_alive():
                process.kill()
    lost = [
        Outcome(k, None, "lost", "its worker stopped before reporting; `keybot runs list` shows the run")
        for k in keys
        if k not in outcomes
    ]
    for outcome in lost:
        if on_outcome is not None:
            on_outcome(outcome)
    return [*outcomes.values(), *lost]
