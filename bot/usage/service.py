"""The usage series store: record traffic per key and minute, and read it back as dense arrays.

Sources: `record_lines` adds (ingest and file lines are increments), `record_buckets` replaces the
(key, minute, source) row (a poller re-reading a bucket must not count it twice). `series` sums the
sources and zero-fills missing minutes; past retention it spreads each hourly roll-up evenly.

Novelty: every source address and model is a sighting. Those first seen within the learning window
(`KEYBOT_USAGE_LEARNING_HOURS`, default 24 h) after the key's *first* sighting of that kind are marked
`baseline`: a key's first day describes its normal traffic and must not page once per address.
`sightings_since` returns only the others, i.e. the novelty signals.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from bot.db.session import Database
from bot.registry.models import Key
from bot.usage.models import UsageHour, UsageMinute, UsageSighting
from bot.usage.store import chunks, fold, minute_rows, upsert_series, upsert_sightings
from bot.usage.types import (
    METRICS,
    RecordResult,
    SeriesBlock,
    Sighting,
    SightingKind,
    UsageLine,
    floor_hour,
    floor_minute,
)

__all__ = [
    "METRICS",
    "key_sightings",
    "latest_complete_minute",
    "monitored_keys",
    "record_buckets",
    "record_lines",
    "series",
    "sightings_since",
]

MINUTE = timedelta(minutes=1)
IN_CHUNK = 900
"""Ids per `IN (...)` list (SQLite's old 999-variable limit)."""


def _learning() -> timedelta:
    from bot.usage.settings import usage_settings

    return timedelta(hours=usage_settings().learning_hours)


def record_lines(database: Database, lines: Sequence[UsageLine], *, source: str) -> RecordResult:
    """Add `lines` to their (key, minute, `source`) rows: for increments (ingest, imported files)."""
    return _record(database, lines, source, add=True)


def record_buckets(database: Database, lines: Sequence[UsageLine], *, source: str = "openai") -> RecordResult:
    """Replace the (key, minute, `source`) rows with `lines` (folded per key and minute first)."""
    return _record(database, lines, source, add=False)


def _record(database: Database, lines: Sequence[UsageLine], source: str, *, add: bool) -> RecordResult:
    if not lines:
        return RecordResult(0, 0)
    tallies = fold(lines)
    rows = minute_rows(tallies, source)
    seen: dict[tuple[int, SightingKind, str], tuple[datetime, datetime]] = {}
    for (key_id, minute), tally in tallies.items():
        kinds: tuple[tuple[SightingKind, set[str]], ...] = (("ip", tally.ips), ("model", tally.models))
        for kind, values in kinds:
            for value in values:
                slot = (key_id, kind, value)
                first, last = seen.get(slot, (minute, minute))
                seen[slot] = (min(first, minute), max(last, minute))
    learning = _learning() if seen else timedelta(0)
    with database.session() as session:
        written = upsert_series(session, UsageMinute, rows, add=add)
        new = _record_sightings(session, seen, learning) if seen else []
    return RecordResult(len(lines), written, tuple(new))


def _record_sightings(
    session: Session,
    seen: dict[tuple[int, SightingKind, str], tuple[datetime, datetime]],
    learning: timedelta,
) -> list[Sighting]:
    """Upsert the sightings; returns those that were new, each marked baseline or not."""
    key_ids = sorted({k for k, _kind, _v in seen})
    known: set[tuple[int, str, str]] = set()
    learn_from: dict[tuple[int, str], datetime] = {}
    for ids in chunks([{"id": i} for i in key_ids], IN_CHUNK):
        chunk_ids = [r["id"] for r in ids]
        for key_id, kind, first in session.execute(
            select(UsageSighting.key_id, UsageSighting.kind, func.min(UsageSighting.first_seen))
            .where(UsageSighting.key_id.in_(chunk_ids))
            .group_by(UsageSighting.key_id, UsageSighting.kind)
        ):
            learn_from[(key_id, kind)] = first
        values = sorted({v for k, _kind, v in seen if k in set(chunk_ids)})
        for vals in chunks([{"v": v} for v in values], IN_CHUNK):
            known.update(
                session.execute(
                    select(UsageSighting.key_id, UsageSighting.kind, UsageSighting.value).where(
                        UsageSighting.key_id.in_(chunk_ids), UsageSighting.value.in_([r["v"] for r in vals])
                    )
                ).all()
            )
    for (key_id, kind, _value), (first, _last) in seen.items():
        if (key_id, kind) not in learn_from or first < learn_from[(key_id, kind)]:
            learn_from[(key_id, kind)] = first
    rows: list[dict[str, Any]] = []
    new: list[Sighting] = []
    for (key_id, kind, value), (first, last) in sorted(seen.items()):
        baseline = first < learn_from[(key_id, kind)] + learning
        rows.append(
            {
                "key_id": key_id,
                "kind": kind,
                "value": value,
                "first_seen": first,
                "last_seen": last,
                "baseline": baseline,
            }
        )
        if (key_id, kind, value) not in known:
            new.append(Sighting(key_id, kind, value, first, baseline))
    upsert_sightings(session, rows)
    return new


def _minutes(start: datetime, end: datetime) -> list[datetime]:
    first, stop = floor_minute(start), floor_minute(end)
    count = max(0, int((stop - first) / MINUTE))
    return [first + i * MINUTE for i in range(count)]


def _metric_columns(model: type[UsageMinute] | type[UsageHour]) -> list[Any]:
    return [
        func.sum(model.requests),
        func.sum(model.input_tokens + model.output_tokens),
        func.sum(model.cost_usd),
        func.sum(model.status_401),
        func.sum(model.status_429),
    ]


def series(session: Session, key_ids: Sequence[int], start: datetime, end: datetime) -> SeriesBlock:
    """Every minute in [start, end) for each key, summed over sources, missing minutes 0.0."""
    ids = list(key_ids)
    minutes = _minutes(start, end)
    shape = (len(ids), len(minutes))
    values = {metric: np.zeros(shape, dtype=np.float64) for metric in METRICS}
    if not ids or not minutes:
        return SeriesBlock(ids, minutes, values)
    first, stop = minutes[0], minutes[-1] + MINUTE
    row_of = {key_id: i for i, key_id in enumerate(ids)}
    stacked = np.stack([values[m] for m in METRICS])  # (metric, key, minute)
    for part in (ids[i : i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK)):
        by_minute = session.execute(
            select(UsageMinute.key_id, UsageMinute.minute, *_metric_columns(UsageMinute))
            .where(UsageMinute.key_id.in_(part), UsageMinute.minute >= first, UsageMinute.minute < stop)
            .group_by(UsageMinute.key_id, UsageMinute.minute)
        ).all()
        for key_id, minute, *sums in by_minute:
            col = int((minute - first) / MINUTE)
            stacked[:, row_of[key_id], col] += np.asarray(sums, dtype=np.float64)
        by_hour = session.execute(
            select(UsageHour.key_id, UsageHour.hour, *_metric_columns(UsageHour))
            .where(UsageHour.key_id.in_(part), UsageHour.hour >= floor_hour(first), UsageHour.hour < stop)
            .group_by(UsageHour.key_id, UsageHour.hour)
        ).all()
        for key_id, hour, *sums in by_hour:
            lo = max(0, int((hour - first) / MINUTE))
            hi = min(len(minutes), int((hour + timedelta(hours=1) - first) / MINUTE))
            if hi > lo:
                stacked[:, row_of[key_id], lo:hi] += np.asarray(sums, dtype=np.float64)[:, None] / 60.0
    return SeriesBlock(ids, minutes, {metric: stacked[i] for i, metric in enumerate(METRICS)})


def latest_complete_minute(session: Session) -> datetime | None:
    """The newest minute any source wrote (the poller writes only minutes that have ended)."""
    return session.scalar(select(func.max(UsageMinute.minute)))


def monitored_keys(session: Session) -> list[int]:
    """Keys that have ever had usage from any source, drill copies left out."""
    used = union(select(UsageMinute.key_id), select(UsageHour.key_id)).subquery()
    return list(
        session.scalars(
            select(Key.id).where(Key.id.in_(select(used.c.key_id)), Key.drill.is_(False)).order_by(Key.id)
        )
    )


def sightings_since(session: Session, since: datetime) -> list[Sighting]:
    """Novelty signals: sightings first seen at or after `since` that are not part of a key's baseline."""
    rows = session.scalars(
        select(UsageSighting)
        .where(UsageSighting.first_seen >= since, UsageSighting.baseline.is_(False))
        .order_by(UsageSighting.first_seen, UsageSighting.id)
    )
    return [
        Sighting(r.key_id, "ip" if r.kind == "ip" else "model", r.value, r.first_seen, r.baseline)
        for r in rows
    ]


def key_sightings(session: Session, key_id: int) -> tuple[int, int]:
    """How many distinct source addresses and models were ever seen on the key."""
    counts = dict(
        session.execute(
            select(UsageSighting.kind, func.count())
            .where(UsageSighting.key_id == key_id)
            .group_by(UsageSighting.kind)
        ).all()
    )
    return counts.get("ip", 0), counts.get("model", 0)
