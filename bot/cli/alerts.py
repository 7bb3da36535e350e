"""`keybot alerts list|show|ack|expected|resolve`: anomaly alerts from a terminal.

The decisions are the Slack buttons' service functions, acting as `cli:<user>@<host>`; each refusal
(permission, an alert that changed, an unknown id) is one line with exit status 2 and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from bot.cli.context import CliError, add_plain_row, iso, out, print_json, print_table, runtime

if TYPE_CHECKING:
    from bot.alerts.types import AlertView

app = typer.Typer(
    help="Anomaly alerts: list, show, ack, expected, resolve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

VERSION_HELP = "the version you saw (from `keybot alerts show`); default: the current one"


def _alert_id(text: str) -> int:
    value = text.strip().removeprefix("#")
    if not value.isdigit() or len(value) > 12:
        raise CliError(f"expected an alert id like 12 or #12 (got {text[:40]!r})")
    return int(value)


def _json(view: AlertView) -> dict[str, Any]:
    return {
        "id": view.id,
        "key_id": view.key_id,
        "key": view.key_name,
        "environment": view.environment,
        "state": view.state.value,
        "version": view.version,
        "signals": list(view.signals),
        "score": round(view.score, 4),
        "observed": view.observed,
        "baseline": view.baseline,
        "opened_at": iso(view.opened_at),
        "last_signal_at": iso(view.last_signal_at),
        "acked_by": view.acked_by,
        "step": view.step.value,
        "next_step_at": iso(view.next_step_at),
        "closed_at": iso(view.closed_at),
        "closed_by": view.closed_by,
        "run_id": view.run_id,
    }


@app.command("list")
def list_command(
    include_closed: bool = typer.Option(False, "--all", help="closed alerts too"),
    limit: int = typer.Option(50, min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json", help="machine-readable: a JSON list, typed fields"),
) -> None:
    """Open and acknowledged alerts (with --all, closed ones too), newest first."""
    from bot.alerts.service import recent_alerts

    with runtime().database.session() as session:
        views = recent_alerts(session, limit=limit, include_closed=include_closed)
    if as_json:
        print_json([_json(v) for v in views])
        return
    if not views:
        out.print("no alerts" if include_closed else "no open alerts")
        return
    table = Table()
    for header in ("alert", "key", "env", "state", "v", "score", "signals", "opened", "step"):
        table.add_column(header)
    for v in views:
        add_plain_row(
            table,
            f"#{v.id}",
            v.key_name,
            v.environment,
            v.state.value,
            str(v.version),
            f"{v.score:.3f}",
            ", ".join(v.signals)[:80],
            v.opened_at.strftime("%Y-%m-%d %H:%M"),
            v.step.value,
        )
    print_table(table)


@app.command("show")
def show_command(
    alert: str,
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """One alert: what was seen, the numbers, who was paged, and its timeline entries."""
    from bot.alerts.service import get_alert
    from bot.reminders.service import timeline

    rt, alert_id = runtime(), _alert_id(alert)
    with rt.database.session() as session:
        view = get_alert(session, alert_id)
    if view is None:
        raise CliError(f"no alert #{alert_id}")
    entries = [
        e for e in timeline(rt.database, view.key_id, limit=200) if e["data"].get("alert_id") == view.id
    ]
    if as_json:
        print_json([{**_json(view), "timeline": [{**e, "at": iso(e["at"])} for e in reversed(entries)]}])
        return
    state = f"{view.state.value}, version {view.version}"
    out.print(f"alert #{view.id} on {view.key_name} ({view.environment}): {state}", markup=False)
    out.print(f"  signals: {', '.join(view.signals)}  score {view.score:.3f}", markup=False)
    for metric, value in view.observed.items():
        out.print(f"  {metric}: {value:g} (baseline {view.baseline.get(metric, 0.0):g})", markup=False)
    step = f"  paged up to: {view.step.value}"
    if view.next_step_at is not None:
        step += f", next step at {view.next_step_at:%Y-%m-%d %H:%M} UTC"
    out.print(step, markup=False)
    if view.run_id:
        out.print(f"  revoke run: {view.run_id}", markup=False)
    for entry in reversed(entries):
        out.print(f"  {entry['at']:%Y-%m-%d %H:%M:%S} {entry['kind']} {entry['actor']}", markup=False)


def _decide(alert: str, version: int | None, decide: Callable[..., AlertView], done: str) -> None:
    from bot.alerts.service import get_alert
    from bot.cli.identity import cli_actor
    from bot.runbooks.refusals import RunRefused

    rt, alert_id = runtime(), _alert_id(alert)
    if version is None:
        with rt.database.session() as session:
            current = get_alert(session, alert_id)
        if current is None:
            raise CliError(f"no alert #{alert_id}")
        version = current.version
    try:
        view = decide(rt.database, alert_id, version, cli_actor(), policy=rt.policy)
    except RunRefused as refused:
        raise CliError(str(refused)) from None
    out.print(f"alert #{view.id} on {view.key_name} {done} (version {view.version})", markup=False)


@app.command("ack")
def ack_command(alert: str, version: int | None = typer.Option(None, "--version", help=VERSION_HELP)) -> None:
    """Acknowledge: the escalation chain stops and everyone paged is told."""
    from bot.alerts.service import acknowledge

    _decide(alert, version, acknowledge, "acknowledged")


@app.command("expected")
def expected_command(
    alert: str, version: int | None = typer.Option(None, "--version", help=VERSION_HELP)
) -> None:
    """That was expected: a false positive; the key's baseline rises to the pattern seen."""
    from bot.alerts.service import mark_expected

    _decide(alert, version, mark_expected, "marked expected (false positive)")


@app.command("resolve")
def resolve_command(
    alert: str, version: int | None = typer.Option(None, "--version", help=VERSION_HELP)
) -> None:
    """Resolve: the episode is over."""
    from bot.alerts.service import resolve

    _decide(alert, version, resolve, "resolved")
