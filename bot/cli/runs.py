"""`keybot revoke` and `keybot runs ...`: the runbook engine from a terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from bot.cli.context import CliError, add_plain_row, err, iso, out, print_json, print_table, runtime

if TYPE_CHECKING:  # the rest is imported where it is used, so `keybot runs --help` stays quick
    from bot.access.policy import Actor
    from bot.runbooks import service
    from bot.runbooks.engine import Engine
    from bot.runbooks.models import RunStatus

app = typer.Typer(
    help="Runbook runs: list, show, approve, retry, skip, mark done, resume, abort.", no_args_is_help=True
)

EXIT_PAUSED = 3
BREAK_GLASS = typer.Option(
    False,
    "--break-glass",
    help="admins only: override the two-person rule (needs --reason; recorded and announced)",
)


def execute(run: str | service.OpenedRun, engine: Engine | None = None) -> None:
    """Carry the run on with a live table; exit status says whether it finished, paused or needs help.

    `run` is an id, or a run `engine` just opened (it then starts without reading the run back).
    """
    from bot.cli.progress import LiveProgress
    from bot.runbooks.engine import RunBusy

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


def _waiting_hint(run_id: str) -> str:
    from bot.runbooks.models import Run

    with runtime().database.session() as session:
        run = session.get(Run, run_id)
        step = next((s for s in run.steps if s.status.value.startswith("waiting")), None) if run else None
    if step is None:
        return f"see `keybot runs show {run_id}`"
    if step.output.get("decide"):
        return (
            f"{step.output.get('instructions')}\n  `keybot runs revoke-now {run_id}` or "
            f"`keybot runs wait-longer {run_id} --minutes 30`"
        )
    if step.output.get("waiting"):
        return (
            f"{step.output['waiting']}\n  consumers confirm with `keybot runs redeployed {run_id} CONSUMER`"
        )
    return f"{step.output.get('instructions') or step.title}\n  then `keybot runs done {run_id} --note ...`"


def _after(run_id: str, status: RunStatus) -> None:
    from bot.notifications.service import for_run
    from bot.runbooks.models import Run, RunStatus

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
        out.print(Text(f"run {run_id} finished", style="green"))
        return
    hints = {
        RunStatus.AWAITING_APPROVAL: "waiting for approval: a second person runs "
        f"`keybot runs approve {run_id}`",
        RunStatus.NEEDS_ATTENTION: f"needs attention: {attention}\n  then `keybot runs retry {run_id}`, "
        f"`keybot runs skip {run_id} --reason ...` or `keybot runs abort {run_id}`",
        RunStatus.ABORTED: f"run {run_id} was aborted",
        RunStatus.FINISHED_WITH_EXCEPTIONS: f"run {run_id} finished WITH EXCEPTIONS: {attention}\n  the key "
        "stays compromised and the incident open: `keybot incidents resolve INC-... --reason ...`",
    }
    if status is RunStatus.WAITING_MANUAL:
        hints[status] = f"a step is waiting for a person: {_waiting_hint(run_id)}"
    if status is RunStatus.WAITING:
        hints[status] = f"waiting (durably; `keybot clock` carries it on): {_waiting_hint(run_id)}"
    err.print(hints.get(status, f"run {run_id} is {status.value}"), markup=False)
    raise typer.Exit(EXIT_PAUSED)


def _decide(call: Callable[[], service.Decided], run_id: str, actor: Actor) -> None:
    from bot.runbooks import service

    try:
        decided = call()
    except service.RunRefused as refused:
        raise CliError(str(refused)) from None
    if actor.break_glass:
        announce_break_glass(run_id, actor)
    out.print(decided.message, markup=False)
    if decided.proceed:
        execute(run_id)


def _actor(break_glass: bool, reason: str) -> Actor:
    from bot.cli.identity import cli_actor

    if not break_glass:
        return cli_actor()
    if not reason.strip():
        raise CliError("--break-glass needs --reason saying why the two-person rule is overridden")
    return cli_actor(break_glass=reason.strip())


def announce_break_glass(run_id: str, actor: Actor) -> None:
    """A break-glass override is announced in the security channel (and is on the timeline already)."""
    from bot.db.base import utcnow
    from bot.notifications.service import Message, enqueue
    from bot.runbooks.models import Run

    rt = runtime()
    channel = rt.settings.security_channel
    if channel is None:
        err.print(
            "warning: KEYBOT_SECURITY_CHANNEL is not set; the break-glass override is on the timeline only"
        )
        return
    message = Message(
        "break_glass",
        channel,
        f"Break-glass override on run {run_id}",
        f"{actor.id} overrode the two-person rule on run {run_id}: {actor.break_glass}",
        {"run_id": run_id, "actor": actor.id},
    )
    with rt.database.session() as session:
        run = session.get(Run, run_id)
        enqueue(
            session,
            [message],
            dedupe_prefix=f"{run_id}:break_glass:{utcnow().isoformat()}",
            incident_id=run.incident_id if run else None,
            run_id=run_id,
        )


@app.command("list")
def list_command(
    status: str | None = typer.Option(None, help="only runs in this state"),
    limit: int = typer.Option(50, min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json", help="machine-readable: a JSON list, typed fields"),
) -> None:
    """Recent runs, newest first. Run ids are always shown whole, so they can be pasted back."""
    from sqlalchemy import select

    from bot.runbooks.models import Run, RunStatus

    statement = select(Run).order_by(Run.created_at.desc()).limit(limit)
    if status:
        if status not in {s.value for s in RunStatus}:
            raise CliError(f"--status must be one of {', '.join(s.value for s in RunStatus)}")
        statement = statement.where(Run.status == RunStatus(status))
    with runtime().database.session() as session:
        rows: list[dict[str, Any]] = [
            {
                "run": run.id,
                "runbook": run.runbook,
                "mode": run.mode,
                "key_id": run.key_id,
                "incident_id": run.incident_id,
                "status": run.status.value,
                "drill": run.drill,
                "initiated_by": run.initiated_by,
                "created_at": iso(run.created_at),
                "finished_at": iso(run.finished_at),
                "attention": run.attention,
            }
            for run in session.scalars(statement)
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no runs")
        return
    table = Table()
    table.add_column("run", no_wrap=True)  # never cut: the id is pasted back into `keybot runs show`
    for header in ("runbook", "mode", "key", "status", "started", "by"):
        table.add_column(header)
    for r in rows:
        started = r["created_at"][:16].replace("T", " ")
        add_plain_row(
            table,
            r["run"],
            r["runbook"],
            r["mode"],
            f"#{r['key_id']}",
            r["status"],
            started,
            r["initiated_by"],
        )
    print_table(table)


@app.command("show")
def show_command(run_id: str, events: int = typer.Option(15, help="timeline events to show")) -> None:
    """A run's steps, notifications and the end of its incident timeline."""
    from bot.cli.progress import run_table
    from bot.incidents.service import timeline
    from bot.notifications.service import for_run
    from bot.runbooks.models import Run

    rt = runtime()
    with rt.database.session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise CliError(f"no run {run_id!r}")
        out.print(run_table(run))
        if run.attention:
            out.print(Text("attention: ", style="yellow") + Text(run.attention))
        for n in for_run(session, run_id):
            out.print(f"  notification {n.status.value}: {n.recipient} — {n.subject}", markup=False)
        if run.incident_id is not None:
            for event in timeline(session, run.incident_id)[-events:]:
                out.print(
                    f"  {event.at:%H:%M:%S} {event.kind} {event.step or ''} {event.actor}", markup=False
                )


STEP = typer.Option(None, "--step", help="refuse unless this is the step waiting (as `runs show` showed it)")


def _seen(step: str | None) -> service.Seen | None:
    from bot.runbooks import service

    return service.Seen(step, None) if step else None


@app.command("approve")
def approve_command(
    run_id: str,
    step: str | None = STEP,
    break_glass: bool = BREAK_GLASS,
    reason: str = typer.Option("", "--reason", help="why (required with --break-glass)"),
) -> None:
    """Approve the step waiting for a second person (another OS user than the starter), then carry on."""
    from bot.runbooks import service

    actor, db, policy = _actor(break_glass, reason), runtime().database, runtime().policy
    _decide(lambda: service.approve(db, run_id, actor, policy=policy, seen=_seen(step)), run_id, actor)


@app.command("retry")
def retry_command(run_id: str, step: str | None = STEP) -> None:
    """Retry the step that needs attention."""
    from bot.cli.identity import cli_actor
    from bot.runbooks import service

    actor, db, policy = cli_actor(), runtime().database, runtime().policy
    _decide(lambda: service.retry_step(db, run_id, actor, policy=policy, seen=_seen(step)), run_id, actor)


@app.command("skip")
def skip_command(
    run_id: str,
    reason: str = typer.Option(..., "--reason"),
    step: str | None = STEP,
    break_glass: bool = BREAK_GLASS,
) -> None:
    """Skip the step that needs attention or waits for manual work (the run then ends with exceptions)."""
    from bot.runbooks import service

    actor, db, policy = _actor(break_glass, reason), runtime().database, runtime().policy
    _decide(
        lambda: service.skip_step(db, run_id, actor, reason, policy=policy, seen=_seen(step)), run_id, actor
    )


@app.command("done")
def done_command(
    run_id: str,
    note: str = typer.Option("", "--note", help="what you did and where (required for safety steps)"),
    step: str | None = STEP,
    break_glass: bool = BREAK_GLASS,
) -> None:
    """Mark the waiting step done by hand: you attest it; keybot records it as not verified by keybot."""
    from bot.runbooks import service

    actor, db, policy = _actor(break_glass, note), runtime().database, runtime().policy
    _decide(
        lambda: service.mark_done(db, run_id, actor, note, policy=policy, seen=_seen(step)), run_id, actor
    )


@app.command("redeployed")
def redeployed_command(run_id: str, consumer: str) -> None:
    """Confirm that CONSUMER now reads the new key (staged mode revokes once every consumer has)."""
    from bot.cli.identity import cli_actor
    from bot.runbooks import waits

    actor, db, policy = cli_actor(), runtime().database, runtime().policy
    _decide(lambda: waits.confirm_redeployed(db, run_id, consumer, actor, policy=policy), run_id, actor)


@app.command("revoke-now")
def revoke_now_command(run_id: str, step: str | None = STEP) -> None:
    """After the distribute deadline: stop waiting for consumers and revoke the old key."""
    from bot.cli.identity import cli_actor
    from bot.runbooks import waits

    actor, db, policy = cli_actor(), runtime().database, runtime().policy
    _decide(lambda: waits.revoke_now(db, run_id, actor, policy=policy, seen=_seen(step)), run_id, actor)


@app.command("wait-longer")
def wait_longer_command(
    run_id: str, minutes: float = typer.Option(30.0, "--minutes", min=1, max=24 * 60), step: str | None = STEP
) -> None:
    """After the distribute deadline: wait MINUTES more for consumers to confirm."""
    from bot.cli.identity import cli_actor
    from bot.runbooks import waits

    actor, db, policy = cli_actor(), runtime().database, runtime().policy
    _decide(
        lambda: waits.wait_longer(db, run_id, actor, minutes, policy=policy, seen=_seen(step)), run_id, actor
    )


@app.command("resume")
def resume_command(run_id: str) -> None:
    """Carry on a run whose process died (its lease expired or its process is gone)."""
    execute(run_id)


@app.command("abort")
def abort_command(
    run_id: str,
    reason: str = typer.Option("", "--reason"),
    incident: str = typer.Option(
        "keep-open", "--incident", help="keep-open (default), resolve, or false-alarm (restores the key)"
    ),
) -> None:
    """Stop a run; nothing already done outside is undone. The incident stays open unless you say."""
    from bot.cli.identity import cli_actor
    from bot.incidents import lifecycle
    from bot.runbooks import service
    from bot.runbooks.models import Run

    if incident not in ("keep-open", "resolve", "false-alarm"):
        raise CliError("--incident must be keep-open, resolve or false-alarm")
    rt, actor = runtime(), cli_actor()
    try:
        service.abort(rt.database, run_id, actor, reason, policy=rt.policy)
    except service.RunRefused as refused:
        raise CliError(str(refused)) from None
    released = service.release_containment(
        rt.database, lambda: rt.toolkit, run_id, actor, policy=rt.policy, drill_toolkit=rt.drill_toolkit
    )
    rt.drill_ended(run_id)
    out.print(f"run {run_id} aborted", markup=False)
    if released.message:
        (out if released.restored else err).print(released.message, markup=False)
    if incident == "keep-open":
        return
    with rt.database.session() as session:
        run = session.get(Run, run_id)
        incident_id = run.incident_id if run else None
    if incident_id is None:
        return
    try:
        closed = lifecycle.close(
            rt.database, incident_id, actor, reason or "aborted", policy=rt.policy,
            false_alarm=incident == "false-alarm",
        )  # fmt: skip
    except service.RunRefused as refused:
        raise CliError(f"the run was aborted, but the incident stays open: {refused}") from None
    out.print(closed.message, markup=False)
