"""What every CLI command shares: the runtime, the consoles, and the one way errors are reported."""

from __future__ import annotations

from functools import lru_cache

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.runtime import Runtime

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(Exception):
    """A problem the operator can fix; printed as one line, exit status 2."""


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    return Runtime.from_environment()


def add_plain_row(table: Table, *values: str | Text) -> None:
    """A table row whose stored text (names, reasons, notes) is shown as typed, never read as markup."""
    table.add_row(*(Text(value) if isinstance(value, str) else value for value in values))
