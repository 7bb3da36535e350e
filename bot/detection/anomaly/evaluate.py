"""Precision, recall and time to detect of the detector on the labelled scenarios, at one threshold.

An alert episode starts when a score reaches the threshold; crossings less than `merge_minutes` after the
previous score at or above the threshold belong to the same episode (the alerts domain dedupes the same
way). An episode is a true positive when it starts inside a labelled window (the first detection counts),
a false positive otherwise. A window is detected when an episode starts inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bot.detection.anomaly.config import DetectorConfig
from bot.detection.anomaly.detector import DetectorBank
from bot.detection.anomaly.scenarios import Scenario, scenarios, timestamps


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    windows: int
    detected: int
    true_episodes: int
    false_episodes: int
    minutes_to_detect: tuple[float, ...]


@dataclass(frozen=True)
class Evaluation:
    threshold: float
    results: tuple[ScenarioResult, ...]

    @property
    def precision(self) -> float:
        true = sum(r.true_episodes for r in self.results)
        total = true + sum(r.false_episodes for r in self.results)
        return true / total if total else 1.0

    @property
    def recall(self) -> float:
        windows = sum(r.windows for r in self.results)
        return sum(r.detected for r in self.results) / windows if windows else 1.0

    def ttd(self, q: float) -> float:
        """Quantile q of minutes from window start to first detection, over detected windows (NaN if none)."""
        delays = [d for r in self.results for d in r.minutes_to_detect]
        return float(np.quantile(delays, q)) if delays else float("nan")


def score_all(items: Sequence[Scenario], config: DetectorConfig | None = None) -> npt.NDArray[np.float64]:
    """Scores (scenarios x minutes): every scenario stepped together through one bank."""
    matrix = np.stack([item.values for item in items])
    ts = timestamps(matrix.shape[1])
    bank = DetectorBank(len(items), config)
    out = np.empty_like(matrix)
    for t in range(matrix.shape[1]):
        out[:, t] = bank.step(matrix[:, t], int(ts[t]))
    return out


def episodes(scores: npt.NDArray[np.float64], threshold: float, merge_minutes: int = 15) -> list[int]:
    """Start indexes of alert episodes in one series of per-minute scores."""
    starts: list[int] = []
    last = -(10**9)
    for i in np.flatnonzero(scores >= threshold):
        if i - last > merge_minutes:
            starts.append(int(i))
        last = int(i)
    return starts


PROBATION_MINUTES = 2 * 1440
"""Alerts in a series' first two days (15% of a scenario, as in public benchmarks' probation period) are
not judged: a key's first days are when its daily pattern is learned."""


def judge(item: Scenario, scores: npt.NDArray[np.float64], threshold: float) -> ScenarioResult:
    starts = [s for s in episodes(scores, threshold) if s >= PROBATION_MINUTES]
    inside = [any(a <= s < b for a, b in item.windows) for s in starts]
    delays = []
    for a, b in item.windows:
        hits = [s for s in starts if a <= s < b]
        if hits:
            delays.append(float(hits[0] - a))
    return ScenarioResult(
        item.name, len(item.windows), len(delays), sum(inside), len(starts) - sum(inside), tuple(delays)
    )


def evaluate(
    threshold: float = 0.95, config: DetectorConfig | None = None, seed: int = 12, repeats: int = 1
) -> Evaluation:
    """The scenario set (`repeats` seeds from `seed` on) judged at `threshold`."""
    items = [item for r in range(repeats) for item in scenarios(seed + r)]
    return judge_all(items, score_all(items, config), threshold)


def judge_all(items: Sequence[Scenario], scores: npt.NDArray[np.float64], threshold: float) -> Evaluation:
    """Scored scenarios judged at `threshold`, repeats of one scenario (other seeds) added together."""
    merged: dict[str, list[ScenarioResult]] = {}
    for i, item in enumerate(items):
        merged.setdefault(item.name, []).append(judge(item, scores[i], threshold))
    results = tuple(
        ScenarioResult(
            name,
            sum(r.windows for r in rs),
            sum(r.detected for r in rs),
            sum(r.true_episodes for r in rs),
            sum(r.false_episodes for r in rs),
            tuple(d for r in rs for d in r.minutes_to_detect),
        )
        for name, rs in merged.items()
    )
    return Evaluation(threshold, results)


def table(evaluation: Evaluation) -> str:
    """The evaluation as plain text lines: one per scenario, then the totals."""
    lines = [f"{'scenario':32} windows detected TP FP  TTD(min)"]
    for r in evaluation.results:
        ttd = ",".join(f"{d:.0f}" for d in r.minutes_to_detect) or "-"
        lines.append(
            f"{r.name:32} {r.windows:7} {r.detected:8} {r.true_episodes:2} {r.false_episodes:2}  {ttd}"
        )
    lines.append(
        f"threshold {evaluation.threshold}: precision {evaluation.precision:.3f} "
        f"recall {evaluation.recall:.3f} "
        f"TTD median {evaluation.ttd(0.5):.1f} min p90 {evaluation.ttd(0.9):.1f} min"
    )
    return "\n".join(lines)
