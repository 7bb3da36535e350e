"""`keybot --help` is quick because it imports no sub-command; help reads no configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bot.cli.main import COMMANDS, load_command

HEAVY = ("sqlalchemy", "alembic", "bot.runtime", "bot.db", "pydantic_settings", "slack_sdk", "openai", "hvac")

PROBE = """
import json, sys
sys.argv = ["keybot", *sys.argv[1:]]
from bot.cli.main import main
try:
    main()
except SystemExit as exited:
    code = exited.code
print("MODULES " + json.dumps(sorted(sys.modules)))
print("CODE", code)
"""


def _help(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("KEYBOT_", "DATABASE_URL"))}
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={**environment, **env},
        timeout=60,
        check=False,
    )


def _modules(output: str) -> set[str]:
    line = next(line for line in output.splitlines() if line.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def test_root_help_lists_every_command_without_importing_them() -> None:
    shown = _help("--help")
    assert "CODE 0" in shown.stdout, shown.stderr
    for name in COMMANDS:
        assert f"  {name} " in shown.stdout, name
    loaded = _modules(shown.stdout)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == []
    assert not any(m.startswith("bot.cli.") and m != "bot.cli.main" for m in loaded)


def test_sub_command_help_reads_no_configuration(tmp_path: os.PathLike[str]) -> None:
    """A bad DATABASE_URL (or any setting) does not stop `--help`: configuration is read by commands."""
    shown = _help("runs", "list", "--help", DATABASE_URL="mysql://nope", KEYBOT_STATE_DIR=str(tmp_path))
    assert "CODE 0" in shown.stdout and "--json" in shown.stdout, shown.stdout + shown.stderr
    assert "bot.runtime" not in _modules(shown.stdout)


def test_a_bad_setting_is_still_one_line_when_a_command_runs() -> None:
    failed = _help("runs", "list", DATABASE_URL="mysql://nope")
    assert "CODE 2" in failed.stdout
    assert "DATABASE_URL" in failed.stderr and "Traceback" not in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_listed_command_loads(name: str) -> None:
    command = load_command(name)
    assert command.name == name and (command.callback is not None or hasattr(command, "commands"))


def test_a_mistyped_command_gets_suggestions_from_the_table() -> None:
    mistyped = _help("doctr")
    assert "CODE 2" in mistyped.stdout and "Did you mean 'doctor'?" in mistyped.stderr
