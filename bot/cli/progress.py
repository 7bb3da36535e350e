"""Terminal rendering of a run, live while it executes (the break-glass view when Slack is down)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType

from rich.live import Live
from rich.table import Table
from rich.text import Text

from bot.cli.context import add_plain_row, out
from bot.db.session import Database
from bot.runbooks.models import Run
from bot.runbooks.render import progress_rows


def run_table(run: Run) -> Table:
    title = Text(f"{run.id} · {run.runbook} · {run.mode} · {run.status.value}")
    table = Table(title=title, title_justify="left")
    for column in ("", "step", "state", "time", "note"):
        table.add_column(column)
    for row in progress_rows(run):
        seconds = f"{row.seconds:.1f}s" if row.seconds is not None else ""
        add_plain_row(table, row.mark, row.title, row.status, seconds, row.note)
    return table


class LiveProgress(AbstractContextManager["LiveProgress"]):
    """An engine `on_change` callback that redraws the run's table in place."""

    def __init__(self, database: Database, run_id: str) -> None:
        self.database = database
        self.run_id = run_id
        self.live = Live(console=out, auto_refresh=False, transient=False)

    def __call__(self, run_id: str) -> None:
        with self.database.session() as session:
            run = session.get(Run, run_id)
            if run is not None:
                self.live.update(run_table(run), refresh=True)

    def __enter__(self) -> LiveProgress:
        self.live.__enter__()
        self(self.run_id)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self(self.run_id)
        self.live.__exit__(kind, value, tb)
