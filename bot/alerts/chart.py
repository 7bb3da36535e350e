"""The small chart in a page: the alert's main metric over the last hours against the detector baseline.

`chart_data` gathers the numbers (tested as data); `render_png` draws them with matplotlib's Agg backend,
imported on first use (it costs about half a second), and is pure: the same data gives the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.alerts.types import AlertView

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

WIDTH_IN, HEIGHT_IN, DPI = 6.0, 2.5, 100
LABELS = {
    "requests": "requests / min",
    "tokens": "tokens / min",
    "cost_usd": "cost (USD) / min",
    "status_401": "401 responses / min",
    "status_429": "429 responses / min",
}


@dataclass(frozen=True)
class ChartData:
    """What the chart shows: per-minute observed values and the baseline they are compared with."""

    key_name: str
    metric: str
    minutes: tuple[datetime, ...]
    observed: tuple[float, ...]
    baseline: tuple[float, ...]

    @property
    def label(self) -> str:
        return LABELS.get(self.metric, self.metric)


def main_metric(signals: tuple[str, ...]) -> str:
    """The first metric among the signals (novelty-only alerts chart requests)."""
    return next((s for s in signals if s in LABELS), "requests")


def chart_data(session: Session, alert: AlertView, *, hours: int = 6) -> ChartData:
    """The last `hours` up to the alert's latest signal, from the usage series store."""
    from bot.usage.service import series

    hours = max(1, min(hours, 48))
    metric = main_metric(alert.signals)
    last = alert.last_signal_at or alert.opened_at
    end = last.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(hours=hours)
    block = series(session, [alert.key_id], start, end)
    values = block.values.get(metric)
    observed = tuple(float(v) for v in values[0]) if values is not None and len(block.key_ids) else ()
    minutes = tuple(block.minutes)
    if not observed:
        observed = tuple(0.0 for _ in minutes)
    level = float(alert.baseline.get(metric, 0.0))
    return ChartData(alert.key_name, metric, minutes, observed, tuple(level for _ in minutes))


def render_png(data: ChartData) -> bytes:
    """A 600x250 PNG: observed (solid) against baseline (dashed); deterministic, no timestamps inside."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    n = len(data.minutes)
    xs = [(m - data.minutes[-1]).total_seconds() / 3600.0 for m in data.minutes] if n else []
    axes.plot(xs, list(data.observed), color="#d62728", linewidth=1.2, label="observed")
    axes.plot(xs, list(data.baseline), color="#1f77b4", linewidth=1.0, linestyle="--", label="baseline")
    axes.set_xlabel("hours before the latest signal (UTC)", fontsize=7)
    axes.set_ylabel(data.label, fontsize=7)
    axes.set_title(f"{data.key_name[:60]}: {data.label}", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.set_ylim(bottom=0)
    if n:
        axes.legend(fontsize=7, loc="upper left", frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()
