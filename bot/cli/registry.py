"""`keybot registry ...`: import, export, list and show keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.table import Table
from rich.text import Text

from bot.cli.context import CliError, add_plain_row, err, out, runtime
from bot.cli.identity import cli_identity
from bot.db.base import utcnow
from bot.registry.export import export_records
from bot.registry.exporter import to_csv, to_yaml
from bot.registry.importer import read_file
from bot.registry.models import Key
from bot.registry.render import key_card, rotation_state
from bot.registry.service import KeyFilter, Lookup, list_keys, lookup
from bot.registry.store import ImportRefused, apply_import

app = typer.Typer(help="The key-ownership registry.", no_args_is_help=True)


@app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="registry file: .yaml/.yml or .csv"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="validate exactly as an import would; change nothing"
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="also apply changes to state keybot owns (status, provider key id, fingerprint, last rotation)",
    ),
) -> None:
    """Validate the whole file against the registry, then import all of it in one transaction (or nothing).

    The file owns owners, backups, team, consumers, rotation policy, description and tags. A file that
    would change what keybot recorded (a compromised status, a rotated key's id) is refused with the
    difference, exit status 2, unless --force.
    """
    parsed = read_file(file)
    if parsed.errors and not parsed.keys and not parsed.teams:  # nothing left to check against the registry
        _refuse(ImportRefused(parsed.source, parsed.errors, []))
    rt = runtime()
    with rt.database.session() as session:
        try:
            summary = apply_import(
                session, parsed, rt.fingerprinter, force=force, dry_run=dry_run, actor=cli_identity()
            )
        except ImportRefused as refused:
            _refuse(refused)
    counts = (
        f"{summary.keys_created} key(s) created, {summary.keys_updated} updated, "
        f"{summary.teams_created} team(s) created"
    )
    if dry_run:
        out.print(f"{file}: valid; an import would report {counts}; nothing imported", markup=False)
        return
    out.print(f"imported {file}: {counts}", markup=False)
    if summary.state_overridden:
        out.print(
            f"--force: {summary.state_overridden} change(s) to state keybot owns applied and recorded",
            markup=False,
        )


def _refuse(refused: ImportRefused) -> NoReturn:
    for problem in [*refused.errors, *refused.changes]:
        err.print(f"{refused.source}: {problem}", markup=False)
    raise CliError(str(refused))


@app.command("export")
def export_command(
    fmt: str = typer.Option("yaml", "--format", "-f", help="yaml or csv"),
    output: Path | None = typer.Option(None, "--out", "-o", help="file to write (default: standard output)"),
) -> None:
    """Write the registry with fingerprints and redacted forms; secrets are never exported."""
    if fmt not in ("yaml", "csv"):
        raise CliError(f"--format must be yaml or csv, not {fmt[:20]!r}")
    rt = runtime()
    with rt.database.session() as session:
        document = export_records(session)
    text = to_yaml(document) if fmt == "yaml" else to_csv(document)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {len(document['keys'])} key(s) to {output}")


@app.command("list")
def list_command(
    team: str | None = typer.Option(None, help="only this team's keys"),
    owner: str | None = typer.Option(None, help="only keys owned (or backed up) by this Slack user id"),
    env: str | None = typer.Option(None, help="only this environment"),
    due: int | None = typer.Option(
        None, help="only keys whose rotation is due within DAYS (overdue included)"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    limit: int = typer.Option(1000, min=1, max=100_000),
) -> None:
    """List keys, optionally filtered."""
    rt = runtime()
    now = utcnow()
    with rt.database.session() as session:
        keys = list_keys(session, KeyFilter(team, owner, env, due), limit=limit)
        rows = [
            (
                str(k.id),
                k.name,
                k.environment,
                k.team.name if k.team else "-",
                ",".join(k.owner_ids()) or "-",
                k.redacted or "-",
                k.status.value,
                rotation_state(k, now),
            )
            for k in keys
        ]
    if as_json:
        names = ("id", "name", "environment", "team", "owners", "redacted", "status", "rotation")
        sys.stdout.write(json.dumps([dict(zip(names, r, strict=True)) for r in rows], indent=2) + "\n")
        return
    if not rows:
        out.print("no keys match")
        return
    table = Table("id", "name", "env", "team", "owners", "redacted", "status", "rotation")
    for row in rows:
        add_plain_row(table, *row)
    out.print(table)


def _read_query(key: str | None) -> str:
    if key is None or key == "-":
        if sys.stdin.isatty():
            prompt = "key (name, id, redacted value or the secret; input hidden)"
            return str(typer.prompt(prompt, hide_input=True))
        return sys.stdin.readline()
    return key


def describe_miss(result: Lookup) -> str:
    if result.query_was_secret:
        return "that secret is not in the registry (matched neither a fingerprint nor a redacted form)"
    if result.suggestions:
        return "no key matches; did you mean: " + ", ".join(result.suggestions)
    return "no key matches"


@app.command("show")
def show_command(
    key: str | None = typer.Argument(
        None, help="name, #id, provider key id, sk-...Xy9Q, or '-' to read a secret from stdin"
    ),
) -> None:
    """Show one key's owners, location, consumers and rotation state."""
    rt = runtime()
    with rt.database.session() as session:
        result = lookup(session, _read_query(key), rt.fingerprinter)
        if not result.matches:
            raise CliError(describe_miss(result))
        if result.ambiguous:
            out.print(f"{len(result.matches)} keys match that {result.matched_by.value}:")
            for candidate in result.matches:
                out.print(
                    f"  #{candidate.id} {candidate.name} "
                    f"({candidate.environment}, {candidate.redacted or '-'})",
                    markup=False,
                )
            raise CliError("ambiguous: repeat with the #id or the name")
        _print_card(result.matches[0], result)


def _print_card(key: Key, result: Lookup) -> None:
    table = Table(show_header=False, box=None)
    for label, value in key_card(key, utcnow()):
        add_plain_row(table, Text(label, style="bold"), value)
    out.print(table)
    out.print(f"[dim]matched by {result.matched_by.value}[/dim]")
