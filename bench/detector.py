"""Benchmark: the anomaly detector.

Figures: stepping 100,000 series through one day of minutes (1,440 ticks, every series at once) in points
per second on one core, the state per series (stored blob and in memory), precision, recall and time to
detect on the labelled scenarios (three seeds, three thresholds), and `keybot detect score` on a
20,000-row file, in-process and as a real subprocess. BENCH_DETECTOR_SERIES shrinks the first figure.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(
        _name, "1"
    )  # one core (set before numpy loads); elementwise numpy is one thread anyway

import numpy as np  # noqa: E402

from bench.common import figure  # noqa: E402
from bot.detection.anomaly.csvscore import score_csv  # noqa: E402
from bot.detection.anomaly.detector import DetectorBank  # noqa: E402
from bot.detection.anomaly.evaluate import judge_all, score_all, table  # noqa: E402
from bot.detection.anomaly.scenarios import scenarios  # noqa: E402

SERIES = int(os.environ.get("BENCH_DETECTOR_SERIES", "100000"))
MINUTES = 1440
ROWS = 20_000
START = 1_767_571_200


def throughput() -> None:
    rng = np.random.default_rng(1)
    base = rng.lognormal(2.0, 1.5, SERIES)  # keys from a request an hour to thousands a minute
    noise = [rng.standard_normal(SERIES) for _ in range(16)]
    bank = DetectorBank(SERIES)
    spent = 0.0
    for t in range(MINUTES):
        values = np.maximum(base + np.sqrt(base) * noise[t % 16], 0.0)
        values[t::997] = np.nan  # some series have no observation this minute
        began = time.perf_counter()
        bank.step(values, START + 60 * t)
        spent += time.perf_counter() - began
    points = SERIES * MINUTES
    figure(f"detector step: {SERIES} series x {MINUTES} minutes", spent, "s")
    figure("detector throughput (one core)", points / spent, "points/s")
    figure("detector per tick of all series", spent / MINUTES * 1000, "ms")
    memory = bank.nbytes / max(SERIES, 1)
    figure("detector state per series (stored blob)", DetectorBank.STATE_BYTES, "bytes")
    figure("detector state per series (in memory)", memory, "bytes")


def scenario_table() -> None:
    items = [item for seed in (12, 13, 14) for item in scenarios(seed)]
    began = time.perf_counter()
    scores = score_all(items)
    figure(
        f"scenario set: {len(items)} series x {scores.shape[1]} minutes scored",
        time.perf_counter() - began,
        "s",
    )
    for threshold in (0.9, 0.95, 0.99):
        print(table(judge_all(items, scores, threshold)), flush=True)


def detect_score() -> None:
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.csv"
        with source.open("w") as f:
            f.write("timestamp,value\n")
            for i, v in enumerate(rng.normal(50, 5, ROWS)):
                stamp = datetime.fromtimestamp(1_396_310_400 + 300 * i, UTC).strftime("%Y-%m-%d %H:%M:%S")
                f.write(f"{stamp},{v:.4f}\n")
        began = time.perf_counter()
        with source.open(newline="") as reader:
            rows = score_csv(reader, io.StringIO())
        figure(f"detect score, {rows} rows, in-process", time.perf_counter() - began, "s")
        keybot = Path(sys.executable).with_name("keybot")
        command = [str(keybot)] if keybot.exists() else [sys.executable, "-m", "bot.cli.main"]
        began = time.perf_counter()
        done = subprocess.run([*command, "detect", "score", str(source), "--out", str(Path(tmp) / "out.csv")])
        elapsed = time.perf_counter() - began
        if done.returncode != 0:
            print(f"# keybot detect score failed with exit status {done.returncode}")
        else:
            figure(f"keybot detect score, {rows} rows, subprocess", elapsed, "s")


def run() -> None:
    throughput()
    scenario_table()
    detect_score()
