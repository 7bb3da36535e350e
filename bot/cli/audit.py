"""`keybot audit verify` and `keybot runbook show`: proving the record and explaining the process."""

from __future__ import annotations

import typer

from bot.cli.context import CliError, out, runtime

audit_app = typer.Typer(help="Audit trail checks.", no_args_is_help=True)
runbook_app = typer.Typer(help="Runbook definitions.", no_args_is_help=True)


@audit_app.command("verify")
def verify_command(incident: int | None = typer.Option(None, help="only this incident id")) -> None:
    """Recompute the timeline hash chain; exit 1 and say where it breaks if anything was altered."""
    from bot.incidents.service import verify_chain

    rt = runtime()
    with rt.database.session() as session:
        checked, breaks = verify_chain(session, incident)
    if breaks:
        for problem in breaks:
            out.print(f"BROKEN {problem}", markup=False)
        out.print(f"{checked} event(s) checked, {len(breaks)} chain(s) broken")
        raise typer.Exit(1)
    out.print(f"ok: {checked} event(s) checked, every chain intact")


@runbook_app.command("show")
def show_command(
    name: str,
    raw: bool = typer.Option(False, "--markdown", help="print the Markdown source instead of rendering it"),
) -> None:
    """The one-page document for a runbook: steps, approvals, who is told what."""
    from rich.markdown import Markdown

    from bot.runbooks.render import runbook_document

    runbooks = runtime().runbooks
    if name not in runbooks:
        raise CliError(f"no runbook {name!r}; known: {', '.join(sorted(runbooks))}")
    document = runbook_document(runbooks[name])
    if raw:
        typer.echo(document)
    else:
        out.print(Markdown(document))


@runbook_app.command("list")
def list_command() -> None:
    """Every runbook definition and its modes."""
    for name, definition in sorted(runtime().runbooks.items()):
        out.print(f"{name}: {definition.title} (modes: {', '.join(definition.modes)})")
