"""A soak at steady mixed load: two `keybot serve` replicas and two `keybot clock` processes on one
PostgreSQL database, behind the round-robin proxy, for `--minutes` (30 by default).

Load, each at a fixed rate: `/revoke-key` and `/key-owner` slash commands, button clicks (Approve on a run
that does not exist, answered with a refusal through the response URL), and `POST /ingest/usage` batches.
The clocks run every job on their own schedule (stale runs, the outbox, reminders, usage, detection).
Every `--every` seconds it samples, per process, the resident memory, the open file descriptors
(/proc/<pid>/fd) and, for the database, the connections (pg_stat_activity) and the outbox depth (pending
notifications). At the end it compares the first third with the last third of the samples and fits a
slope per minute: a figure is flat when the last third is within 10 % (or 2 units) of the first.

Only when named: `python -m bench soak` (30 minutes), `python -m bench soak --minutes 3`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

from bench.capacity import SIGNING_SECRET, USER, fresh_database, seed, server_env
from bench.replicas import Keybot, RoundRobinProxy
from bot.slack import ids
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import block_actions_body, post_signed, slash_command_body

INGEST_TOKEN = "bench-soak-ingest-token-0123456789"
KEY = "payments-openai-prod"
RATES = {"command": 4.0, "click": 2.0, "ingest": 1.0}
"""Requests per second of each kind, all through the proxy."""


class Load(threading.Thread):
    """One kind of request at a fixed rate until stopped; counts answers by status."""

    def __init__(self, name: str, rate: float, send: Callable[[], int], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.rate, self.send, self.stop = rate, send, stop
        self.statuses: Counter[str] = Counter()

    def run(self) -> None:
        due = time.monotonic()
        while not self.stop.is_set():
            try:
                self.statuses[str(self.send())] += 1
            except OSError as error:
                self.statuses[type(error).__name__] += 1
            due += 1 / self.rate
            self.stop.wait(max(0.0, due - time.monotonic()))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def verdict(samples: list[float], minutes: list[float]) -> str:
    third = max(1, len(samples) // 3)
    first, last = float(np.mean(samples[:third])), float(np.mean(samples[-third:]))
    slope = float(np.polyfit(minutes, samples, 1)[0]) if len(samples) > 2 else 0.0
    flat = last - first <= max(0.10 * abs(first), 2.0)
    word = "flat" if flat else "GROWING"
    return f"first third {first:8.1f}  last third {last:8.1f}  slope {slope:+7.2f}/min  {word}"


def soak(minutes: float, every: float) -> None:
    slack = SlackStandin().start()
    with fresh_database("postgresql", "soak") as url, tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        seed(url, state)
        env = server_env(url, slack.base_url, slack.bot_token, state, KEYBOT_INGEST_TOKEN=INGEST_TOKEN)
        env["KEYBOT_CLOCK_TICK_SECONDS"] = "2"
        logs = Path(tempfile.mkdtemp(prefix="keybot-soak-"))
        processes = [Keybot("serve", env, log=logs / f"serve{i}.log") for i in range(2)]
        processes += [Keybot("clock", env, log=logs / f"clock{i}.log") for i in range(2)]
        for process in processes:
            process.wait_ready()
        proxy = RoundRobinProxy([p.port for p in processes[:2]]).start()
        events = f"http://127.0.0.1:{proxy.port}/slack/events"
        database = url.rsplit("/", 1)[1]
        admin = create_engine(url.replace(f"/{database}", "/postgres"), isolation_level="AUTOCOMMIT")
        db = create_engine(url)

        def command() -> int:
            which = "/revoke-key" if time.monotonic() % 2 < 1 else "/key-owner"
            body = slash_command_body(which, KEY, user_id=USER, response_url=slack.response_url(USER))
            return post_signed(events, SIGNING_SECRET, body).status

        def click() -> int:
            value = ids.ActionRef(kind="run", id="run-that-does-not-exist", step="revoke_old").encode()
            body = block_actions_body(ids.APPROVE, value, user_id=USER, response_url=slack.response_url(USER))
            return post_signed(events, SIGNING_SECRET, body).status

        def ingest() -> int:
            now = datetime.now(UTC).replace(microsecond=0).isoformat()
            lines = "\n".join(
                json.dumps({"key": KEY, "ts": now, "requests": 3, "tokens": 120, "source_ip": f"10.0.0.{i}"})
                for i in range(10)
            )
            request = urllib.request.Request(
                f"http://127.0.0.1:{proxy.port}/ingest/usage", data=lines.encode(), method="POST",
                headers={"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/x-ndjson"},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http to the proxy
                return int(response.status)

        stop = threading.Event()
        loads = [
            Load(n, RATES[n], f, stop)
            for n, f in (("command", command), ("click", click), ("ingest", ingest))
        ]
        samples: dict[str, list[float]] = {}
        at: list[float] = []
        started = time.monotonic()
        try:
            for load in loads:
                load.start()
            while time.monotonic() - started < minutes * 60:
                at.append((time.monotonic() - started) / 60)
                for i, process in enumerate(processes):
                    name = f"{'serve' if process.port else 'clock'}{i % 2}"
                    samples.setdefault(f"{name}.rss_mb", []).append(rss_mb(process.pid))
                    samples.setdefault(f"{name}.open_fds", []).append(open_fds(process.pid))
                with admin.connect() as conn:
                    count = conn.execute(
                        text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"), {"d": database}
                    ).scalar_one()
                samples.setdefault("db.connections", []).append(float(count))
                with db.connect() as conn:
                    depth = conn.execute(text("SELECT count(*) FROM notifications WHERE status = 'pending'"))
                    samples.setdefault("outbox.pending", []).append(float(depth.scalar_one()))
                time.sleep(every)
        finally:
            stop.set()
            for load in loads:
                load.join(timeout=15)
            proxy.stop()
            for process in processes:
                process.stop()
            db.dispose()
            admin.dispose()
            slack.stop()
        print(
            f"# soak: {minutes:g} min, {len(at)} samples every {every:g} s, 2 serve + 2 clock on PostgreSQL"
        )
        for load in loads:
            sent = sum(load.statuses.values())
            print(f"# {load.name}: {sent} sent at {load.rate:g}/s, answers {dict(load.statuses)}")
        for name, values in samples.items():
            print(f"soak.{name.ljust(20)} {verdict(values, at)}", flush=True)
        print(f"# server logs in {logs}")


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("BENCH_SOAK_MINUTES", "30")))
    parser.add_argument("--every", type=float, default=float(os.environ.get("BENCH_SOAK_EVERY", "10")))
    if argv is None:  # `python -m bench soak --minutes 3`: the options after the benchmark's name
        argv = sys.argv[sys.argv.index("soak") + 1 :] if "soak" in sys.argv else []
    args = parser.parse_args(argv)
    soak(args.minutes, args.every)


if __name__ == "__main__":
    run(sys.argv[1:])
