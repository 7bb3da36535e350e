"""The CLI as an operator runs it: a real `keybot` process against SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.db.session import Database
from tests.fakes import canary_key

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "runbooks" / "examples" / "registry.yaml"
KEYBOT = [sys.executable, "-c", "from bot.cli.main import main; main()"]


def keybot(
    database_url: str,
    *args: str,
    stdin: str | None = None,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VAULT_", "OPENAI_"))}
    env.update({"DATABASE_URL": database_url, "KEYBOT_LOG_LEVEL": "DEBUG", "COLUMNS": "200"})
    env.update(extra_env or {})
    return subprocess.run(
        [*KEYBOT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.mark.cli_surface
def test_import_show_list_export(database: Database, tmp_path: Path) -> None:
    url = database.url
    imported = keybot(url, "registry", "import", str(EXAMPLE), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "6 key(s) created" in imported.stdout
    shown = keybot(url, "registry", "show", "sk-...Xy9Q", cwd=tmp_path)
    assert shown.returncode == 0 and "payments-openai-prod" in shown.stdout and "U07ALICE01" in shown.stdout
    listed = keybot(url, "registry", "list", "--team", "platform", "--json", cwd=tmp_path)
    assert listed.returncode == 0
    assert "platform-stripe-live" in listed.stdout and "payments-openai-prod" not in listed.stdout
    exported = keybot(url, "registry", "export", "--format", "csv", cwd=tmp_path)
    assert exported.returncode == 0 and exported.stdout.startswith("name,provider,")


@pytest.mark.cli_surface
def test_bad_file_exits_2_with_every_problem(database: Database, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,provider,environment,owners\nok,openai,production,U07ALICE01\nx,azure,prod,bob\n")
    result = keybot(database.url, "registry", "import", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{bad}: line 3: provider:" in result.stderr
    assert f"{bad}: line 3: environment:" in result.stderr
    assert f"{bad}: line 3: owners:" in result.stderr
    assert "nothing was imported" in result.stderr and "Traceback" not in result.stderr
    listed = keybot(database.url, "registry", "list", cwd=tmp_path)
    assert "no keys match" in listed.stdout


@pytest.mark.cli_surface
def test_ambiguous_and_unknown_show(database: Database, tmp_path: Path) -> None:
    keybot(database.url, "registry", "import", str(EXAMPLE), cwd=tmp_path)
    unknown = keybot(database.url, "registry", "show", "payments-opnai-prod", cwd=tmp_path)
    assert unknown.returncode == 2 and "did you mean: payments-openai-prod" in unknown.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "oracle://x"}, "DATABASE_URL: expected a SQLAlchemy URL"),
        ({"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}, "cannot use the database"),
        ({"KEYBOT_LOG_FORMAT": "xml"}, "KEYBOT_LOG_FORMAT: expected one of auto, json, console"),
    ],
)
def test_configuration_problems_are_one_clear_line(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    result = keybot(f"sqlite:///{tmp_path}/k.db", "registry", "list", cwd=tmp_path, extra_env=env)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    first = keybot(url, "db", "upgrade", cwd=tmp_path)
    assert first.returncode == 0 and "upgraded from empty" in first.stdout
    again = keybot(url, "db", "upgrade", cwd=tmp_path)
    assert again.returncode == 0 and "already at revision" in again.stdout


def _database_text(database: Database) -> str:
    """Every row of every table as text: what someone who stole the database would read."""
    dump = []
    with database.engine.connect() as conn:
        tables = [t for t in database.engine.dialect.get_table_names(conn)]
        for table in tables:
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                dump.append(" ".join(str(v) for v in row))
    return "\n".join(dump)


@pytest.mark.cli_surface
def test_canary_secret_never_leaks(database: Database, tmp_path: Path) -> None:
    """A secret imported, then pasted to look it up, appears in no output, log line or database row."""
    canary = canary_key()
    registry = tmp_path / "private.yaml"
    registry.write_text(
        "teams:\n  - name: sec\n    channel: '#sec'\nkeys:\n"
        f"  - name: canary-key\n    provider: openai\n    secret: {canary}\n"
        "    team: sec\n    owners: [U07ALICE01]\n"
    )
    outputs = [
        keybot(database.url, "registry", "import", str(registry), cwd=tmp_path),
        keybot(database.url, "registry", "show", "-", stdin=canary + "\n", cwd=tmp_path),
        keybot(database.url, "registry", "show", canary, cwd=tmp_path),
        keybot(database.url, "registry", "list", cwd=tmp_path),
        keybot(database.url, "registry", "export", cwd=tmp_path),
        keybot(database.url, "registry", "export", "-f", "csv", cwd=tmp_path),
    ]
    assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
    assert "canary-key" in outputs[1].stdout and "matched by fingerprint" in outputs[1].stdout
    assert "canary-key" in outputs[2].stdout
    middle = canary[8:60]
    for result in outputs:
        assert middle not in result.stdout and middle not in result.stderr
    dump = _database_text(database)
    assert "canary-key" in dump
    assert middle not in dump and canary[-40:] not in dump
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != registry:
            assert middle.encode() not in path.read_bytes(), path
