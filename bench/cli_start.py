"""How long `keybot --help` takes from a cold process: median (and p90) wall time of N runs."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench.common import figure, percentile

RUNS = int(os.environ.get("BENCH_CLI_RUNS", "15"))
COMMAND = [sys.executable, "-c", "from bot.cli.main import main; main()", "--help"]


def run() -> None:
    samples = []
    with tempfile.TemporaryDirectory() as cwd:  # nothing in the checkout (no .env, no keybot.db) helps it
        for _ in range(RUNS):
            started = time.perf_counter()
            subprocess.run(COMMAND, cwd=cwd, capture_output=True, check=True)
            samples.append(time.perf_counter() - started)
    figure("cli_help_median", statistics.median(samples) * 1000, "ms")
    figure("cli_help_p90", percentile(samples, 90) * 1000, "ms")


if __name__ == "__main__":
    run()
