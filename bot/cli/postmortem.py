"""`keybot postmortem INC-ID`: regenerate an incident's postmortem draft."""

from __future__ import annotations

import typer


def postmortem_command(
    incident: str = typer.Argument(..., help="INC-00042, DRILL-00003 or the number"),
) -> None:
    """Regenerate an incident's postmortem draft."""
    raise typer.Exit(2)
