"""The ack capacity curve of real `keybot serve` processes, measured open-loop.

Signed `/revoke-key` slash commands are sent at a fixed rate, each on a new connection (as Slack does
through a load balancer), whatever happened to the ones before; a request's latency is counted from the
moment it was *scheduled* to be sent, so a server that falls behind pays for the queue it builds (no
coordinated omission). Configurations: one process on SQLite, one on PostgreSQL, two on PostgreSQL behind
a round-robin TCP proxy. The Slack Web API (views.open, views.update) is a stand-in in its own process that
answers every call after BENCH_SLACK_LATENCY_MS (100) ± BENCH_SLACK_JITTER_MS (25), as Slack is far away;
besides the ack, each command's filled-in form (its views.update answered) is timed from the same start.

Environment: BENCH_CAPACITY_RATES (50,100,200,300), BENCH_CAPACITY_SECONDS (6 per rate),
BENCH_CAPACITY_CONFIGS (sqlite:1,postgresql:1,postgresql:2). After the curve, `python -m bench capacity`
reruns the emergency-revoke and bulk-leak figures for both databases side by side (bench/side_by_side.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text

from bench.common import POSTGRES_ADMIN_URL, figure, percentile
from bench.replicas import REPO, Keybot, RoundRobinProxy, clean_env

if TYPE_CHECKING:
    from bot.shell._wire import Reply

RATES = [int(r) for r in os.environ.get("BENCH_CAPACITY_RATES", "50,100,200,300").split(",")]
SECONDS = float(os.environ.get("BENCH_CAPACITY_SECONDS", "6"))
CONFIGS = os.environ.get("BENCH_CAPACITY_CONFIGS", "sqlite:1,postgresql:1,postgresql:2").split(",")
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
FINGERPRINT_KEY = "bench-capacity-fingerprint-key-0123456789abcdef"
KEY = "payments-openai-prod"
USER = "U0ONCALL1"
SLACK_TIMEOUT = 3.0
SLACK_MS = float(os.environ.get("BENCH_SLACK_LATENCY_MS", "100"))
SLACK_JITTER_MS = float(os.environ.get("BENCH_SLACK_JITTER_MS", "25"))
FILLED = "filled"


def _standin_main(conn: Connection) -> None:
    """The Slack Web API stand-in, in a process of its own so it does not share the client's GIL.

    Every Web API call waits SLACK_MS ± SLACK_JITTER_MS before it is answered, as Slack is far away; the
    time each command's form was filled in (its `views.update`, found through the view `views.open` made
    for the command's trigger id) is sent back when asked, on the shared monotonic clock."""
    import random

    from tests.standins.slack_api import SlackStandin

    class FarSlack(SlackStandin):
        def __init__(self) -> None:
            super().__init__()
            self.trigger_of_view: dict[str, str] = {}
            self.filled: dict[str, float] = {}

        def _api(self, name: str, args: dict[str, Any], headers: Mapping[str, str]) -> Reply:
            time.sleep(max(0.0, random.gauss(SLACK_MS, SLACK_JITTER_MS)) / 1000)
            reply = super()._api(name, args, headers)
            view = (reply.payload or {}).get("view") or {}
            if name == "views.open" and view.get("id"):
                self.trigger_of_view[view["id"]] = str(args.get("trigger_id"))
            elif name == "views.update" and view.get("id") in self.trigger_of_view:
                self.filled[self.trigger_of_view.pop(view["id"])] = time.monotonic()
            return reply

    slack = FarSlack()
    slack.start()
    conn.send((slack.base_url, slack.bot_token))
    while conn.recv() == FILLED:
        filled, slack.filled = slack.filled, {}
        with slack._recorded:
            slack.calls = []
        conn.send(filled)
    slack.stop()


@contextlib.contextmanager
def slack_standin() -> Iterator[tuple[str, str, Connection]]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_standin_main, args=(child,), daemon=True)
    process.start()
    try:
        url, token = parent.recv()
        yield url, token, parent
    finally:
        parent.send("stop")
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


@contextlib.contextmanager
def fresh_database(kind: str, label: str) -> Iterator[str]:
    """An empty SQLite file or PostgreSQL database, dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'keybot.db'}"
        return
    name = f"keybot_bench_{label}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(database_url: str, state_dir: Path) -> None:
    """Schema and the example registry, written before any server starts."""
    from bot.config import Settings
    from bot.registry.importer import parse_file
    from bot.registry.store import apply_import
    from bot.runtime import Runtime

    settings = Settings(
        _env_file=None,
        database_url=database_url,
        fingerprint_key=FINGERPRINT_KEY,
        state_dir=state_dir,
        runbooks_dir=REPO / "runbooks",
    )
    runtime = Runtime(settings)
    with runtime.database.session() as session:
        apply_import(
            session, parse_file(REPO / "runbooks" / "examples" / "registry.yaml"), runtime.fingerprinter
        )
    runtime.database.dispose()


def server_env(
    database_url: str, slack_url: str, bot_token: str, state_dir: Path, **extra: str
) -> dict[str, str]:
    return clean_env(
        DATABASE_URL=database_url,
        SLACK_BOT_TOKEN=bot_token,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_url,
        KEYBOT_FINGERPRINT_KEY=FINGERPRINT_KEY,
        KEYBOT_RUNBOOKS_DIR=str(REPO / "runbooks"),
        KEYBOT_STATE_DIR=str(state_dir),
        KEYBOT_REVOKERS=USER,
        KEYBOT_LOG_LEVEL="WARNING",
        **extra,
    )


@dataclass
class Step:
    """One rate held for a while: latencies from scheduled send time, and what went wrong."""

    rate: int
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_ms_per_request: float = 0.0
    due: dict[str, float] = field(default_factory=dict)
    """Each command's trigger id and scheduled send time, to match the stand-in's `views.update` times."""
    form_latencies: list[float] = field(default_factory=list)
    """Scheduled send time to the filled-in form (`views.update` answered): what the person waits for."""

    def forms_filled(self, filled: dict[str, float]) -> None:
        self.form_latencies = [(filled[t] - due) * 1000 for t, due in self.due.items() if t in filled]

    @property
    def forms_missing(self) -> int:
        return len(self.due) - len(self.form_latencies)

    @property
    def late(self) -> int:
        return sum(1 for ms in self.latencies if ms > SLACK_TIMEOUT * 1000)


def signed_command(response_url: str, trigger_id: str) -> bytes:
    from tests.standins.slack_payloads import FORM, sign_request, slash_command_body

    body = slash_command_body(
        "/revoke-key", KEY, user_id=USER, response_url=response_url, trigger_id=trigger_id
    ).encode()
    headers = sign_request(SIGNING_SECRET, body, content_type=FORM)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST /slack/events HTTP/1.1\r\nHost: keybot\r\n{head}Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


async def _one(port: int, request: bytes, due: float, step: Step) -> None:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            await reader.read()
            writer.close()
        status = status_line.split(b" ", 2)[1].decode() if status_line else "empty"
    except (TimeoutError, OSError) as error:
        status = type(error).__name__
    step.latencies.append((loop.time() - due) * 1000)
    if status != "200":
        step.errors[status] += 1


async def open_loop(port: int, rate: int, seconds: float, response_url: str) -> Step:
    """Send `rate * seconds` commands on a fixed schedule, never waiting for an answer before the next."""
    loop = asyncio.get_running_loop()
    step = Step(rate)
    count = int(rate * seconds)
    triggers = [f"{rate}.{i}.{os.urandom(4).hex()}" for i in range(count)]
    requests = [signed_command(response_url, trigger) for trigger in triggers]
    start = loop.time() + 0.2
    tasks = []
    for i, request in enumerate(requests):
        due = start + i / rate
        step.due[triggers[i]] = due
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(port, request, due, step)))
    await asyncio.gather(*tasks)
    return step


def collect_forms(step: Step, slack: Connection, settle: float = 8.0) -> None:
    """Wait until the step's forms stop arriving (or `settle` s), then match them to their commands."""
    filled: dict[str, float] = {}
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and len(filled) < len(step.due):
        time.sleep(0.5)
        slack.send(FILLED)
        filled.update(slack.recv())
    step.forms_filled(filled)


def curve(kind: str, replicas: int, slack: tuple[str, str, Connection], log_dir: Path) -> list[Step]:
    """Start `replicas` serve processes on a fresh `kind` database and step through RATES."""
    label = f"capacity_{kind}_{replicas}"
    with fresh_database(kind, label) as url, tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        seed(url, state)
        env = server_env(url, slack[0], slack[1], state)
        servers = [Keybot("serve", env, log=log_dir / f"{label}-{i}.log") for i in range(replicas)]
        proxy = None
        try:
            for server in servers:
                server.wait_ready()
            port = servers[0].port
            if replicas > 1:
                proxy = RoundRobinProxy([s.port for s in servers]).start()
                port = proxy.port
            response_url = f"{slack[0].rstrip('/')}/hooks/unused"
            asyncio.run(open_loop(port, 20, 1.0, response_url))  # warm-up: imports, pools, first queries
            steps = []
            for rate in RATES:
                time.sleep(2.0)  # let the previous step's forms finish
                cpu = sum(cpu_seconds(s.pid) for s in servers)
                step = asyncio.run(open_loop(port, rate, SECONDS, response_url))
                collect_forms(step, slack[2])  # the forms that step started are part of its cost
                step.cpu_ms_per_request = (
                    (sum(cpu_seconds(s.pid) for s in servers) - cpu) * 1000 / len(step.latencies)
                )
                steps.append(step)
                report(f"capacity.{kind}.x{replicas}.{rate}rps", step)
            return steps
        finally:
            if proxy:
                proxy.stop()
            for server in servers:
                server.stop()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(name: str, step: Step) -> None:
    figure(f"{name}.ack_p50", percentile(step.latencies, 50), "ms")
    figure(f"{name}.ack_p99", percentile(step.latencies, 99), "ms")
    figure(f"{name}.form_p50", percentile(step.form_latencies, 50), "ms")
    figure(f"{name}.form_p99", percentile(step.form_latencies, 99), "ms")
    figure(f"{name}.server_cpu_per_request", step.cpu_ms_per_request, "ms")
    errors = sum(step.errors.values())
    if errors or step.late or step.forms_missing:
        print(
            f"# {name}: {errors} errors {dict(step.errors)}, {step.late} acks later than 3 s, "
            f"{step.forms_missing} forms never filled in",
            flush=True,
        )


def table(results: dict[str, list[Step]]) -> None:
    print("\n# ack latency from scheduled send time (open loop), ms: p50 / p99 (errors, >3 s)")
    print("# " + "config".ljust(16) + "".join(f"{r} req/s".rjust(24) for r in RATES))
    for config, steps in results.items():
        cells = [
            f"{percentile(s.latencies, 50):.0f} / {percentile(s.latencies, 99):.0f} "
            f"({sum(s.errors.values())}, {s.late})"
            for s in steps
        ]
        print("# " + config.ljust(16) + "".join(c.rjust(24) for c in cells), flush=True)
    print("\n# filled-in form shown, from scheduled send time, ms: p50 / p99 (forms never filled in)")
    for config, steps in results.items():
        cells = [
            f"{percentile(s.form_latencies, 50):.0f} / {percentile(s.form_latencies, 99):.0f} "
            f"({s.forms_missing})"
            for s in steps
        ]
        print("# " + config.ljust(16) + "".join(c.rjust(24) for c in cells), flush=True)
    print(f"# Slack Web API latency in the stand-in: {SLACK_MS:.0f} ± {SLACK_JITTER_MS:.0f} ms per call")


def run() -> None:
    results: dict[str, list[Step]] = {}
    log_dir = Path(tempfile.mkdtemp(prefix="keybot-capacity-"))
    with slack_standin() as slack:
        for config in CONFIGS:
            kind, replicas = config.split(":")
            results[f"{kind} x{replicas}"] = curve(kind, int(replicas), slack, log_dir)
    table(results)
    print(f"# server logs in {log_dir}", flush=True)
    if os.environ.get("BENCH_CAPACITY_SIDE_BY_SIDE", "1") == "1":
        from bench import side_by_side

        side_by_side.run()
