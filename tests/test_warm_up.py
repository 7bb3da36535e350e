"""Long-running processes import what their worker threads share before starting them.

Two job threads importing the openai SDK's modules for the first time at once can fail with Python's
import-deadlock error (seen on a new clock leader's first tick), so `keybot clock` and `keybot serve` warm
the runtime up first; the one-shot CLI commands stay light.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import main
from bot.cli.context import runtime
from bot.runtime import Runtime

PROBE = """
import sys
from pathlib import Path
from bot.config import Settings
from bot.runtime import Runtime
settings = Settings(_env_file=None, database_url="sqlite:///{db}", state_dir=Path("{state}"), {extra})
Runtime(settings).warm_up()
print(" ".join(m for m in {modules} if m in sys.modules))
"""
MODULES = [
    "bot.providers.openai_admin",
    "bot.usage.openai_poll",
    "openai.types.admin.organization.usage_completions_response",
    "bot.postmortems.narrative",
]


def _warmed(tmp_path: Path, extra: str) -> set[str]:
    code = PROBE.format(db=tmp_path / "k.db", state=tmp_path / "state", extra=extra, modules=MODULES)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_an_openai_configured_runtime_imports_the_sdk_modules_its_threads_use(tmp_path: Path) -> None:
    extra = 'openai_admin_key="sk-admin-warmup", openai_api_key="sk-warmup"'
    assert _warmed(tmp_path, extra) == set(MODULES)


def test_without_openai_nothing_of_it_is_imported(tmp_path: Path) -> None:
    assert _warmed(tmp_path, "") == set()


def test_the_clock_warms_up_before_its_jobs_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'k.db'}")
    monkeypatch.setenv("KEYBOT_STATE_DIR", str(tmp_path / "state"))
    for name in ("SLACK_BOT_TOKEN", "SLACK_CLIENT_ID", "OPENAI_ADMIN_KEY", "VAULT_ADDR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(Runtime, "warm_up", lambda self: order.append("warm_up"))
    from bot.scheduling.clock import Clock

    monkeypatch.setattr(Clock, "run_once", lambda self: order.append("jobs") or {})
    runtime.cache_clear()
    try:
        result = CliRunner().invoke(main.app, ["clock", "--once"])
    finally:
        runtime.cache_clear()
    assert result.exit_code == 0, result.output
    assert order == ["warm_up", "jobs"]
