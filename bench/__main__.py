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
    "bench.capacity",
]
ON_REQUEST = ["bench.soak"]
"""Run only when named (`python -m bench soak`): half an hour by default."""


def main(selected: list[str]) -> None:
    for name in BENCHMARKS + [n for n in ON_REQUEST if n.rsplit(".", 1)[-1] in selected]:
        if selected and name.rsplit(".", 1)[-1] not in selected:
            continue
        importlib.import_module(name).run()


if __name__ == "__main__":
    main(sys.argv[1:])
