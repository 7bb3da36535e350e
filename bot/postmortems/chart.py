"""The weekly digest's chart: incidents and alerts per day as bars, the median time to contain as a line.

Managers look before they read. `DigestChartData` is the data behind the picture (tests check it, not the
pixels); `digest_chart` draws it with matplotlib's Agg backend, imported on first use, headless, and pure:
the same data gives the same bytes (no timestamps or software name inside the PNG).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date

WIDTH_IN, HEIGHT_IN, DPI = 7.0, 3.0, 100


@dataclass(frozen=True)
class DigestChartData:
    """One ISO week, day by day (local days of the digest timezone)."""

    week: str
    days: tuple[date, ...]
    incidents: tuple[int, ...]  # real incidents opened that day
    alerts: tuple[int, ...]  # anomaly alerts opened that day
    contain_minutes: tuple[float | None, ...]  # median time to contain of incidents contained that day


def digest_chart(data: DigestChartData) -> bytes:
    """A 700x300 PNG: bars of incidents and alerts per day, the median time to contain on a second axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    xs = list(range(len(data.days)))
    width = 0.38
    axes.bar([x - width / 2 for x in xs], list(data.incidents), width, color="#d62728", label="incidents")
    axes.bar([x + width / 2 for x in xs], list(data.alerts), width, color="#1f77b4", label="alerts")
    axes.set_xticks(xs, [d.strftime("%a %d") for d in data.days])
    axes.set_ylabel("opened per day", fontsize=7)
    axes.set_ylim(bottom=0, top=max([*data.incidents, *data.alerts, 1]) + 1)
    axes.tick_params(labelsize=7)
    axes.set_title(f"Week {data.week}", fontsize=8)
    handles, labels = axes.get_legend_handles_labels()
    points = [(x, v) for x, v in zip(xs, data.contain_minutes, strict=True) if v is not None]
    if points:
        line = axes.twinx()
        line.plot(
            [x for x, _ in points], [v for _, v in points], color="#2ca02c", marker="o", linewidth=1.2,
            label="median time to contain (min)",
        )  # fmt: skip
        line.set_ylabel("minutes to contain", fontsize=7)
        line.set_ylim(bottom=0)
        line.tick_params(labelsize=7)
        more_handles, more_labels = line.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    axes.legend(handles, labels, fontsize=7, loc="upper left", frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()
