"""The page's chart: the data behind it comes from the usage store and the alert's baseline, and the PNG
is small, a PNG, and the same bytes for the same data."""

from __future__ import annotations

import struct
from datetime import timedelta

from bot.alerts import service
from bot.alerts.chart import ChartData, render_png
from bot.alerts.opening import raise_alerts
from bot.db.session import Database
from bot.usage.service import record_lines
from bot.usage.types import UsageLine
from tests.alerts_helpers import NOW, add_key, add_team, finding, settings


def _data(n: int = 360) -> ChartData:
    minutes = tuple(NOW - timedelta(minutes=n - 1 - i) for i in range(n))
    observed = tuple(30.0 + (i % 7) if i < n - 3 else 900.0 for i in range(n))
    return ChartData("pay-prod", "requests", minutes, observed, tuple(30.0 for _ in range(n)))


def _size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_the_png_is_small_and_deterministic() -> None:
    png = render_png(_data())
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and _size(png) == (600, 250)
    assert len(png) < 60_000
    assert render_png(_data()) == png
    assert render_png(_data(120)) != png
    assert b"Software" not in png and b"matplotlib" not in png.lower()


def test_an_empty_series_still_draws() -> None:
    empty = ChartData("k", "tokens", (), (), ())
    assert _size(render_png(empty)) == (600, 250)


def test_chart_points_read_the_last_hours_of_the_main_metric_against_the_baseline(database: Database) -> None:
    add_team(database)
    key = add_key(database)
    lines = [UsageLine(key, NOW - timedelta(minutes=m), requests=10 + m) for m in range(0, 400, 50)]
    record_lines(database, lines, source="ingest")
    (alert_id,) = raise_alerts(database, [finding(key, minute=NOW)], NOW, settings())
    with database.session() as session:
        data = service.chart_points(session, alert_id, hours=6)
    assert data.metric == "requests" and data.label == "requests / min" and len(data.minutes) == 360
    assert data.minutes[-1] == NOW and data.minutes[0] == NOW - timedelta(minutes=359)
    assert data.observed[-1] == 10.0 and data.observed[-51] == 60.0 and data.observed[-2] == 0.0
    assert sum(data.observed) == sum(10 + m for m in range(0, 360, 50))
    assert set(data.baseline) == {30.0}
