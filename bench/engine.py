"""The runbook engine against the sandbox provider and a real OpenBao: per-run latency, the engine's overhead
over the same outside calls made directly, and a bulk leak of 1,000 keys revoked through the engine.

Each database target gets a fresh sandbox provider (its audit log and service accounts grow with every run,
and the sandbox scans them linearly), so SQLite and PostgreSQL see the same outside world. OpenBao is shared:
every key has its own path. The bulk leak goes through `bot.runbooks.bulk.revoke_many`, the executor behind
`keybot bulk-revoke`: BENCH_BULK_PROCESSES worker processes (default: one per CPU) x BENCH_BULK_THREADS
threads (8). Environment: BENCH_BULK_KEYS (1000; 0 skips the bulk leak), BENCH_ENGINE_RUNS (30 per mode),
BENCH_SANDBOX_NAGLE=1 to keep the sandbox provider's Nagle stalls (see `_sandbox_without_nagle`).

Outside latency is realistic: every OpenAI Admin call waits BENCH_OPENAI_LATENCY_MS (150) ±
BENCH_OPENAI_JITTER_MS (30, normal) and every Vault call BENCH_VAULT_LATENCY_MS (5) before it is made, for
the engine and the direct baseline alike. `cpu_ms` is the process CPU time of one engine run (this process
only: the sandbox and OpenBao run elsewhere); `own_cpu_ms` subtracts the CPU of the same calls made directly.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import random
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import hvac
import yaml
from pydantic import SecretStr
from sqlalchemy import event, select

from bench.common import database_targets, figure, percentile
from bot.db.migrate import ensure_schema
from bot.db.session import Database
from bot.log import configure_logging
from bot.providers.base import KeyProvider, KeyRef, SecretStore
from bot.providers.openai_admin import OpenAIAdminProvider
from bot.providers.vault import VaultStore
from bot.registry.fingerprint import Fingerprinter
from bot.registry.importer import parse_yaml
from bot.registry.models import Key
from bot.registry.store import apply_import
from bot.runbooks.bulk import BulkRequest, Outcome, revoke_many
from bot.runbooks.context import Toolkit, WaitSettings
from bot.runbooks.definitions import RunbookDefinition, load_runbooks
from bot.runbooks.engine import Engine, EngineConfig
from bot.runbooks.models import Run, RunStatus
from bot.sandbox import SandboxOpenAI, SandboxOpenBao, loopback

REPO = Path(__file__).resolve().parents[1]
RUNBOOK = "revoke-replace-audit-notify"
MODES = ("emergency", "staged")
RUNS = int(os.environ.get("BENCH_ENGINE_RUNS", "15"))
BULK = int(os.environ.get("BENCH_BULK_KEYS", "1000"))
BULK_PROCESSES = int(os.environ.get("BENCH_BULK_PROCESSES", str(os.cpu_count() or 2)))
BULK_THREADS = int(os.environ.get("BENCH_BULK_THREADS", "32"))
OPENAI_MS = float(os.environ.get("BENCH_OPENAI_LATENCY_MS", "150"))
OPENAI_JITTER_MS = float(os.environ.get("BENCH_OPENAI_JITTER_MS", "30"))
VAULT_MS = float(os.environ.get("BENCH_VAULT_LATENCY_MS", "5"))
WARMUP = 2
PROJECTS = 20  # keys spread over projects: the provider's mint lists every service account in the project
ACTOR = "U0BENCH001"
REASON = "benchmark: key pasted in a public gist"
CONFIG = EngineConfig(backoff_scale=0.0, waits=WaitSettings(quiet_minutes=0.0))
"""Staged runs go on once the old key's traffic is quiet (the sandbox's keys have none): one usage read."""
EXPOSURE = timedelta(days=7)  # the actions' look-back; keys were last rotated long before it
FINGERPRINT_KEY = b"bench-engine-fingerprint-key-0123456789abcdef"


@dataclass(frozen=True)
class Seeded:
    """A sandbox key whose value is version 1 (the leaked one) at `path` in OpenBao."""

    name: str
    key_id: str
    project: str
    path: str
    value: str

    @property
    def ref(self) -> KeyRef:
        return KeyRef(self.key_id, self.project, f"{self.value[:8]}...{self.value[-4:]}", self.name)


def _sandbox_main(conn: Connection, nodelay: bool) -> None:
    """Child process: serve a SandboxOpenAI and answer add_key / authenticates / stop over `conn`."""
    if nodelay:
        loopback._Handler.disable_nagle_algorithm = True
    sandbox = SandboxOpenAI().start()
    conn.send((sandbox.base_url, sandbox.admin_key))
    while True:
        command, *args = conn.recv()
        if command == "add_key":
            conn.send(sandbox.add_key(*args))
        elif command == "authenticates":
            conn.send(sandbox.authenticates(*args))
        else:
            sandbox.stop()
            conn.send(None)
            return


class RemoteSandbox:
    """The sandbox provider in its own process. In production OpenAI is remote; served in-process, the
    sandbox's request handling would compete with the engine for this process's GIL and be billed to it."""

    def __init__(self, nodelay: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_sandbox_main, args=(child, nodelay), daemon=True)
        self._process.start()
        child.close()  # so a child that dies before answering is an EOFError here, not a hang
        self.base_url, self.admin_key = self._conn.recv()
        self._lock = threading.Lock()

    def _ask(self, *message: object) -> Any:
        with self._lock:
            self._conn.send(message)
            return self._conn.recv()

    def add_key(self, project: str, name: str) -> tuple[str, str]:
        key_id, value = self._ask("add_key", project, name)
        return str(key_id), str(value)

    def authenticates(self, value: str) -> bool:
        return bool(self._ask("authenticates", value))

    def stop(self) -> None:
        if self._process.is_alive():
            with suppress(EOFError, OSError):
                self._ask("stop")
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


class World:
    """A fresh sandbox provider, the shared OpenBao, and toolkits pointing at both."""

    def __init__(self, bao: SandboxOpenBao, fingerprinter: Fingerprinter, nodelay: bool) -> None:
        self.bao = bao
        self.fingerprinter = fingerprinter
        self.openai = RemoteSandbox(nodelay)
        self.vault = hvac.Client(url=bao.addr, token=bao.token, timeout=10)

    def toolkit(self) -> Toolkit:
        provider = OpenAIAdminProvider(SecretStr(self.openai.admin_key), self.openai.base_url, timeout=10.0)
        vault = hvac.Client(url=self.bao.addr, token=self.bao.token, timeout=10)
        far, near = realistic(provider, VaultStore(vault))
        return Toolkit({"openai": far}, near, self.fingerprinter)

    def seed(self, names: list[str]) -> list[Seeded]:
        out = []
        for i, name in enumerate(names):
            project = f"proj_bench_{i % PROJECTS:02d}"
            key_id, value = self.openai.add_key(project, name)
            path = f"secret/bench/{name}"
            self.vault.secrets.kv.v2.create_or_update_secret(
                path=path.removeprefix("secret/"), secret={"api_key": value}, mount_point="secret"
            )
            out.append(Seeded(name, key_id, project, path, value))
        return out

    def register(self, database: Database, keys: list[Seeded]) -> dict[str, int]:
        """Staging keys (no approval gate), one owner/backup/consumer each, rotated long ago."""
        rotated = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
        document = {
            "teams": [{"name": "bench", "channel": "#bench-oncall", "manager": "U0MANAGER1"}],
            "keys": [
                {
                    "name": k.name,
                    "provider": "openai",
                    "provider_key_id": k.key_id,
                    "project": k.project,
                    "environment": "staging",
                    "vault_path": k.path,
                    "secret": k.value,
                    "team": "bench",
                    "owners": ["U0OWNER001"],
                    "backups": ["U0BACKUP01"],
                    "consumers": [{"name": f"api-{k.name}", "contact": "U0CONSUME1"}],
                    "rotation_days": 90,
                    "last_rotated": rotated,
                }
                for k in keys
            ],
        }
        with database.session() as session:
            apply_import(session, parse_yaml(yaml.safe_dump(document)), self.fingerprinter)
            names = [k.name for k in keys]
            ids = {n: i for n, i in session.execute(select(Key.name, Key.id).where(Key.name.in_(names)))}
        return ids

    def stop(self) -> None:
        self.openai.stop()


class Delayed:
    """Adds realistic outside latency before every call: OpenAI is far away, Vault is near. A sleep frees
    the GIL, as waiting on a socket does, so concurrent runs overlap their waits as in production."""

    def __init__(self, inner: object, mean_ms: float, jitter_ms: float = 0.0) -> None:
        self._inner = inner
        self._mean = mean_ms / 1000
        self._jitter = jitter_ms / 1000
        self._random = random.Random(7)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def delayed(*args: Any, **kwargs: Any) -> Any:
            time.sleep(max(0.0, self._random.gauss(self._mean, self._jitter)))
            return attr(*args, **kwargs)

        return delayed


def realistic(provider: KeyProvider, store: SecretStore) -> tuple[KeyProvider, SecretStore]:
    return (
        cast(KeyProvider, Delayed(provider, OPENAI_MS, OPENAI_JITTER_MS)),
        cast(SecretStore, Delayed(store, VAULT_MS)),
    )


class Timed:
    """Wraps a provider or secret store; adds up the wall time and number of calls made through it."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.seconds = 0.0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        return timed

    def take(self) -> tuple[float, int]:
        taken = (self.seconds * 1000, self.calls)
        self.seconds, self.calls = 0.0, 0
        return taken


def _sandbox_without_nagle() -> bool:
    """The sandbox provider's handler writes headers and body separately without TCP_NODELAY, so every
    reply on a kept-alive connection waits ~40 ms for the client's delayed ACK (bot/sandbox/loopback.py sets
    `disable_nagle_algorithm` for exactly this). That stall is an artefact of the stand-in, not of keybot or
    OpenAI, and it would swamp the engine's own cost; it is switched off here unless BENCH_SANDBOX_NAGLE=1."""
    return os.environ.get("BENCH_SANDBOX_NAGLE") != "1"


# ---- the baseline: the engine's outside calls, made directly ----------------------------------------


def direct(
    provider: KeyProvider, store: SecretStore, key: Seeded, mode: str, *, listed: bool = False
) -> None:
    """What the runbook's actions call on the provider and Vault, in the engine's order, with nothing else.

    `listed=False` makes every outside call the actions make (identify's versions + mark_leaked, mint's
    find_run_version, both assess and audit reading usage and audit events). `listed=True` is the shorter
    list from the benchmark's brief: it assumes the leaked version is 1 and reads usage/audit events once.
    """
    run_id = "run_direct_" + secrets.token_hex(6)
    ref, path = key.ref, key.path
    end = datetime.now(UTC)
    start = end - EXPOSURE
    leaked = 1
    if not listed:
        states = ("destroyed", "deleted", "previous")
        leaked = max(v.version for v in store.versions(path) if v.state not in states)
        mark = getattr(store, "mark_leaked", None)
        if callable(mark):
            mark(path, leaked)
    state: dict[str, Any] = {}

    def mint() -> None:
        if not listed:
            assert store.find_run_version(path, run_id) is None
        minted = provider.mint(ref, idempotency_key=f"{run_id}-mint", first_attempt=True)
        stored = store.write_pending(path, minted.value, key_id=minted.key_id, run_id=run_id)
        state["new_version"] = stored.version

    def verify_new() -> None:
        if not provider.authenticates(store.read(path, state["new_version"])):
            raise AssertionError("replacement does not authenticate")

    def revoke() -> None:
        provider.revoke(ref, idempotency_key=f"{run_id}-revoke_old")

    def verify_revoked() -> None:
        if provider.find(ref) is not None or provider.authenticates(store.read(path, leaked)):
            raise AssertionError("old key still alive")

    def audit() -> None:
        provider.usage(ref, start, end)
        provider.audit_events(ref, start, end)

    def distribute() -> None:  # staged mode looks at the old key's traffic before revoking
        provider.usage(ref, end, end)

    if mode == "staged":
        if provider.find(ref) is not None:
            provider.usage(ref, start, end)
        provider.audit_events(ref, start, end)
        steps = [mint, distribute, verify_new, revoke, verify_revoked] + ([] if listed else [audit])
    else:
        steps = [revoke, verify_revoked, mint, verify_new, audit]
    for step in steps:
        step()
    store.promote(path, state["new_version"])
    store.destroy(path, leaked)


# ---- measurements -----------------------------------------------------------------------------------


@contextmanager
def counting_statements(database: Database) -> Iterator[Callable[[], int]]:
    count = [0]

    def on_execute(*_: Any) -> None:
        count[0] += 1

    event.listen(database.engine, "before_cursor_execute", on_execute)
    try:
        yield lambda: count[0]
    finally:
        event.remove(database.engine, "before_cursor_execute", on_execute)


def engine_run(database: Database, runbooks: dict[str, RunbookDefinition], engine: Engine, key_id: int,
               mode: str) -> tuple[str, RunStatus]:  # fmt: skip
    """What `keybot revoke` and `keybot bulk-revoke` do: open the run leased to the engine, execute it."""
    opened = engine.start(key_id=key_id, runbook=RUNBOOK, mode=mode, actor=ACTOR, reason=REASON)
    return opened.state.id, engine.execute(opened)


def bench_engine(database_url: str, openai_url: str, admin_key: str, bao_addr: str, bao_token: str) -> Engine:
    """One worker thread's engine in a bulk worker process (picklable through functools.partial)."""
    provider = OpenAIAdminProvider(SecretStr(admin_key), openai_url, timeout=10.0)
    vault = hvac.Client(url=bao_addr, token=bao_token, timeout=10)
    far, near = realistic(provider, VaultStore(vault))
    toolkit = Toolkit({"openai": far}, near, Fingerprinter(FINGERPRINT_KEY))
    return Engine(_worker_database(database_url), load_runbooks(REPO / "runbooks"), toolkit, CONFIG)


_DATABASES: dict[str, Database] = {}
_DATABASES_LOCK = threading.Lock()


def _worker_database(url: str) -> Database:
    """One Database (engine and pool) per worker process, shared by its threads."""
    with _DATABASES_LOCK:
        if url not in _DATABASES:
            configure_logging("auto", "WARNING", sys.stderr)
            _DATABASES[url] = Database(url, pool_size=BULK_THREADS + 2)
        return _DATABASES[url]


def bulk(database: Database, world: World, key_ids: list[int]) -> tuple[float, list[Outcome]]:
    """`key_ids` revoked and replaced by BULK_PROCESSES worker processes × BULK_THREADS threads."""
    factory = functools.partial(
        bench_engine,
        database.url,
        world.openai.base_url,
        world.openai.admin_key,
        world.bao.addr,
        world.bao.token,
    )
    request = BulkRequest(RUNBOOK, "emergency", ACTOR, REASON)
    started = time.perf_counter()
    outcomes = revoke_many(key_ids, request, factory, processes=BULK_PROCESSES, threads=BULK_THREADS)
    return time.perf_counter() - started, outcomes


def run() -> None:
    configure_logging("auto", "WARNING", sys.stderr)  # a failing step logs there, not between the figures
    runbooks = load_runbooks(REPO / "runbooks")
    fingerprinter = Fingerprinter(FINGERPRINT_KEY)
    direct_ms: dict[str, list[float]] = {m: [] for m in MODES}
    listed_ms: dict[str, list[float]] = {m: [] for m in MODES}
    engine_p50: dict[tuple[str, str], float] = {}
    nodelay = _sandbox_without_nagle()
    if nodelay:
        print("# sandbox provider replies with TCP_NODELAY (BENCH_SANDBOX_NAGLE=1 measures it as shipped)")
    bao = SandboxOpenBao().start()
    try:
        for dialect, url in database_targets("engine"):
            started_target = time.perf_counter()
            database = Database(url)
            try:
                ensure_schema(database.engine)
                world = World(bao, fingerprinter, nodelay)
                try:
                    measure(dialect, database, runbooks, world, direct_ms, listed_ms, engine_p50)
                finally:
                    world.stop()
                if BULK:  # a fresh sandbox: its linear scans of earlier runs' history are not keybot's cost
                    world = World(bao, fingerprinter, nodelay)
                    try:
                        run_bulk(dialect, database, world)
                    finally:
                        world.stop()
            finally:
                database.dispose()
            print(f"# engine bench on {dialect}: {time.perf_counter() - started_target:.1f} s", flush=True)
    finally:
        bao.stop()
    for mode in MODES:
        if not direct_ms[mode]:
            continue
        base = percentile(direct_ms[mode], 50)
        figure(f"engine.{mode}.direct.p50", base, "ms")
        figure(f"engine.{mode}.direct_listed.p50", percentile(listed_ms[mode], 50), "ms")
        for (dialect, m), p50 in engine_p50.items():
            if m == mode:
                figure(f"engine.{mode}.{dialect}.overhead_ratio", p50 / base, "x")


def measure(
    dialect: str,
    database: Database,
    runbooks: dict[str, RunbookDefinition],
    world: World,
    direct_ms: dict[str, list[float]],
    listed_ms: dict[str, list[float]],
    engine_p50: dict[tuple[str, str], float],
) -> None:
    """Per mode: RUNS engine runs, each followed by a direct run and a listed-calls run on other keys."""
    plain = world.toolkit()
    timed_provider, timed_store = Timed(plain.providers["openai"]), Timed(plain.store)
    provider, store = cast(KeyProvider, timed_provider), cast(SecretStore, timed_store)
    toolkit = Toolkit({"openai": provider}, store, plain.fingerprinter)
    engine = Engine(database, runbooks, toolkit, CONFIG)
    count = (RUNS + WARMUP) * len(MODES)
    engine_keys = world.seed([f"{dialect}-e{i:04d}" for i in range(count)])
    direct_keys = world.seed([f"{dialect}-d{i:04d}" for i in range(count)])
    listed_keys = world.seed([f"{dialect}-l{i:04d}" for i in range(count)])
    ids = world.register(database, engine_keys)
    for m, mode in enumerate(MODES):
        samples: list[float] = []
        cpu: list[float] = []
        direct_cpu: list[float] = []
        statements: list[float] = []
        outside: list[float] = []
        calls: list[float] = []
        failed = Counter[str]()
        for i in range(RUNS + WARMUP):
            n = m * (RUNS + WARMUP) + i
            key_id = ids[engine_keys[n].name]
            with counting_statements(database) as executed:
                started, started_cpu = time.perf_counter(), time.process_time()
                timed_provider.take(), timed_store.take()
                check(engine_run(database, runbooks, engine, key_id, mode), failed)
                ms = (time.perf_counter() - started) * 1000
                cpu_ms = (time.process_time() - started_cpu) * 1000
            (p_ms, p_calls), (s_ms, s_calls) = timed_provider.take(), timed_store.take()
            started, started_cpu = time.perf_counter(), time.process_time()
            direct(provider, store, direct_keys[n], mode)
            d_ms = (time.perf_counter() - started) * 1000
            d_cpu_ms = (time.process_time() - started_cpu) * 1000
            d_calls = timed_provider.take()[1] + timed_store.take()[1]
            started = time.perf_counter()
            direct(provider, store, listed_keys[n], mode, listed=True)
            l_ms = (time.perf_counter() - started) * 1000
            l_calls = timed_provider.take()[1] + timed_store.take()[1]
            if i >= WARMUP:
                samples.append(ms)
                cpu.append(cpu_ms)
                direct_cpu.append(d_cpu_ms)
                statements.append(executed())
                outside.append(p_ms + s_ms)
                calls.append(p_calls + s_calls)
                direct_ms[mode].append(d_ms)
                listed_ms[mode].append(l_ms)
        figure(f"engine.{mode}.{dialect}.p50", percentile(samples, 50), "ms")
        figure(f"engine.{mode}.{dialect}.p95", percentile(samples, 95), "ms")
        figure(f"engine.{mode}.{dialect}.outside_calls_ms.p50", percentile(outside, 50), "ms")
        figure(
            f"engine.{mode}.{dialect}.own_ms.p50",
            percentile([a - b for a, b in zip(samples, outside, strict=True)], 50),
            "ms",
        )
        figure(f"engine.{mode}.{dialect}.outside_calls_per_run", percentile(calls, 50), "calls")
        figure(f"engine.{mode}.{dialect}.cpu_ms.p50", percentile(cpu, 50), "ms")
        own_cpu = [a - b for a, b in zip(cpu, direct_cpu, strict=True)]
        figure(f"engine.{mode}.{dialect}.own_cpu_ms.p50", percentile(own_cpu, 50), "ms")
        figure(f"engine.{mode}.{dialect}.sql_statements_per_run", percentile(statements, 50), "statements")
        engine_p50[(dialect, mode)] = percentile(samples, 50)
        print(f"# {mode} on {dialect}: provider/Vault calls per run: engine {calls[-1]:.0f}, "
              f"direct {d_calls}, direct_listed {l_calls}", flush=True)  # fmt: skip
        for outcome, times in failed.items():
            print(f"# warning: {times} {mode} run(s) on {dialect} ended {outcome}", flush=True)


def check(result: tuple[str, RunStatus], failed: Counter[str]) -> None:
    if result[1] is not RunStatus.SUCCEEDED:
        failed[result[1].value] += 1


def run_bulk(dialect: str, database: Database, world: World) -> None:
    keys = world.seed([f"{dialect}-bulk{i:05d}" for i in range(BULK)])
    ids = world.register(database, keys)
    key_ids = [ids[k.name] for k in keys]
    seconds, results = bulk(database, world, key_ids)
    outcomes = Counter(o.status for o in results)
    figure(f"engine.bulk_{BULK}.{dialect}.seconds", seconds, "s")
    figure(f"engine.bulk_{BULK}.{dialect}.runs_per_second", len(key_ids) / seconds, "runs/s")
    print(f"# bulk on {dialect}: {BULK_PROCESSES} processes x {BULK_THREADS} threads", flush=True)
    with database.session() as session:
        stored = Counter(
            status.value for status in session.scalars(select(Run.status).where(Run.key_id.in_(key_ids)))
        )
    bad = {k: v for k, v in outcomes.items() if k != RunStatus.SUCCEEDED.value}
    if bad or stored.get(RunStatus.SUCCEEDED.value, 0) != len(key_ids):
        print(
            f"# warning: bulk on {dialect}: {stored.get(RunStatus.SUCCEEDED.value, 0)}/{len(key_ids)} runs "
            f"SUCCEEDED; stored statuses {dict(stored)}; execute outcomes {dict(bad)}",
            flush=True,
        )
    alive = sum(1 for k in keys if world.openai.authenticates(k.value))
    if alive:
        print(f"# warning: bulk on {dialect}: {alive} leaked key(s) still authenticate", flush=True)
