"""`keybot postmortem` in this process: the Markdown on stdout or in --out, where it was saved and any
warning on stderr, an unknown incident in one line with exit status 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import main
from bot.cli.context import CliError, runtime
from bot.config import get_settings
from bot.db.migrate import upgrade
from bot.db.session import Database
from tests import postmortem_cases as cases


@pytest.fixture
def keybot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    database = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    upgrade(database.engine)
    cases.exceptions(database)
    monkeypatch.setenv("DATABASE_URL", database.url)
    get_settings.cache_clear()
    runtime.cache_clear()
    yield CliRunner()
    runtime.cache_clear()
    database.dispose()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(main.app, ["postmortem", *args])
    if isinstance(result.exception, CliError):
        return 2, result.stdout, str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_the_draft_goes_to_stdout_and_where_it_was_saved_to_stderr(keybot: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(keybot, "INC-44", "--no-llm")
    assert code == 0 and out.startswith("# Postmortem INC-00044") and "## ⚠ Exceptions" in out
    saved = tmp_path / "state" / "postmortems" / "INC-00044.md"
    assert f"draft saved to {saved}" in err and saved.read_text(encoding="utf-8") == out
    assert "warning: blaming language" in err and "saved to" not in out


def test_out_writes_the_file_instead(keybot: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "pm.md"
    code, out, err = invoke(keybot, "44", "--out", str(target), "--no-llm")
    assert code == 0 and out == "" and f"draft written to {target}" in err
    assert target.read_text(encoding="utf-8").startswith("# Postmortem INC-00044")


@pytest.mark.parametrize("reference", ["INC-00999", "DRILL-7", "nonsense"])
def test_an_unknown_or_malformed_incident_is_one_line_and_exit_2(keybot: CliRunner, reference: str) -> None:
    code, out, message = invoke(keybot, reference, "--no-llm")
    assert code == 2 and out == "" and "\n" not in message.strip()
    assert ("no incident" in message) if reference != "nonsense" else ("expected an incident" in message)
