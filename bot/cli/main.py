"""Entry point: assembles the sub-commands and turns known failures into one clear line."""

from __future__ import annotations

import sys

import typer
from sqlalchemy.exc import OperationalError

from bot.cli import audit, db, registry, runs
from bot.cli.context import CliError, err, out, runtime
from bot.config import ConfigError
from bot.db.migrate import SchemaOutOfDate
from bot.log import configure_logging
from bot.registry.fingerprint import FingerprintKeyMismatch
from bot.registry.store import UnknownTeam
from bot.runbooks.definitions import RunbookError
from bot.secrets import redact

EXAMPLE_REGISTRY = "runbooks/examples/registry.yaml"

app = typer.Typer(
    name="keybot",
    help="Incident response for leaked API keys: revoke, replace, audit, notify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(registry.app, name="registry")
app.add_typer(db.app, name="db")
app.add_typer(runs.app, name="runs")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(audit.runbook_app, name="runbook")
app.command("revoke")(runs.revoke_command)


@app.callback()
def _setup() -> None:
    settings = runtime().settings
    configure_logging(settings.log_format, settings.log_level)


@app.command("run")
def run_command() -> None:
    """Start keybot locally (for now: load the example registry into an empty database and list it)."""
    from pathlib import Path

    from sqlalchemy import func, select

    from bot.registry.importer import parse_file
    from bot.registry.models import Key
    from bot.registry.store import apply_import

    rt = runtime()
    with rt.database.session() as session:
        if session.scalar(select(func.count(Key.id))) == 0 and Path(EXAMPLE_REGISTRY).exists():
            apply_import(session, parse_file(Path(EXAMPLE_REGISTRY)), rt.fingerprinter)
            out.print(f"loaded the example registry from {EXAMPLE_REGISTRY}")
    registry.list_command(team=None, owner=None, env=None, due=None, as_json=False, limit=1000)


KNOWN_FAILURES = (CliError, ConfigError, SchemaOutOfDate, FingerprintKeyMismatch, UnknownTeam, RunbookError)


def main() -> None:
    try:
        app()
    except KNOWN_FAILURES as failure:
        err.print(f"keybot: {redact(str(failure))}", markup=False)
        sys.exit(2)
    except OperationalError as failure:
        reason = redact(str(failure.orig) if failure.orig else str(failure)).splitlines()[0]
        err.print(f"keybot: cannot use the database ({reason}); check DATABASE_URL", markup=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("keybot: interrupted")
        sys.exit(130)
