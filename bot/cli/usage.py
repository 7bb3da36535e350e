"""`keybot usage import FILE | show KEY`: key usage from a terminal.

`import` takes the endpoint's JSON lines, or CSV with a header naming the same fields, for back-tests:
good lines are recorded (additively, source `import`) even when others are refused, and every refusal
is reported with its line number. `show` prints a key's recent per-minute (or per-hour) totals.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import typer

from bot.cli.context import CliError, add_plain_row, out, print_json, print_table, runtime

app = typer.Typer(
    help="Key usage series: import a file, show a key's traffic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CHUNK_LINES = 50_000
MAX_FILE_BYTES = 2_000_000_000
MINUTE_VIEW_HOURS = 6


def _open(path: Path) -> Any:
    try:
        if not path.is_file():
            raise CliError(f"{str(path)[:200]} is not a regular file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CliError(f"{str(path)[:200]} is larger than {MAX_FILE_BYTES // 1_000_000} MB; split it")
        return path.open("rb")
    except OSError as error:
        raise CliError(f"cannot read {str(path)[:200]}: {error.strerror}") from None


def _is_csv(path: Path, head: bytes, fmt: str) -> bool:
    if fmt != "auto":
        return fmt == "csv"
    return path.suffix.lower() == ".csv" or not head.lstrip().startswith(b"{")


def _batches(handle: Any) -> Iterator[list[bytes]]:
    while batch := list(islice(handle, CHUNK_LINES)):
        yield batch


@app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="JSON lines (like POST /ingest/usage) or CSV with a header"),
    fmt: str = typer.Option("auto", "--format", help="auto, jsonl or csv"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Record usage lines from a file; exit 1 when some lines were refused (the others are kept)."""
    from bot.db.base import utcnow
    from bot.usage.ingest import MAX_ERRORS, Report, parse_csv, parse_json_lines
    from bot.usage.resolve import KeyResolver
    from bot.usage.service import record_lines

    if fmt not in ("auto", "jsonl", "csv"):
        raise CliError(f"--format is auto, jsonl or csv (got {fmt[:20]!r})")
    database, now = runtime().database, utcnow()
    total = Report()
    accepted = 0
    with _open(file) as handle:
        head = handle.peek(64) if hasattr(handle, "peek") else b""
        if _is_csv(file, head, fmt):
            try:
                text = handle.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise CliError("the CSV file is not UTF-8") from None
            with database.session() as session:
                total = parse_csv(text, KeyResolver(session), now)
            accepted = record_lines(database, total.lines, source="import").lines
        else:
            number = 1
            for batch in _batches(handle):
                with database.session() as session:
                    report = parse_json_lines(batch, KeyResolver(session), now, first_line=number)
                accepted += record_lines(database, report.lines, source="import").lines
                total.rejected += report.rejected
                total.errors.extend(report.errors[: MAX_ERRORS - len(total.errors)])
                number += len(batch)
    summary = total.as_json(accepted)
    if as_json:
        print_json([summary])
    else:
        out.print(f"{accepted} lines accepted, {total.rejected} rejected")
        for error in summary["errors"]:
            add = f"line {error['line']}: {error['error']}"
            out.print(add, markup=False)
        if total.rejected > len(summary["errors"]):
            out.print(f"... and {total.rejected - len(summary['errors'])} more")
    if total.rejected:
        raise typer.Exit(1)


def _key(reference: str) -> tuple[int, str]:
    from sqlalchemy import select

    from bot.registry.models import Key
    from bot.usage.resolve import KeyResolver, Unresolved

    with runtime().database.session() as session:
        try:
            key_id = KeyResolver(session).resolve(reference)
        except Unresolved as error:
            raise CliError(str(error)) from None
        return key_id, session.scalars(select(Key.name).where(Key.id == key_id)).one()


@app.command("show")
def show_command(
    key: str = typer.Argument(..., help="the key's name, #id, provider key id, redacted form or fingerprint"),
    hours: int = typer.Option(3, "--hours", min=1, max=24 * 90, help="how far back"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """A key's recent traffic: per minute up to 6 hours back, per hour beyond; empty slots are left out."""
    from rich.table import Table

    from bot.db.base import utcnow
    from bot.usage.service import series
    from bot.usage.types import METRICS, floor_minute

    key_id, name = _key(key)
    end = floor_minute(utcnow()) + timedelta(minutes=1)
    start = end - timedelta(hours=hours)
    with runtime().database.session() as session:
        block = series(session, [key_id], start, end)
    step = 1 if hours <= MINUTE_VIEW_HOURS else 60
    rows: list[dict[str, Any]] = []
    for i in range(0, len(block.minutes), step):
        sums = {m: float(block.values[m][0, i : i + step].sum()) for m in METRICS}
        if any(sums.values()):
            at: datetime = block.minutes[i]
            rows.append(
                {"at": at.isoformat(), **{m: sums[m] if m == "cost_usd" else round(sums[m]) for m in METRICS}}
            )
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{name} (#{key_id}), last {hours} h, per {'minute' if step == 1 else 'hour'} (UTC)")
    for column in ("at", "requests", "tokens", "cost USD", "401", "429"):
        table.add_column(column, justify="left" if column == "at" else "right")
    for row in rows:
        add_plain_row(
            table,
            row["at"][:16].replace("T", " "),
            f"{row['requests']:,}",
            f"{row['tokens']:,}",
            f"{row['cost_usd']:.4f}",
            f"{row['status_401']:,}",
            f"{row['status_429']:,}",
        )
    if not rows:
        out.print(f"no usage recorded for {name} (#{key_id}) in the last {hours} h", markup=False)
        return
    print_table(table)
