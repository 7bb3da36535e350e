"""A key's recent traffic as text: the ▁…█ sparkline and the one-line totals App Home, the key card and
alert pages show. Text, not images, so it reads the same in every Slack client and in golden files."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 60  # characters: six hours at one bar per six minutes


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """Bars ▁…█ from zero to the largest value; past ``width`` values, each bar is the max of its slice
    (a one-minute spike must stay visible). Missing or negative values count as zero; no values: ``""``."""
    clean = [v if isinstance(v, int | float) and math.isfinite(v) and v > 0 else 0.0 for v in values]
    if not clean or width < 1:
        return ""
    if len(clean) > width:
        size = len(clean) / width
        clean = [
            max(clean[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)]) for i in range(width)
        ]
    top = max(clean)
    if top <= 0:
        return BARS[0] * len(clean)
    last = len(BARS) - 1
    return "".join(BARS[min(last, math.ceil(v / top * last))] for v in clean)


def amount(value: float) -> str:
    """``1,240``, ``3.5``, ``0.012``: readable without losing a small cost."""
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


@dataclass(frozen=True)
class KeyTraffic:
    """A key's recent traffic for App Home and the key card: requests per minute and the window's totals."""

    key_id: int
    hours: int
    requests_per_minute: tuple[float, ...]
    totals: Mapping[str, float]


def traffic_line(traffic: KeyTraffic) -> str:
    """``▁▁▂█▁ 1,240 requests · 88,000 tokens · $1.20 in 6 h``."""
    totals = traffic.totals
    parts = [f"{amount(totals.get('requests', 0.0))} requests"]
    if totals.get("tokens"):
        parts.append(f"{amount(totals['tokens'])} tokens")
    if totals.get("cost_usd"):
        parts.append(f"${totals['cost_usd']:,.2f}")
    errors = totals.get("status_401", 0.0) + totals.get("status_429", 0.0)
    if errors:
        parts.append(f"{amount(errors)} 401/429s")
    spark = sparkline(traffic.requests_per_minute)
    return f"`{spark}` " + " · ".join(parts) + f" in {traffic.hours} h"
