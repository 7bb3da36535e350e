"""Entry point: a table of sub-commands imported only when invoked, and known failures as one clear line.

`keybot --help` must answer in a blink, so this module imports nothing heavy: every sub-command lives in
`COMMANDS` as "module:attribute" plus its one-line help, and is imported when it is run (or asked for its
own help). The root help is plain (no rich) for the same reason.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from typing import Any

import typer
from typer import _click as click
from typer.core import TyperGroup

COMMANDS: dict[str, tuple[str, str]] = {
    "revoke": ("bot.cli.revoke:revoke_command", "Break-glass: revoke and replace a key from the terminal."),
    "bulk-revoke": ("bot.cli.bulk:bulk_revoke_command", "Break-glass for many keys at once."),
    "runs": ("bot.cli.runs:app", "Runbook runs: list, show, approve, retry, skip, mark done, resume, abort."),
    "incidents": ("bot.cli.incidents:app", "Incidents: list, show, resolve, false-alarm."),
    "audit": ("bot.cli.audit:audit_app", "Audit trail checks."),
    "runbook": ("bot.cli.audit:runbook_app", "Runbook definitions."),
    "registry": ("bot.cli.registry:app", "The key-ownership registry."),
    "reminders": ("bot.cli.reminders:app", "Rotation reminders: preview, send, snooze, rotated."),
    "usage": ("bot.cli.usage:app", "Key usage series: import a file, show a key's traffic."),
    "detect": ("bot.cli.detect:app", "The anomaly detector: score a timestamp,value CSV."),
    "alerts": ("bot.cli.alerts:app", "Anomaly alerts: list, acknowledge, expected, resolve."),
    "postmortem": ("bot.cli.postmortem:postmortem_command", "Regenerate an incident's postmortem draft."),
    "scan": ("bot.cli.scan:scan_command", "Find leaked secrets in files or a diff; exit 1 on a hit."),
    "doctor": ("bot.cli.doctor:doctor_command", "Check the whole configuration, one line per check."),
    "serve": ("bot.cli.serve:serve_command", "Serve Slack, /healthz and /metrics over HTTP."),
    "run": ("bot.cli.serve:run_command", "Run locally: Socket Mode, else the shell chat on the sandbox."),
    "clock": ("bot.cli.serve:clock_command", "Run the periodic jobs; only one clock leads at a time."),
    "db": ("bot.cli.db:app", "Database schema management."),
}
"""name -> ("module:attribute", short help). The attribute is a Typer app or a command function."""

KNOWN_FAILURES = (
    ("bot.cli.context", "CliError"),
    ("bot.config", "ConfigError"),
    ("bot.db.migrate", "SchemaOutOfDate"),
    ("bot.registry.fingerprint", "FingerprintKeyMismatch"),
    ("bot.registry.store", "UnknownTeam"),
    ("bot.runbooks.definitions", "RunbookError"),
)
"""Failures an operator can fix, printed as one line with exit status 2. Looked up in `sys.modules` only:
a failure can only come from a module that was imported, so nothing is imported to recognise it."""


def load_command(name: str) -> click.Command:
    """Import sub-command `name` and turn it into a click command (a group for Typer apps)."""
    target, _help = COMMANDS[name]
    module_name, attribute = target.split(":")
    obj = getattr(importlib.import_module(module_name), attribute)
    if isinstance(obj, typer.Typer):
        command: click.Command = typer.main.get_group(obj)  # a group even with one sub-command
    else:
        single = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
        single.command(name)(obj)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The root group: lists sub-commands from `COMMANDS` and imports one only when it is resolved."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click's, with "Did you mean" drawn from the table (nothing is loaded to suggest a name)."""
        try:
            return self._click_resolve_command(ctx, args)
        except click.exceptions.UsageError as error:
            matches = difflib.get_close_matches(args[0], list(COMMANDS)) if args else []
            if matches:
                error.message = f"{error.message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The short help from the table, so listing the commands imports none of them."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_target, short) in COMMANDS.items()])


app = typer.Typer(
    name="keybot",
    cls=LazyGroup,
    help="Incident response for leaked API keys: revoke, replace, audit, notify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """Nothing to set up here: logging is configured when a command first builds the runtime, so `--help`
    reads no configuration."""


def known_failure(failure: BaseException) -> str | None:
    """The one line to print for a failure the operator can fix, or None for a bug."""
    for module_name, class_name in KNOWN_FAILURES:
        module = sys.modules.get(module_name)
        known: Any = getattr(module, class_name, None) if module is not None else None
        if known is not None and isinstance(failure, known):
            return f"keybot: {failure}"
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None and isinstance(failure, sqlalchemy_exc.OperationalError):
        reason = (str(failure.orig) if failure.orig else str(failure)).splitlines()[0]
        return f"keybot: cannot use the database ({reason}); check DATABASE_URL"
    return None


def _print_error(line: str) -> None:
    from bot.secrets import redact

    sys.stderr.write(redact(line) + "\n")
    sys.stderr.flush()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        _print_error("keybot: interrupted")
        sys.exit(130)
    except Exception as failure:
        line = known_failure(failure)
        if line is None:
            raise
        _print_error(line)
        sys.exit(2)
