"""Batched writes of usage rows: lines are folded per (key, minute) in memory, then upserted in chunks.

Additive writes (`ingest`, `import`) add counters with `SET n = n + excluded.n`; bucket writes (the
OpenAI poller) replace the row, so a re-read bucket never counts twice. `distinct_*` take the larger of
the stored and the new value in both cases: the exact number of distinct addresses in a minute would
need the address sets, so across separate writes it is a lower bound (exact within one write).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.usage.models import COUNTERS, DISTINCTS, UsageHour, UsageMinute
from bot.usage.types import UsageLine, floor_minute, status_class

CHUNK_ROWS = 1000
"""Rows per executemany call (the statement is compiled once; the driver batches the rows)."""


@functools.lru_cache(maxsize=1024)
def _column(code: str) -> str:
    """Status code → its counter column, memoised (fold runs once per line)."""
    return f"status_{status_class(code)}"


@dataclass
class Tally:
    """One (key, minute)'s counters while a batch is folded."""

    counters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    ips: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)

    def add(self, line: UsageLine) -> None:
        c = self.counters
        c["requests"] += line.requests
        c["input_tokens"] += line.input_tokens
        c["output_tokens"] += line.output_tokens
        c["cost_usd"] += line.cost_usd
        for code, count in line.status.items():
            c[_column(code)] += count
        if line.source_ip is not None:
            self.ips.add(line.source_ip)
        if line.model is not None:
            self.models.add(line.model)


def fold(lines: Iterable[UsageLine]) -> dict[tuple[int, datetime], Tally]:
    tallies: dict[tuple[int, datetime], Tally] = {}
    for line in lines:
        minute = line.minute
        slot = (line.key_id, minute if not (minute.second or minute.microsecond) else floor_minute(minute))
        tally = tallies.get(slot)
        if tally is None:
            tally = tallies[slot] = Tally()
        tally.add(line)
    return tallies


def minute_rows(tallies: dict[tuple[int, datetime], Tally], source: str) -> list[dict[str, Any]]:
    return [
        {
            "key_id": key_id,
            "minute": minute,
            "source": source,
            **{name: (float(v) if name == "cost_usd" else int(v)) for name, v in t.counters.items()},
            "distinct_ips": len(t.ips),
            "distinct_models": len(t.models),
        }
        for (key_id, minute), t in sorted(tallies.items(), key=lambda item: item[0])
    ]  # one lock order for every writer: two replicas upserting the same rows wait, never deadlock


def chunks(rows: Sequence[dict[str, Any]], size: int = CHUNK_ROWS) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _insert(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"keybot runs on SQLite or PostgreSQL, not {dialect}")


def _larger(stored: Any, new: Any) -> Any:
    return case((new > stored, new), else_=stored)


def upsert_series(
    session: Session, model: type[UsageMinute] | type[UsageHour], rows: Sequence[dict[str, Any]], *, add: bool
) -> int:
    """Write `rows` into the minute or hour table; `add` sums into existing rows, else replaces them."""
    if not rows:
        return 0
    table: Table = model.__table__  # type: ignore[assignment]
    slot = "minute" if model is UsageMinute else "hour"
    dialect = session.get_bind().dialect.name
    stmt = _insert(dialect, table)
    new = stmt.excluded
    updates: dict[str, Any] = {name: (table.c[name] + new[name]) if add else new[name] for name in COUNTERS}
    updates.update({name: _larger(table.c[name], new[name]) for name in DISTINCTS})
    upsert = stmt.on_conflict_do_update(index_elements=["key_id", slot, "source"], set_=updates)
    for chunk in chunks(rows):
        session.execute(upsert, list(chunk))  # executemany: compiled once, sent in batches
    return len(rows)


def upsert_sightings(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert new sightings; widen `first_seen`/`last_seen` of known ones (a backfill may be older)."""
    from bot.usage.models import UsageSighting

    table: Table = UsageSighting.__table__  # type: ignore[assignment]
    dialect = session.get_bind().dialect.name
    stmt = _insert(dialect, table)
    new = stmt.excluded
    upsert = stmt.on_conflict_do_update(
        index_elements=["key_id", "kind", "value"],
        set_={
            "first_seen": case(
                (new.first_seen < table.c.first_seen, new.first_seen), else_=table.c.first_seen
            ),
            "last_seen": _larger(table.c.last_seen, new.last_seen),
        },
    )
    for chunk in chunks(rows):
        session.execute(upsert, list(chunk))
