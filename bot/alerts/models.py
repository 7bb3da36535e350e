"""Alert tables: one row per key episode, and each key's streaming detector state per metric."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.alerts.types import AlertState, PageStep
from bot.db.base import Base, utcnow

ACTIVE_SQL = "state IN ('open', 'acknowledged')"


def _enum(kind: type[AlertState] | type[PageStep]) -> Enum:
    return Enum(kind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Alert(Base):
    """One episode of anomalous traffic on a key, from open to resolved or false positive.

    `version` goes up at every change of state (the decisions are bound to it); escalation moves `step`
    and `next_step_at` (the durable deadline the clock wakes on) without touching it, so a page already
    shown stays actionable. `paged` lists everyone paged so far, who hear about the acknowledgement.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_active_key",
            "key_id",
            unique=True,
            sqlite_where=text(ACTIVE_SQL),
            postgresql_where=text(ACTIVE_SQL),
        ),
        Index("ix_alerts_key_opened", "key_id", "opened_at"),
        Index("ix_alerts_next_step_at", "next_step_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="CASCADE"))
    state: Mapped[AlertState] = mapped_column(_enum(AlertState), default=AlertState.OPEN)
    version: Mapped[int] = mapped_column(Integer, default=1)
    signals: Mapped[list[str]] = mapped_column(JSON, default=list)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    observed: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    baseline: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_signal_at: Mapped[datetime] = mapped_column(default=utcnow)
    acked_at: Mapped[datetime | None] = mapped_column()
    acked_by: Mapped[str | None] = mapped_column(String(120))
    closed_at: Mapped[datetime | None] = mapped_column()
    closed_by: Mapped[str | None] = mapped_column(String(120))
    step: Mapped[PageStep] = mapped_column(_enum(PageStep), default=PageStep.OWNER)
    next_step_at: Mapped[datetime | None] = mapped_column()
    paged: Mapped[list[str]] = mapped_column(JSON, default=list)
    pattern: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    run_id: Mapped[str | None] = mapped_column(String(40))
    pagerduty_key: Mapped[str] = mapped_column(String(64))
    pagerduty_sent: Mapped[str | None] = mapped_column(String(16))
    pagerduty_attempts: Mapped[int] = mapped_column(Integer, default=0)
    pagerduty_retry_at: Mapped[datetime | None] = mapped_column()


class DetectorState(Base):
    """One key and metric's fixed-size detector blob, and the last minute folded into it.

    `absorb_pending` is the durable "Expected" feedback: the detection job applies it on its next run.
    """

    __tablename__ = "detector_states"

    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="CASCADE"), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    blob: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_minute: Mapped[datetime | None] = mapped_column()
    absorb_pending: Mapped[bool] = mapped_column(default=False, server_default=false())
