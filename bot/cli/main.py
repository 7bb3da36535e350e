"""Entry point: assembles the sub-commands and turns known failures into one clear line."""

from __future__ import annotations

import sys

import typer
from sqlalchemy.exc import OperationalError

from bot.cli import audit, bulk, db, incidents, registry, revoke, runs, scan, serve
from bot.cli.context import CliError, err, runtime
from bot.config import ConfigError
from bot.db.migrate import SchemaOutOfDate
from bot.log import configure_logging
from bot.registry.fingerprint import FingerprintKeyMismatch
from bot.registry.store import UnknownTeam
from bot.runbooks.definitions import RunbookError
from bot.secrets import redact

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
app.add_typer(incidents.app, name="incidents")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(audit.runbook_app, name="runbook")
app.command("revoke")(revoke.revoke_command)
app.command("bulk-revoke")(bulk.bulk_revoke_command)
app.command("serve")(serve.serve_command)
app.command("run")(serve.run_command)
app.command("clock")(serve.clock_command)
app.command("scan")(scan.scan_command)


@app.callback()
def _setup() -> None:
    settings = runtime().settings
    configure_logging(settings.log_format, settings.log_level)


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
