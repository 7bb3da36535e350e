"""`keybot usage import | show`, in-process: per-line refusals with line numbers, JSON and CSV, tables."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import main
from bot.cli.context import CliError, runtime
from bot.config import get_settings
from bot.db.base import utcnow
from bot.db.session import Database
from bot.usage.service import series
from bot.usage.types import floor_minute
from tests.usage_helpers import add_key

Invoke = Callable[..., tuple[int, str]]


@pytest.fixture
def keybot(database: Database, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("DATABASE_URL", database.url)
    get_settings.cache_clear()
    runtime.cache_clear()

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main.app, ["usage", *args])
        if isinstance(result.exception, CliError):
            return 2, str(result.exception)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output

    yield invoke  # type: ignore[misc]
    runtime.cache_clear()


@pytest.mark.cli_surface
def test_import_json_lines_keeps_good_lines_and_numbers_the_bad(
    keybot: Invoke, database: Database, tmp_path: Path
) -> None:
    key = add_key(database, "checkout")
    at = floor_minute(utcnow()) - timedelta(minutes=10)
    good = json.dumps({"key": "checkout", "ts": at.isoformat(), "requests": 4, "status": {"429": 2}})
    path = tmp_path / "usage.jsonl"
    path.write_text(
        "\n".join([good, "{oops", good, json.dumps({"key": "nobody", "ts": at.isoformat()})]) + "\n"
    )
    code, output = keybot("import", str(path))
    assert code == 1
    assert "2 lines accepted, 2 rejected" in output
    assert "line 2: not valid JSON" in output and "line 4: unknown key 'nobody'" in output
    with database.session() as session:
        block = series(session, [key], at, at + timedelta(minutes=1))
    assert block.values["requests"].tolist() == [[8.0]] and block.values["status_429"].tolist() == [[4.0]]

    code, output = keybot("show", "checkout", "--json")
    assert code == 0 and json.loads(output) == [
        {"at": at.isoformat(), "requests": 8, "tokens": 0, "cost_usd": 0.0, "status_401": 0, "status_429": 4}
    ]
    code, output = keybot("show", f"#{key}", "--hours", "48")
    assert code == 0 and "per hour" in output and "8" in output


@pytest.mark.cli_surface
def test_import_csv_and_refusals(keybot: Invoke, database: Database, tmp_path: Path) -> None:
    key = add_key(database, "checkout")
    at = floor_minute(utcnow()) - timedelta(minutes=3)
    path = tmp_path / "usage.csv"
    path.write_text(
        "key,ts,requests,tokens,cost,status,source_ip\n"
        f'checkout,{at.isoformat()},3,100,0.5,"{{""401"": 1}}",198.51.100.4\n'
        f"checkout,{at.isoformat()},x,,,,\n"
    )
    code, output = keybot("import", str(path), "--json")
    assert code == 1
    assert json.loads(output) == [
        {"accepted": 1, "rejected": 1, "errors": [{"line": 3, "error": "requests must be a number"}]}
    ]
    with database.session() as session:
        block = series(session, [key], at, at + timedelta(minutes=1))
    assert block.values["tokens"].tolist() == [[100.0]] and block.values["status_401"].tolist() == [[1.0]]
    assert keybot("import", str(tmp_path / "missing.jsonl"))[0] == 2
    code, message = keybot("show", "sk-proj-" + "A1b2C3d4E5f6G7h8" * 6 + "T3BlbkFJ" + "Z9y8X7w6V5u4T3s2" * 5)
    assert code == 2 and "looks like a secret" in message and "Z9y8" not in message
    code, output = keybot("show", "checkout")
    assert code == 0 and f"checkout (#{key})" in output and "0.5000" in output
