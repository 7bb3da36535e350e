"""What every CLI command shares: the runtime, the consoles, and the one way errors are reported."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from bot.runtime import Runtime

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

LOG_FILE_NAME = "keybot.log"


class CliError(Exception):
    """A problem the operator can fix; printed as one line, exit status 2."""


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    """The process's runtime, built on first use; logging is configured here too (to stderr and to
    `KEYBOT_STATE_DIR/keybot.log`), so `--help` and commands that need no configuration read none."""
    from bot.log import configure_logging
    from bot.runtime import Runtime

    built = Runtime.from_environment()
    settings = built.settings
    configure_logging(settings.log_format, settings.log_level, file=settings.state_dir / LOG_FILE_NAME)
    return built


def add_plain_row(table: Table, *values: str | Text) -> None:
    """A table row whose stored text (names, reasons, notes) is shown as typed, never read as markup."""
    table.add_row(*(Text(value) if isinstance(value, str) else value for value in values))


def iso(moment: datetime | None) -> str | None:
    """Timestamps in `--json` output: ISO 8601 with the UTC offset, or null."""
    return moment.isoformat() if moment is not None else None


def print_json(rows: list[dict[str, Any]]) -> None:
    """`--json` output: one JSON list on stdout, fields typed (ints, booleans, null), never markup."""
    sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    sys.stdout.flush()


def print_table(table: Table) -> None:
    """A table is never cut to the console's width (rich would fold or ellipsize ids on a narrow terminal
    or when piped with a small COLUMNS): when it does not fit, it is printed at its natural width."""
    natural = out.measure(table).maximum
    if natural <= out.width:
        out.print(table)
    else:
        out.print(table, width=natural, crop=False)
