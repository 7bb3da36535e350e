"""`keybot revoke`: break-glass revoke and replace from the terminal, with the runbook Slack runs."""

from __future__ import annotations

import sys

import typer
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url

from bot.cli.context import CliError, add_plain_row, err, out, runtime
from bot.cli.identity import cli_identity
from bot.cli.registry import _read_query, describe_miss
from bot.cli.runs import execute
from bot.cli.serve import load_examples
from bot.db.base import utcnow
from bot.registry.render import key_card
from bot.registry.service import lookup
from bot.runbooks import service
from bot.runbooks.context import KeyFacts
from bot.runbooks.names import REVOKE
from bot.runbooks.preflight import preflight


def revoke_command(
    key: str = typer.Argument(
        ..., help="name, #id, provider key id, sk-...Xy9Q, or '-' to read the secret from stdin"
    ),
    reason: str = typer.Option(..., "--reason", "-r", help="what happened (goes on the incident timeline)"),
    mode: str = typer.Option("staged", "--mode", "-m", help="staged (replace, then revoke) or emergency"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    severity: str = typer.Option("sev2", help="sev1..sev4"),
    sandbox: bool = typer.Option(
        False,
        "--sandbox",
        help="try it safely: the local demo database and sandbox provider + Vault, nothing real",
    ),
) -> None:
    """Break-glass: revoke and replace a key from the terminal, with the same runbook Slack runs."""
    if mode not in ("staged", "emergency"):
        raise CliError("--mode must be staged or emergency")
    if severity not in ("sev1", "sev2", "sev3", "sev4"):
        raise CliError("--severity must be one of sev1, sev2, sev3, sev4")
    rt = runtime()
    if sandbox:
        _use_sandbox()
    try:
        _revoke(key, reason, mode, yes, severity)
    finally:
        if rt.sandbox_started:
            rt.sandbox.stop()


def _use_sandbox() -> None:
    """`--sandbox`: the demo database `keybot run` uses, with every key backed by the local sandbox."""
    rt = runtime()
    if make_url(rt.settings.database_url).get_backend_name() != "sqlite":
        raise CliError(
            "--sandbox uses the local demo database: unset DATABASE_URL (or point it at a sqlite:/// file)"
        )
    loaded = load_examples()
    seeded = rt.start_sandbox()
    what = "loaded the example registry; " if loaded else ""
    err.print(f"sandbox: {what}{seeded.keys} key(s) backed by the local sandbox; nothing real is touched")


def _revoke(key: str, reason: str, mode: str, yes: bool, severity: str) -> None:
    rt = runtime()
    with rt.database.session() as session:
        result = lookup(session, _read_query(key), rt.fingerprinter)
        if not result.matches:
            raise CliError(describe_miss(result))
        if result.ambiguous:
            names = ", ".join(f"#{k.id} {k.name}" for k in result.matches)
            raise CliError(f"ambiguous ({names}); repeat with the #id")
        target = result.matches[0]
        card = key_card(target, utcnow())
        key_id = target.id
    with rt.database.engine.connect() as conn:
        facts = KeyFacts.load(conn, key_id)
    assert facts is not None  # just looked up
    ready = preflight(rt.toolkit, facts, rt.runbooks[REVOKE], mode)
    if not ready.ok:
        raise CliError(f"cannot revoke {facts.name}: {ready} (nothing was started)")
    table = Table(show_header=False, box=None)
    for label, value in card:
        add_plain_row(table, Text(label, style="bold"), value)
    out.print(table)
    if not yes:
        if not sys.stdin.isatty():
            raise CliError("refusing to revoke without confirmation: pass --yes when not on a terminal")
        typer.confirm(f"Run {mode} revoke → replace → audit → notify on this key?", abort=True)
    engine = rt.engine()
    try:
        opened = engine.start(
            key_id=key_id,
            runbook=REVOKE,
            mode=mode,
            actor=cli_identity(),
            reason=reason,
            severity=severity,
        )
    except service.RunRefused as refused:
        raise CliError(str(refused)) from None
    out.print(f"started run {opened.state.id}")
    execute(opened, engine)
