"""The tests' OpenBao: the sandbox's own dev server launcher, with a file audit device and seal helpers.

One launcher (:class:`bot.sandbox.openbao.SandboxOpenBao`) starts every OpenBao keybot and its tests use;
this module only adds what faults need (``seal()``/``unseal()``) and a parsed view of the audit log.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import hvac

from bot.sandbox.openbao import SandboxOpenBao

__all__ = ["OpenBaoServer"]


class OpenBaoServer(SandboxOpenBao):
    """``start()`` launches the server and waits until ``/v1/sys/health`` says unsealed (~0.2 s)."""

    def __init__(self, root_token: str = "keybot-test-root", *, startup_timeout: float = 10.0) -> None:  # noqa: S107
        super().__init__(token=root_token, startup_timeout=startup_timeout, audit=True)

    def cleanup(self) -> None:
        """``stop()``: the server and its directory (audit log included) are gone."""
        self.stop()

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
