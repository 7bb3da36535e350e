"""`keybot revoke` and `keybot runs ...`: the runbook engine from a terminal."""

from __future__ import annotations

import getpass
import sys

import typer
from rich.table import Table
from sqlalchemy import select

from bot.cli.context import CliError, err, out, runtime
from bot.cli.progress import LiveProgress, run_table
from bot.cli.registry import _read_query, describe_miss
from bot.db.base import utcnow
from bot.incidents.service import timeline
from bot.notifications.service import for_run
from bot.registry.render import key_card
from bot.registry.service import lookup
from bot.runbooks import service
from bot.runbooks.engine import Engine, RunBusy
from bot.runbooks.models import Run, RunStatus

app = typer.Typer(
    help="Runbook runs: list, show, approve, retry, skip, mark done, resume, abort.", no_args_is_help=True
)

EXIT_PAUSED = 3


def default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


ACTOR = typer.Option(None, "--as", help="who is acting (default cli:<login>)")


def execute(run: str | service.OpenedRun, engine: Engine | None = None) -> None:
    """Carry the run on with a live table; exit status says whether it finished, paused or needs help.

    `run` is an id, or a run `engine` just opened (it then starts without reading the run back).
    """
    rt = runtime()
    engine = engine or rt.engine()
    run_id = run if isinstance(run, str) else run.state.id
    with LiveProgress(rt.database, run_id) as progress:
        engine.on_change = progress
        try:
            status = engine.execute(run)
        except RunBusy as busy:
            raise CliError(str(busy)) from None
    _after(run_id, status)


def _after(run_id: str, status: RunStatus) -> None:
    rt = runtime()
    with rt.database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        pending = [n for n in for_run(session, run_id) if n.status.value == "pending"]
        attention = run.attention
    if pending:
        out.print(f"{len(pending)} notification(s) queued for Slack delivery:")
        for n in pending:
            out.print(f"  → {n.recipient}: {n.subject}", markup=False)
    if status is RunStatus.SUCCEEDED:
        out.print(f"[green]run {run_id} finished[/green]")
        return
    hints = {
        RunStatus.AWAITING_APPROVAL: "waiting for approval: a second person runs "
        f"`keybot runs approve {run_id}`",
        RunStatus.WAITING_MANUAL: f"a manual step is waiting: do it, then `keybot runs done {run_id}`",
        RunStatus.NEEDS_ATTENTION: f"needs attention: {attention}\n  then `keybot runs retry {run_id}`, "
        f"`keybot runs skip {run_id} --reason ...` or `keybot runs abort {run_id}`",
        RunStatus.ABORTED: f"run {run_id} was aborted",
    }
    err.print(hints.get(status, f"run {run_id} is {status.value}"), markup=False)
    raise typer.Exit(EXIT_PAUSED)


def revoke_command(
    key: str = typer.Argument(
        ..., help="name, #id, provider key id, sk-...Xy9Q, or '-' to read the secret from stdin"
    ),
    reason: str = typer.Option(..., "--reason", "-r", help="what happened (goes on the incident timeline)"),
    mode: str = typer.Option("staged", "--mode", "-m", help="staged (replace, then revoke) or emergency"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    severity: str = typer.Option("sev2", help="sev1..sev4"),
    actor: str | None = ACTOR,
) -> None:
    """Break-glass: revoke and replace a key from the terminal, with the same runbook Slack runs."""
    if mode not in ("staged", "emergency"):
        raise CliError("--mode must be staged or emergency")
    if severity not in ("sev1", "sev2", "sev3", "sev4"):
        raise CliError("--severity must be one of sev1, sev2, sev3, sev4")
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
    table = Table(show_header=False, box=None)
    for label, value in card:
        table.add_row(f"[bold]{label}[/bold]", value)
    out.print(table)
    if not yes:
        if not sys.stdin.isatty():
            raise CliError("refusing to revoke without confirmation: pass --yes when not on a terminal")
        typer.confirm(f"Run {mode} revoke → replace → audit → notify on this key?", abort=True)
    engine = rt.engine()
    try:
        opened = engine.start(
            key_id=key_id,
            runbook="revoke-replace-audit-notify",
            mode=mode,
            actor=actor or default_actor(),
            reason=reason,
            severity=severity,
        )
    except service.RunRefused as refused:
        raise CliError(str(refused)) from None
    out.print(f"started run {opened.state.id}")
    execute(opened, engine)


def _decide(action: str, run_id: str, *args: str) -> None:
    rt = runtime()
    try:
        getattr(service, action)(rt.database, run_id, *args)
    except service.RunRefused as refused:
        raise CliError(str(refused)) from None
    execute(run_id)


@app.command("list")
def list_command(
    status: str | None = typer.Option(None, help="only runs in this state"),
    limit: int = typer.Option(50, min=1, max=10_000),
) -> None:
    """Recent runs, newest first."""
    rt = runtime()
    with rt.database.session() as session:
        statement = select(Run).order_by(Run.created_at.desc()).limit(limit)
        if status:
            if status not in {s.value for s in RunStatus}:
                raise CliError(f"--status must be one of {', '.join(s.value for s in RunStatus)}")
            statement = statement.where(Run.status == RunStatus(status))
        runs = session.scalars(statement).all()
        if not runs:
            out.print("no runs")
            return
        table = Table("run", "runbook", "mode", "key", "status", "started", "by")
        for run in runs:
            table.add_row(
                run.id,
                run.runbook,
                run.mode,
                f"#{run.key_id}",
                run.status.value,
                run.created_at.strftime("%Y-%m-%d %H:%M"),
                run.initiated_by,
            )
        out.print(table)


@app.command("show")
def show_command(run_id: str, events: int = typer.Option(15, help="timeline events to show")) -> None:
    """A run's steps, notifications and the end of its incident timeline."""
    rt = runtime()
    with rt.database.session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise CliError(f"no run {run_id!r}")
        out.print(run_table(run))
        if run.attention:
            out.print(f"[yellow]attention:[/yellow] {run.attention}", markup=True)
        for n in for_run(session, run_id):
            out.print(f"  notification {n.status.value}: {n.recipient} — {n.subject}", markup=False)
        if run.incident_id is not None:
            for event in timeline(session, run.incident_id)[-events:]:
                out.print(
                    f"  {event.at:%H:%M:%S} {event.kind} {event.step or ''} {event.actor}", markup=False
                )


@app.command("approve")
def approve_command(run_id: str, actor: str | None = ACTOR) -> None:
    """Approve the step waiting for a second person, then carry the run on."""
    _decide("approve", run_id, actor or default_actor())


@app.command("retry")
def retry_command(run_id: str, actor: str | None = ACTOR) -> None:
    """Retry the step that needs attention."""
    _decide("retry_step", run_id, actor or default_actor())


@app.command("skip")
def skip_command(run_id: str, reason: str = typer.Option(..., "--reason"), actor: str | None = ACTOR) -> None:
    """Skip the step that needs attention or is waiting for manual work (the reason is recorded)."""
    _decide("skip_step", run_id, actor or default_actor(), reason)


@app.command("done")
def done_command(run_id: str, note: str = typer.Option("", "--note"), actor: str | None = ACTOR) -> None:
    """Mark the waiting manual step done."""
    _decide("mark_done", run_id, actor or default_actor(), note)


@app.command("resume")
def resume_command(run_id: str) -> None:
    """Carry on a run whose process died (its lease expired or its process is gone)."""
    execute(run_id)


@app.command("abort")
def abort_command(run_id: str, reason: str = typer.Option("", "--reason"), actor: str | None = ACTOR) -> None:
    """Stop a run; nothing already done outside is undone, and the incident stays open."""
    rt = runtime()
    try:
        service.abort(rt.database, run_id, actor or default_actor(), reason)
    except service.RunRefused as refused:
        raise CliError(str(refused)) from None
    out.print(f"run {run_id} aborted")
