"""`keybot detect`: run the paging detector on a file.

`keybot detect score IN.csv --out OUT.csv` reads `timestamp,value` (header required; ISO 8601,
`YYYY-MM-DD HH:MM:SS` or unix-second timestamps, UTC when naive) and writes `timestamp,value,anomaly_score`
with the input strings preserved, in the input order, each score from that row and earlier rows only.
A bad line stops the run with its line number and exit status 2, and no output file is left behind (the
output is written to a temporary file and renamed at the end). How the detector works: docs/detection.md.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

STDOUT = "-"


def _fail(message: str) -> typer.Exit:
    sys.stderr.write(f"keybot: {message}\n")
    sys.stderr.flush()
    return typer.Exit(2)


@app.command("score")
def score_command(
    source: Annotated[Path, typer.Argument(help="A `timestamp,value` CSV file (with its header line).")],
    out: Annotated[
        str,
        typer.Option("--out", "-o", help="Where to write `timestamp,value,anomaly_score`; `-` is stdout."),
    ] = STDOUT,
) -> None:
    """Score every row of a `timestamp,value` CSV with exactly the detector that pages key owners."""
    from bot.detection.anomaly.csvscore import CsvInputError, score_csv

    if not source.exists():
        raise _fail(f"{source}: no such file")
    if source.is_dir():
        raise _fail(f"{source}: is a directory")
    try:
        with source.open(encoding="utf-8-sig", newline="") as reader:
            if out == STDOUT:
                score_csv(reader, sys.stdout)
                sys.stdout.flush()
                return
            target = Path(out)
            try:
                fd, tmp = tempfile.mkstemp(prefix=".keybot-score-", suffix=".csv", dir=target.parent)
            except OSError as error:
                raise _fail(f"cannot write {target}: {error.strerror or error}") from None
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as writer:
                    score_csv(reader, writer)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    except CsvInputError as error:
        raise _fail(f"{source}: {error}") from None
    except OSError as error:
        raise _fail(f"{error.filename or source}: {error.strerror or error}") from None
