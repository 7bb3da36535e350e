"""The usage series store: additive lines, replaced buckets, sightings, series shape, retention roll-up."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from bot.db.session import Database
from bot.usage.service import (
    METRICS,
    key_sightings,
    latest_complete_minute,
    monitored_keys,
    record_buckets,
    record_lines,
    series,
    sightings_since,
)
from bot.usage.types import UsageLine
from tests.usage_helpers import NOW, add_key

M = timedelta(minutes=1)


def test_lines_add_and_buckets_replace(database: Database) -> None:
    key = add_key(database, "checkout")
    line = UsageLine(
        key,
        NOW + timedelta(seconds=17),
        requests=3,
        input_tokens=10,
        output_tokens=5,
        cost_usd=0.5,
        status={"200": 2, "401": 1},
    )
    record_lines(database, [line, line], source="ingest")
    record_lines(database, [line], source="ingest")
    bucket = UsageLine(key, NOW, requests=7, input_tokens=100, model="gpt-4o")
    record_buckets(database, [bucket], source="openai")
    record_buckets(database, [bucket], source="openai")  # re-read: replaced, not doubled
    with database.session() as session:
        block = series(session, [key], NOW, NOW + 2 * M)
    assert block.minutes == [NOW, NOW + M]
    assert block.values["requests"].tolist() == [[3 * 3 + 7, 0.0]]
    assert block.values["tokens"].tolist() == [[3 * 15 + 100, 0.0]]
    assert block.values["cost_usd"][0, 0] == pytest.approx(1.5)
    assert block.values["status_401"].tolist() == [[3.0, 0.0]]
    assert block.values["status_429"].tolist() == [[0.0, 0.0]]


def test_series_shape_zero_fill_and_key_order(database: Database) -> None:
    a, b, idle = add_key(database, "a"), add_key(database, "b"), add_key(database, "idle")
    record_lines(
        database, [UsageLine(b, NOW + 2 * M, requests=4), UsageLine(a, NOW, requests=1)], source="ingest"
    )
    with database.session() as session:
        block = series(session, [b, idle, a], NOW, NOW + 5 * M)
        assert latest_complete_minute(session) == NOW + 2 * M
        assert monitored_keys(session) == sorted([a, b])
    assert block.key_ids == [b, idle, a]
    assert set(block.values) == set(METRICS)
    for values in block.values.values():
        assert values.shape == (3, 5) and values.dtype == np.float64
    assert block.values["requests"].tolist() == [[0, 0, 4, 0, 0], [0] * 5, [1, 0, 0, 0, 0]]


def test_empty_series(database: Database) -> None:
    with database.session() as session:
        assert series(session, [], NOW, NOW + M).values["requests"].shape == (0, 1)
        assert series(session, [1], NOW, NOW).values["tokens"].shape == (1, 0)
        assert latest_complete_minute(session) is None


def test_first_day_sightings_are_baseline_later_ones_are_signals(database: Database) -> None:
    key = add_key(database, "k")
    first = record_lines(
        database,
        [
            UsageLine(key, NOW, requests=1, source_ip="203.0.113.7", model="gpt-4o"),
            UsageLine(key, NOW + timedelta(hours=2), requests=1, source_ip="203.0.113.8"),
        ],
        source="ingest",
    )
    assert {(s.value, s.baseline) for s in first.new_sightings} == {
        ("203.0.113.7", True),
        ("gpt-4o", True),
        ("203.0.113.8", True),
    }
    later = NOW + timedelta(days=2)
    again = record_lines(
        database,
        [
            UsageLine(key, later, requests=1, source_ip="203.0.113.7"),
            UsageLine(key, later, requests=1, source_ip="198.51.100.1", model="gpt-4.1"),
        ],
        source="ingest",
    )
    assert {(s.kind, s.value, s.baseline) for s in again.new_sightings} == {
        ("ip", "198.51.100.1", False),
        ("model", "gpt-4.1", False),
    }
    with database.session() as session:
        signals = sightings_since(session, NOW)
        assert [(s.kind, s.value, s.first_seen) for s in signals] == [
            ("ip", "198.51.100.1", later),
            ("model", "gpt-4.1", later),
        ]
        assert sightings_since(session, later + M) == []
        assert key_sightings(session, key) == (3, 2)
    # seen again: not new, and its distinct count per minute is kept
    assert (
        record_lines(
            database, [UsageLine(key, later, source_ip="198.51.100.1")], source="ingest"
        ).new_sightings
        == ()
    )


def test_drill_keys_are_not_monitored(database: Database) -> None:
    drill = add_key(database, "drill-copy", drill=True)
    record_lines(database, [UsageLine(drill, NOW, requests=1)], source="ingest")
    with database.session() as session:
        assert monitored_keys(session) == []


def test_retention_rolls_minutes_into_hours_once_and_series_reads_them(database: Database) -> None:
    from sqlalchemy import func, select

    from bot.usage.models import UsageHour, UsageMinute
    from bot.usage.retention import roll_up

    key = add_key(database, "k")
    old = NOW - timedelta(days=20)
    lines = [
        UsageLine(key, old + i * M, requests=i + 1, input_tokens=2, status={"429": 1}) for i in range(90)
    ]
    lines.append(UsageLine(key, NOW, requests=5))
    record_lines(database, lines, source="ingest")
    record_buckets(database, [UsageLine(key, old, requests=100)], source="openai")
    with database.session() as session:
        before = series(session, [key], old, old + 120 * M).values

    assert roll_up(database, NOW, retention_days=14) == 91
    assert roll_up(database, NOW, retention_days=14) == 0  # twice: nothing moves again
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(UsageMinute)) == 1
        assert session.scalar(select(func.sum(UsageHour.requests))) == sum(range(1, 91)) + 100
        after = series(session, [key], old, old + 120 * M).values
        assert series(session, [key], NOW, NOW + M).values["requests"].tolist() == [[5.0]]
    for metric in METRICS:  # totals are preserved; each hour is spread evenly over its minutes
        assert after[metric].sum() == pytest.approx(before[metric].sum())
    first_hour = sum(range(1, 61)) + 100
    assert after["requests"][0, 0] == pytest.approx(first_hour / 60)
    assert after["status_429"][0, 0] == pytest.approx(1.0)


def test_a_late_minute_for_a_rolled_up_hour_is_added_to_it(database: Database) -> None:
    from bot.usage.retention import roll_up

    key = add_key(database, "k")
    old = NOW - timedelta(days=20)
    record_lines(database, [UsageLine(key, old, requests=6)], source="import")
    roll_up(database, NOW, retention_days=14)
    record_lines(database, [UsageLine(key, old + 5 * M, requests=54)], source="import")
    roll_up(database, NOW, retention_days=14)
    with database.session() as session:
        assert series(session, [key], old, old + 60 * M).values["requests"].sum() == pytest.approx(60.0)
