"""`keybot alerts` in this process: list and show read the domain, ack / expected / resolve are the
service's decisions acting as `cli:<user>@<host>`; every refusal is one clear line that changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.alerts.opening import raise_alerts
from bot.cli import identity, main
from bot.cli.context import CliError, runtime
from bot.config import get_settings
from bot.db.migrate import upgrade
from bot.db.session import Database
from tests.alerts_helpers import NOW, add_key, add_team, alert_row, counts, finding, settings

Invoke = Callable[..., tuple[int, str]]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[Database, int]]:
    database = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    upgrade(database.engine)
    add_team(database)
    key = add_key(database, owners=("cli:owner@box",))
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    yield database, alert_id
    database.dispose()


def as_user(database: Database, monkeypatch: pytest.MonkeyPatch, user: str) -> Invoke:
    monkeypatch.setenv("DATABASE_URL", database.url)
    monkeypatch.setenv(
        "KEYBOT_STATE_DIR", str(Path(database.url.removeprefix("sqlite:///")).parent / "state")
    )
    get_settings.cache_clear()
    runtime.cache_clear()
    monkeypatch.setattr(identity, "os_user", lambda: user)
    monkeypatch.setattr(identity, "host", lambda: "box")

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main.app, ["alerts", *args])
        if isinstance(result.exception, CliError):
            return 2, result.output + str(result.exception)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output

    return invoke


def test_list_and_show(registry: tuple[Database, int], monkeypatch: pytest.MonkeyPatch) -> None:
    database, alert_id = registry
    keybot = as_user(database, monkeypatch, "owner")
    code, listed = keybot("list")
    assert code == 0 and f"#{alert_id}" in listed and "pay-prod" in listed and "requests" in listed
    code, text = keybot("list", "--json")
    (row,) = json.loads(text)
    assert (row["id"], row["state"], row["version"], row["step"]) == (alert_id, "open", 1, "owner")
    code, shown = keybot("show", f"#{alert_id}")
    assert code == 0 and "requests: 900 (baseline 30)" in shown and "alert.opened keybot" in shown


def test_ack_then_resolve_as_the_owner(
    registry: tuple[Database, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, alert_id = registry
    keybot = as_user(database, monkeypatch, "owner")
    assert keybot("ack", str(alert_id)) == (0, f"alert #{alert_id} on pay-prod acknowledged (version 2)\n")
    code, stale = keybot("resolve", str(alert_id), "--version", "1")
    assert code == 2 and "changed since you saw it" in stale
    assert keybot("resolve", str(alert_id))[0] == 0
    code, listed = keybot("list")
    assert listed.strip() == "no open alerts"
    assert json.loads(keybot("list", "--all", "--json")[1])[0]["closed_by"] == "cli:owner@box"


def test_refusals_are_one_line_and_change_nothing(
    registry: tuple[Database, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, alert_id = registry
    before, row = counts(database), alert_row(database, alert_id)
    stranger = as_user(database, monkeypatch, "mallory")
    for command in ("ack", "expected", "resolve"):
        code, text = stranger(command, str(alert_id))
        assert code == 2 and "may not" in text and "cli:owner@box" in text
    assert stranger("ack", "999")[0] == 2 and "no alert #999" in stranger("ack", "999")[1]
    assert "expected an alert id" in stranger("show", "twelve")[1]
    assert counts(database) == before and alert_row(database, alert_id) == row
