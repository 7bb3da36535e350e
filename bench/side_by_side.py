"""The emergency-revoke time and the bulk leak (bench/engine.py) on SQLite and PostgreSQL in one run,
printed as one table beside the ack capacity of bench/capacity.py. `python -m bench capacity` calls it.

The engine figures come from bench/engine.py unchanged, with fewer runs so the whole capacity benchmark
stays within a few minutes: BENCH_ENGINE_RUNS (4 here), BENCH_BULK_KEYS (200 here), both overridable.
The bulk leak runs in BENCH_BULK_PROCESSES worker processes (2 here: the two-replica shape) on each
database; the per-run figures come from one process.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

DEFAULTS = {"BENCH_ENGINE_RUNS": "4", "BENCH_BULK_KEYS": "200", "BENCH_BULK_PROCESSES": "2"}
ROWS = [
    ("emergency revoke p50 (ms)", "engine.emergency.{db}.p50"),
    ("emergency revoke p95 (ms)", "engine.emergency.{db}.p95"),
    ("staged run p50 (ms)", "engine.staged.{db}.p50"),
    ("bulk leak {n} keys (s)", "engine.bulk_{n}.{db}.seconds"),
    ("bulk leak (runs/s)", "engine.bulk_{n}.{db}.runs_per_second"),
]


class _Tee(io.TextIOBase):
    """Prints as it goes and keeps every line, so the table can be drawn from the figures afterwards."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        sys.__stdout__.write(text)
        self.lines.extend(line for line in text.splitlines() if line)
        return len(text)


def run() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    from bench import engine  # reads its environment at import

    tee = _Tee()
    with contextlib.redirect_stdout(tee):
        engine.run()
    figures = {}
    for line in tee.lines:
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            figures[parts[0]] = float(parts[1])
    n = engine.BULK
    print("\n# side by side: engine figures on one process per database")
    print("# " + "figure".ljust(30) + "sqlite".rjust(12) + "postgresql".rjust(12))
    for label, template in ROWS:
        cells = []
        for db in ("sqlite", "postgresql"):
            value = figures.get(template.format(db=db, n=n))
            cells.append("-" if value is None else f"{value:.1f}")
        print("# " + label.format(n=n).ljust(30) + "".join(c.rjust(12) for c in cells), flush=True)
