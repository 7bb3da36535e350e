"""Real `keybot serve` and `keybot clock` processes behind a round-robin TCP proxy, for the capacity and
soak benchmarks and the replica test (tests/test_replicas.py).

The proxy picks the next backend for every accepted connection, as a layer-4 load balancer does; clients
that close their connection after each request therefore alternate replicas request by request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEYBOT = [sys.executable, "-c", "from bot.cli.main import main; main()"]
CLOCK_WITH_LEASE = (
    "import datetime, bot.scheduling.clock as c; c.LEASE = datetime.timedelta(seconds={seconds}); "
    "from bot.cli.main import main; main()"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any keybot, Slack, Vault or OpenAI settings, plus `settings`."""
    prefixes = ("SLACK_", "VAULT_", "OPENAI_", "KEYBOT_", "DATABASE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(settings)
    return env


class Keybot:
    """One keybot subprocess (`serve` on a port of its own, or `clock`)."""

    def __init__(
        self, command: str, env: dict[str, str], *, log: Path | None = None, leader_lease: float | None = None
    ) -> None:
        """`leader_lease` (seconds) shortens a clock's leader lease (45 s), so a standby takes over fast."""
        self.port = free_port() if command == "serve" else 0
        args = [*KEYBOT, command] + (["--host", "127.0.0.1", "--port", str(self.port)] if self.port else [])
        if leader_lease is not None:
            args = [sys.executable, "-c", CLOCK_WITH_LEASE.format(seconds=leader_lease), command]
        self._log = open(log, "wb") if log else None  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            args, env=env, stdout=self._log or subprocess.DEVNULL, stderr=self._log or subprocess.DEVNULL
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 30.0) -> Keybot:
        """Until GET /healthz answers 200 (a serve) or the process has had time to start (a clock)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"keybot exited with {self.process.returncode} while starting")
            if not self.port:
                return self
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("keybot did not become ready")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, leases stay held until they expire."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log:
            self._log.close()


class RoundRobinProxy:
    """A TCP proxy on its own event-loop thread: each new connection goes to the next live backend."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = list(backends)
        self.down: set[int] = set()
        self.connections: Counter[int] = Counter()
        self.log: list[int] = []  # the backend each accepted connection went to, in order
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="rr-proxy", daemon=True)
        self.port = 0

    def start(self) -> RoundRobinProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(timeout=10)
        return self

    def mark_down(self, port: int) -> None:
        """A health-checking load balancer would stop sending to a dead replica; so does this proxy."""
        self.down.add(port)

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        return int(self._server.sockets[0].getsockname()[1])

    def _pick(self) -> int:
        live = [b for b in self.backends if b not in self.down] or self.backends
        port = live[self._next % len(live)]
        self._next += 1
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = self._pick()
        self.connections[port] += 1
        self.log.append(port)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
