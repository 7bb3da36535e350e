"""`keybot incidents list|show|note|resolve|false-alarm`: an incident's lifecycle from a terminal."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from bot.cli.context import CliError, add_plain_row, iso, out, print_json, print_table, runtime

app = typer.Typer(help="Incidents: list, show, note, resolve, false-alarm.", no_args_is_help=True)


def _id(reference: str) -> int:
    from bot.incidents import lifecycle
    from bot.runbooks.refusals import RunRefused

    try:
        return lifecycle.parse_reference(reference)
    except RunRefused as bad:
        raise CliError(str(bad)) from None


@app.command("list")
def list_command(
    status: str | None = typer.Option(None, help="open, contained, resolved or false_alarm"),
    all_: bool = typer.Option(False, "--all", help="closed incidents too (default: open and contained)"),
    limit: int = typer.Option(50, min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Incidents, newest first; by default those still open or contained."""
    from sqlalchemy import select

    from bot.incidents.models import Incident, IncidentStatus

    statement = select(Incident).order_by(Incident.opened_at.desc()).limit(limit)
    if status is not None:
        if status not in {s.value for s in IncidentStatus}:
            raise CliError(f"--status must be one of {', '.join(s.value for s in IncidentStatus)}")
        statement = statement.where(Incident.status == IncidentStatus(status))
    elif not all_:
        statement = statement.where(Incident.status.in_([IncidentStatus.OPEN, IncidentStatus.CONTAINED]))
    with runtime().database.session() as session:
        rows: list[dict[str, Any]] = [
            {
                "incident": i.reference,
                "id": i.id,
                "key_id": i.key_id,
                "status": i.status.value,
                "severity": i.severity,
                "title": i.title,
                "opened_by": i.opened_by,
                "opened_at": iso(i.opened_at),
                "contained_at": iso(i.contained_at),
                "resolved_at": iso(i.resolved_at),
                "drill": i.drill,
            }
            for i in session.scalars(statement)
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no incidents")
        return
    table = Table()
    table.add_column("incident", no_wrap=True)
    for header in ("status", "sev", "title", "opened by", "opened"):
        table.add_column(header)
    for r in rows:
        opened = r["opened_at"][:16].replace("T", " ")
        add_plain_row(table, r["incident"], r["status"], r["severity"], r["title"], r["opened_by"], opened)
    print_table(table)


@app.command("show")
def show_command(incident: str, events: int = typer.Option(50, help="timeline events to show")) -> None:
    """An incident, its runs and its timeline."""
    from sqlalchemy import select

    from bot.incidents.models import Incident
    from bot.incidents.service import timeline
    from bot.runbooks.models import Run

    incident_id = _id(incident)
    with runtime().database.session() as session:
        found = session.get(Incident, incident_id)
        if found is None:
            raise CliError(f"no incident INC-{incident_id:05d}")
        out.print(Text(f"{found.reference} · {found.status.value} · {found.severity} · {found.title}"))
        out.print(Text(f"opened by {found.opened_by} at {found.opened_at:%Y-%m-%d %H:%M:%S} UTC"))
        if found.reason:
            out.print(Text(f"reason: {found.reason}"))
        for run in session.scalars(
            select(Run).where(Run.incident_id == incident_id).order_by(Run.created_at)
        ):
            out.print(Text(f"run {run.id} · {run.mode} · {run.status.value}"))
        for event in timeline(session, incident_id)[-events:]:
            data = {
                k: v
                for k, v in (event.data or {}).items()
                if k in ("reason", "note", "text", "missing", "error")
            }
            line = f"  {event.at:%H:%M:%S} {event.kind} {event.step or ''} {event.actor}"
            out.print(Text(line + (f" {json.dumps(data)}" if data else "")))


def _close(incident: str, reason: str, false_alarm: bool) -> None:
    from bot.cli.identity import cli_actor
    from bot.incidents import lifecycle
    from bot.runbooks.refusals import RunRefused

    rt = runtime()
    try:
        closed = lifecycle.close(
            rt.database, _id(incident), cli_actor(), reason, policy=rt.policy, false_alarm=false_alarm
        )
    except RunRefused as refused:
        raise CliError(str(refused)) from None
    out.print(closed.message, markup=False)


@app.command("resolve")
def resolve_command(incident: str, reason: str = typer.Option(..., "--reason")) -> None:
    """Resolve an incident (no run on it may still be in flight)."""
    _close(incident, reason, false_alarm=False)


@app.command("false-alarm")
def false_alarm_command(incident: str, reason: str = typer.Option(..., "--reason")) -> None:
    """Call an incident a false alarm: it closes and the key's status before it is restored."""
    _close(incident, reason, false_alarm=True)


@app.command("note")
def note_command(
    incident: str, text: str = typer.Argument(..., help="the note; secrets in it are redacted")
) -> None:
    """Add a note to an incident's timeline (then `keybot postmortem INC` redraws the draft with it)."""
    from bot.cli.identity import cli_actor
    from bot.postmortems.notes import add_note
    from bot.runbooks.refusals import RunRefused

    rt = runtime()
    try:
        reference = add_note(rt.database, _id(incident), cli_actor(), text, policy=rt.policy)
    except RunRefused as refused:
        raise CliError(str(refused)) from None
    out.print(f"note added to {reference}; `keybot postmortem {reference}` redraws its draft", markup=False)
