"""Usage tables: per-minute rows per key and source, their hourly roll-up, sightings, the poller's cursor.

Counters are plain columns (one per status class too) so that an additive write is one
`INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n` on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, utcnow


class _Counters:
    """The additive counters shared by the minute and hour tables."""

    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    status_2xx: Mapped[int] = mapped_column(BigInteger, default=0)
    status_401: Mapped[int] = mapped_column(BigInteger, default=0)
    status_403: Mapped[int] = mapped_column(BigInteger, default=0)
    status_429: Mapped[int] = mapped_column(BigInteger, default=0)
    status_4xx: Mapped[int] = mapped_column(BigInteger, default=0)
    status_5xx: Mapped[int] = mapped_column(BigInteger, default=0)
    status_other: Mapped[int] = mapped_column(BigInteger, default=0)
    distinct_ips: Mapped[int] = mapped_column(Integer, default=0)
    distinct_models: Mapped[int] = mapped_column(Integer, default=0)


COUNTERS: tuple[str, ...] = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "status_2xx",
    "status_401",
    "status_403",
    "status_429",
    "status_4xx",
    "status_5xx",
    "status_other",
)
"""Summed when rows meet; `distinct_*` take the larger value instead (see `bot.usage.store`)."""
DISTINCTS: tuple[str, ...] = ("distinct_ips", "distinct_models")


class UsageMinute(_Counters, Base):
    """One key's traffic in one UTC minute, from one source (`openai`, `ingest`, `import`)."""

    __tablename__ = "usage_minutes"
    __table_args__ = (
        UniqueConstraint("key_id", "minute", "source"),
        Index("ix_usage_minutes_minute", "minute"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="CASCADE"))
    minute: Mapped[datetime] = mapped_column()
    source: Mapped[str] = mapped_column(String(32))


class UsageHour(_Counters, Base):
    """Minutes past retention, summed per UTC hour (`distinct_*`: the largest minute's value)."""

    __tablename__ = "usage_hours"
    __table_args__ = (
        UniqueConstraint("key_id", "hour", "source"),
        Index("ix_usage_hours_hour", "hour"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="CASCADE"))
    hour: Mapped[datetime] = mapped_column()
    source: Mapped[str] = mapped_column(String(32))


class UsageSighting(Base):
    """A source address or model seen on a key: when first and last (traffic time, not write time)."""

    __tablename__ = "usage_sightings"
    __table_args__ = (
        UniqueConstraint("key_id", "kind", "value"),
        Index("ix_usage_sightings_first_seen", "first_seen"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column()
    last_seen: Mapped[datetime] = mapped_column()
    baseline: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Seen while the key's history of this kind was being learnt: normal traffic, not a novelty."""


class UsageCursor(Base):
    """Where a poller has read up to (exclusive), so a restarted clock resumes instead of starting over."""

    __tablename__ = "usage_cursors"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[datetime | None] = mapped_column()
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
