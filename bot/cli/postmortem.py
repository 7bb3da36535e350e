"""`keybot postmortem INC-ID`: regenerate an incident's postmortem draft.

The Markdown goes to stdout (or `--out FILE`); where the draft was saved and any warning (a broken
template override, blaming language, no LLM narrative) go to stderr, so stdout stays the document.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from bot.cli.context import CliError, err, runtime


def postmortem_command(
    incident: str = typer.Argument(..., help="INC-00042, DRILL-00003 or the number"),
    llm: bool | None = typer.Option(
        None, "--llm/--no-llm", help="ask the LLM for a narrative (default: KEYBOT_POSTMORTEM_LLM and a key)"
    ),
    out_file: Path | None = typer.Option(None, "--out", help="write the Markdown here instead of stdout"),
) -> None:
    """Regenerate an incident's postmortem draft."""
    from bot.incidents import lifecycle
    from bot.postmortems.service import draft_postmortem
    from bot.runbooks.refusals import RunRefused

    try:
        incident_id = lifecycle.parse_reference(incident)
        draft = draft_postmortem(runtime().database, incident_id, llm=llm)
    except RunRefused as refused:
        raise CliError(str(refused)) from None
    if out_file is not None:
        try:
            out_file.write_text(draft.markdown, encoding="utf-8")
        except OSError as error:
            raise CliError(f"could not write {out_file}: {error.strerror or type(error).__name__}") from None
        err.print(f"{draft.reference}: draft written to {out_file}", markup=False)
    else:
        sys.stdout.write(draft.markdown)
        sys.stdout.flush()
    for warning in draft.warnings:
        err.print(f"warning: {warning}", markup=False)
    if draft.path is not None:
        err.print(f"{draft.reference}: draft saved to {draft.path}", markup=False)
