"""`keybot bulk-revoke`: a leak of many keys handled from a terminal, in-process except for one real run."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from sqlalchemy import select

from bot.cli.context import runtime
from bot.cli.main import main
from bot.config import get_settings
from bot.runbooks.models import Run, RunStatus
from tests.fakes import canary_key
from tests.test_crash_recovery import KEYBOT, keybot_env
from tests.world import World, unique_name

ENV = (
    "DATABASE_URL",
    "OPENAI_ADMIN_KEY",
    "OPENAI_ADMIN_BASE_URL",
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "KEYBOT_RUNBOOKS_DIR",
    "KEYBOT_FINGERPRINT_KEY",
    "KEYBOT_BACKOFF_SCALE",
    "KEYBOT_QUIET_MINUTES",
    "KEYBOT_LOG_FORMAT",
)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


Invoke = Callable[..., Result]


@pytest.fixture
def bulk(world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Invoke:
    """Runs `keybot bulk-revoke ARGS` in this process, as an operator would with keybot_env set."""
    env = keybot_env(world)
    for name in ENV:
        monkeypatch.setenv(name, env[name])
    logging_config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def invoke(*args: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "argv", ["keybot", "bulk-revoke", *args])
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        get_settings.cache_clear()
        runtime.cache_clear()
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exited:
            code = exited.code if isinstance(exited.code, int) else 1
        finally:
            if runtime.cache_info().currsize:
                runtime().database.dispose()
            runtime.cache_clear()
            structlog.configure(**logging_config)
            root.handlers[:], root.level = handlers, level
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def runs_by_key(world: World) -> dict[int, Run]:
    """Every run, by key; asserts that no key got two."""
    with world.database.session() as session:
        runs = session.scalars(select(Run)).all()
    by_key = {run.key_id: run for run in runs}
    assert len(by_key) == len(runs), "a key was revoked twice"
    return by_key


def test_names_with_comment_blank_and_duplicate(world: World, bulk: Invoke, tmp_path: Path) -> None:
    names = [unique_name("bulk") for _ in range(3)]
    ids = [world.add_key(name, "staging") for name in names]
    source = tmp_path / "keys.txt"
    source.write_text(f"# from the ticket\n{names[0]}\n\n{names[1]}\n  {names[2]}  \n{names[0]}\n#{ids[1]}\n")
    result = bulk(str(source), "--reason", "leaked in CI", "--yes", "--processes", "1")
    assert result.returncode == 0, result.output
    assert "3 key(s) will be revoked" in result.stdout and "3 succeeded" in result.stdout
    runs = runs_by_key(world)
    assert sorted(runs) == sorted(ids)
    assert all(run.status is RunStatus.SUCCEEDED for run in runs.values())
    for name in names:
        assert not world.openai.authenticates(world.keys[name]["value"])


def test_leaked_env_file_never_prints_the_secrets(world: World, bulk: Invoke, tmp_path: Path) -> None:
    name = unique_name("env")
    key_id = world.add_key(name, "staging")
    registered, stranger = world.keys[name]["value"], canary_key()
    source = tmp_path / "leaked.env"
    source.write_text(f"APP_ENV=staging\nOPENAI_API_KEY={registered}\nOTHER_OPENAI_KEY='{stranger}'\n")
    refused = bulk(str(source), "--reason", "leaked .env", "--yes", "--processes", "1")
    assert refused.returncode == 2, refused.output
    assert "line 1: APP_ENV=staging: no key matches" in refused.stderr
    assert f"line 3: sk-proj-...{stranger[-4:]}: that secret is not in the registry" in refused.stderr
    assert "--skip-unresolved" in refused.stderr and "Traceback" not in refused.output
    assert runs_by_key(world) == {}
    skipped = bulk(str(source), "--reason", "leaked .env", "--yes", "--processes", "1", "--skip-unresolved")
    assert skipped.returncode == 0, skipped.output
    assert runs_by_key(world)[key_id].status is RunStatus.SUCCEEDED
    assert not world.openai.authenticates(registered)
    for result in (refused, skipped):
        assert registered not in result.output and stranger not in result.output


def test_production_key_waits_for_a_second_person(world: World, bulk: Invoke) -> None:
    prod, staging = unique_name("prod"), unique_name("stg")
    prod_id, staging_id = world.add_key(prod, "production"), world.add_key(staging, "staging")
    result = bulk(
        "-", "--reason", "dumped secret store", "--yes", "--processes", "1", stdin=f"{prod}\n#{staging_id}\n"
    )
    assert result.returncode == 3, result.output
    runs = runs_by_key(world)
    assert runs[staging_id].status is RunStatus.SUCCEEDED
    assert runs[prod_id].status is RunStatus.AWAITING_APPROVAL
    assert "1 succeeded" in result.stdout and "1 awaiting approval" in result.stdout
    assert f"keybot runs approve {runs[prod_id].id}" in result.stdout
    assert world.openai.authenticates(world.keys[prod]["value"])


def test_bad_input_is_one_clear_line(world: World, bulk: Invoke, tmp_path: Path) -> None:
    name = unique_name("bad")
    world.add_key(name, "staging")
    good, empty, binary = tmp_path / "keys.txt", tmp_path / "empty.txt", tmp_path / "blob.bin"
    good.write_text(f"{name}\n")
    empty.write_text("# nothing yet\n\n")
    binary.write_bytes(b"\x7fELF\x00\x01")
    cases = [
        ("no such file", (str(tmp_path / "missing.txt"), "--yes")),
        ("--concurrency must be between 1 and 32", (str(good), "--yes", "--concurrency", "0")),
        ("--concurrency must be between 1 and 32", (str(good), "--yes", "--concurrency", "33")),
        ("--mode must be staged or emergency", (str(good), "--yes", "--mode", "bogus")),
        ("--severity must be one of", (str(good), "--yes", "--severity", "sev9")),
        ("no key references", (str(empty), "--yes")),
        ("not a text file", (str(binary), "--yes")),
        ("pass --yes", (str(good),)),
    ]
    for message, args in cases:
        result = bulk(*args, "--reason", "x")
        assert result.returncode == 2, (message, result.output)
        assert message in result.stderr and "Traceback" not in result.output, (message, result.stderr)
    assert runs_by_key(world) == {}


@pytest.mark.cli_surface
def test_worker_processes_from_a_real_keybot(world: World) -> None:
    names = [unique_name("proc") for _ in range(3)]
    ids = [world.add_key(name, "staging") for name in names]
    result = subprocess.run(
        [*KEYBOT, "bulk-revoke", "-", "--reason", "leak", "--yes", "--processes", "2", "--concurrency", "2"],
        input="\n".join(names),
        capture_output=True,
        text=True,
        env=keybot_env(world),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    runs = runs_by_key(world)
    assert sorted(runs) == sorted(ids) and all(r.status is RunStatus.SUCCEEDED for r in runs.values())
    for name in names:
        assert not world.openai.authenticates(world.keys[name]["value"])
