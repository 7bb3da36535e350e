"""Runs every benchmark module in turn: `python -m bench [name ...]`."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = [
    "bench.registry",
    "bench.engine",
    "bench.slack_ack",
    "bench.cli_start",
    "bench.reminders",
    "bench.detector",
    "bench.ingest",
]


def main(selected: list[str]) -> None:
    for name in BENCHMARKS:
        if selected and name.rsplit(".", 1)[-1] not in selected:
            continue
        importlib.import_module(name).run()


if __name__ == "__main__":
    main(sys.argv[1:])
