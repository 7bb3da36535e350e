"""`keybot run` with no configuration: the shell chat on SQLite, a local OpenBao, the example registry and
the sandbox provider, driven through a pipe like a newcomer typing."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class Session:
    def __init__(self, cwd: Path, *args: str) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "VAULT_", "OPENAI_", "KEYBOT_"))
        }
        env.update(KEYBOT_STATE_DIR=str(cwd / ".keybot"), COLUMNS="160")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from bot.cli.main import main; main()", "run", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen = ""
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        """Raw reads, so prompts that end without a newline arrive too."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self.lines.put(chunk.decode(errors="replace"))

    def type(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        for line in lines:
            self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, text: str, timeout: float = 60) -> None:
        self.wait_for_any(text, timeout=timeout)

    def wait_for_any(self, *texts: str, timeout: float = 60) -> int:
        """Index of the first of `texts` that appears."""
        deadline = time.monotonic() + timeout
        while True:
            for index, text in enumerate(texts):
                if text in self.seen:
                    return index
            try:
                self.seen += self.lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"never saw {texts!r}; output so far:\n{self.seen[-3000:]}") from None


def test_newcomer_runs_a_complete_revoke_in_the_shell(tmp_path: Path) -> None:
    shutil.copytree(REPO / "runbooks", tmp_path / "runbooks")
    shutil.copy(REPO / "slack-manifest.yaml", tmp_path)
    started = time.monotonic()
    chat = Session(tmp_path)
    try:
        chat.wait_for("keybot shell chat")
        chat.type("/revoke-key payments-openai-staging")
        if chat.wait_for_any("Mode [1-2, Enter = 1]", "press Enter to fill in this form") != 0:
            chat.type("")  # on a slow machine the form arrives after the prompt, and waits for Enter
            chat.wait_for("Mode [1-2, Enter = 1]")
        chat.type("", "pasted in a public gist", "", "")
        chat.wait_for("Succeeded")
        chat.wait_for("was revoked and replaced")
        chat.type("/key-owner payments-openai-staging")
        chat.wait_for("checkout-api-staging")
        chat.type("quit")
        assert chat.proc.wait(timeout=60) == 0
    finally:
        if chat.proc.poll() is None:
            chat.proc.kill()
    assert time.monotonic() - started < 60, "a newcomer's first full run must take under a minute"
    assert "#payments-oncall" in chat.seen and "Vault `secret/payments/openai-staging` version 2" in chat.seen
    assert "Traceback" not in chat.seen
