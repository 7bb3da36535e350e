"""Ack latency of `/revoke-key` on the real HTTP server: waitress + KeybotWSGI + the Bolt app, wired as
`keybot serve` wires it (slack_app_from_runtime, 16 waitress threads), the Slack Web API a local stand-in.

50 client threads with keep-alive connections send 2,000 correctly signed slash commands. What is timed is
the HTTP response (the ack Slack waits at most 3 s for); the modal the handler opens afterwards runs in
Bolt's listener pool, and how late its views.open reaches Slack is reported too (trigger ids die after 3 s).
Clients, stand-in and server share this process (and its GIL). Environment: BENCH_SLACK_REQUESTS (2000),
BENCH_SLACK_CLIENTS (50).
"""

from __future__ import annotations

import http.client
import logging
import os
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from waitress.server import create_server

from bench.common import figure, percentile
from bot.config import Settings
from bot.log import configure_logging
from bot.registry.importer import parse_file
from bot.registry.store import apply_import
from bot.runtime import Runtime
from bot.slack.app import slack_app_from_runtime
from bot.slack.serve import MAX_BODY, KeybotWSGI
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import FORM, new_trigger_id, sign_request, slash_command_body

REPO = Path(__file__).resolve().parents[1]
REGISTRY = REPO / "runbooks" / "examples" / "registry.yaml"
REQUESTS = int(os.environ.get("BENCH_SLACK_REQUESTS", "2000"))
CLIENTS = int(os.environ.get("BENCH_SLACK_CLIENTS", "50"))
SERVER_THREADS = 16  # `keybot serve` default
WARMUP = 20
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
FINGERPRINT_KEY = "bench-slack-fingerprint-key-0123456789abcdef"
KEY = "payments-openai-prod"


def rss_mb() -> float:
    """This process's resident set size now (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Client(threading.Thread):
    """One keep-alive connection sending `count` slash commands back to back."""

    def __init__(self, port: int, count: int, response_url: str, start: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.count, self.response_url, self.go = port, count, response_url, start
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.sent_at: dict[str, float] = {}  # trigger id -> wall clock when the command was sent

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.go.wait()
        for _ in range(self.count):
            trigger = new_trigger_id()
            body = slash_command_body(
                "/revoke-key", KEY, trigger_id=trigger, response_url=self.response_url
            ).encode()
            headers = sign_request(SIGNING_SECRET, body, content_type=FORM)
            self.sent_at[trigger] = time.time()
            started = time.perf_counter()
            try:
                conn.request("POST", "/slack/events", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.latencies.append((time.perf_counter() - started) * 1000)
            self.statuses[status] += 1
        conn.close()


def wait_for_modals(slack: SlackStandin, expected: int, timeout: float) -> float:
    """Seconds until every command's form was filled in (views.update answered), or the timeout."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with slack._lock:
            done = sum(1 for c in slack.calls if c.method == "views.update" and c.status is not None)
        if done >= expected:
            break
        time.sleep(0.05)
    return time.perf_counter() - started


def run() -> None:
    configure_logging("auto", "WARNING", sys.stderr)
    # waitress warns "Task queue depth is N" for every request queued behind busy threads; the depth is
    # what the latency figures already show, and thousands of lines on stderr would only add noise
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    slack = SlackStandin().start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite:///{Path(tmp) / 'keybot.db'}",
            slack_bot_token=slack.bot_token,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.base_url,
            fingerprint_key=FINGERPRINT_KEY,
            state_dir=Path(tmp) / "state",
            runbooks_dir=REPO / "runbooks",
        )
        runtime = Runtime(settings)
        with runtime.database.session() as session:
            apply_import(session, parse_file(REGISTRY), runtime.fingerprinter)
        app, ctx = slack_app_from_runtime(runtime)
        server = create_server(
            KeybotWSGI(app, runtime.database),
            host="127.0.0.1",
            port=0,
            threads=SERVER_THREADS,
            max_request_body_size=MAX_BODY,
            ident="keybot",
        )
        port = int(server.effective_port)  # type: ignore[union-attr]
        serving = threading.Thread(target=server.run, name="waitress", daemon=True)
        serving.start()
        try:
            measure(slack, port)
        finally:
            server.close()
            ctx.worker.shutdown()
            runtime.database.dispose()
            slack.stop()


def measure(slack: SlackStandin, port: int) -> None:
    warm = threading.Event()
    warm.set()
    warmup = Client(port, WARMUP, slack.response_url("warmup"), warm)
    warmup.run()
    wait_for_modals(slack, WARMUP, 30)
    slack.reset()
    rss_before = rss_mb()
    figure("slack.server.rss_mb_before", rss_before, "MB")

    go = threading.Event()
    per_client = [REQUESTS // CLIENTS + (1 if i < REQUESTS % CLIENTS else 0) for i in range(CLIENTS)]
    clients = [Client(port, n, slack.response_url(f"client-{i}"), go) for i, n in enumerate(per_client)]
    for client in clients:
        client.start()
    time.sleep(0.2)  # every connection open and waiting
    started = time.perf_counter()
    go.set()
    for client in clients:
        client.join()
    elapsed = time.perf_counter() - started
    drained = wait_for_modals(slack, REQUESTS, 120)

    latencies = [ms for c in clients for ms in c.latencies]
    statuses: Counter[str] = sum((c.statuses for c in clients), Counter())
    figure("slack.ack.p50", percentile(latencies, 50), "ms")
    figure("slack.ack.p99", percentile(latencies, 99), "ms")
    figure("slack.ack.max", max(latencies), "ms")
    figure("slack.ack.requests_per_second", len(latencies) / elapsed, "req/s")
    rss_after = rss_mb()
    figure("slack.server.rss_mb", rss_after, "MB")
    figure("slack.server.rss_growth_mb", rss_after - rss_before, "MB")
    figure("slack.server.max_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MB")

    sent_at = {t: at for c in clients for t, at in c.sent_at.items()}
    with slack._lock:
        opens = [c for c in slack.calls if c.method == "views.open"]
        updates = sum(1 for c in slack.calls if c.method == "views.update" and c.status is not None)
    delays = [
        (c.at - sent_at[c.args["trigger_id"]]) * 1000 for c in opens if c.args.get("trigger_id") in sent_at
    ]
    if delays:
        figure("slack.views_open_after_command.p50", percentile(delays, 50), "ms")
        figure("slack.views_open_after_command.p99", percentile(delays, 99), "ms")
        late = sum(1 for d in delays if d > 3000)
        if late:
            print(f"# warning: {late}/{len(delays)} views.open calls came > 3 s after the command "
                  "(Slack's trigger_id would have expired)", flush=True)  # fmt: skip
    if updates >= REQUESTS:
        print(f"# all {REQUESTS} forms filled in {drained:.1f} s after the last ack", flush=True)
    else:
        print(f"# warning: only {updates}/{REQUESTS} forms filled in {drained:.0f} s", flush=True)
    if statuses.get("200", 0) != REQUESTS:
        print(f"# warning: HTTP statuses {dict(statuses)} (expected {REQUESTS} x 200)", flush=True)
