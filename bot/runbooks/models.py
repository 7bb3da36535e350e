"""Runs, their steps and per-key locks. Every state a run can be in is a row, never process memory."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.base import Base, utcnow


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    WAITING_MANUAL = "waiting_manual"
    WAITING = "waiting"  # for people or time: holds no thread and no lease; the clock wakes it at wake_at
    NEEDS_ATTENTION = "needs_attention"
    SUCCEEDED = "succeeded"
    FINISHED_WITH_EXCEPTIONS = "finished_with_exceptions"  # a guarantee is missing: see the run's steps
    ABORTED = "aborted"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FINISHED_WITH_EXCEPTIONS, RunStatus.ABORTED)


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    WAITING_MANUAL = "waiting_manual"
    WAITING = "waiting"
    NEEDS_ATTENTION = "needs_attention"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"

    @property
    def done(self) -> bool:
        return self in (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    runbook: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="RESTRICT"), index=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus), default=RunStatus.RUNNING, index=True)
    initiated_by: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(Text, default="")
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    attention: Mapped[str | None] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The step definitions the run started with (written once): editing the YAML never changes a run in
    flight, not even its approval rules."""
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped whenever the run's status changes or a person decides; decisions name the version they saw."""
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None] = mapped_column(index=True)
    wake_at: Mapped[datetime | None] = mapped_column(index=True)
    """When a waiting run is due to look again (its deadline or its next check); None unless waiting."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    slack_team_id: Mapped[str | None] = mapped_column(String(32))
    """The Slack workspace whose request started the run (OAuth mode): later work on it, by any process,
    speaks with that workspace's installation. None in token mode and for runs the CLI started."""
    slack_enterprise_id: Mapped[str | None] = mapped_column(String(32))

    steps: Mapped[list[RunStep]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="RunStep.position", lazy="selectin"
    )

    def step(self, name: str) -> RunStep:
        return next(s for s in self.steps if s.name == name)


class RunStep(Base):
    __tablename__ = "run_steps"
    __table_args__ = (UniqueConstraint("run_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(80))
    status: Mapped[StepStatus] = mapped_column(_enum(StepStatus), default=StepStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    skip_reason: Mapped[str | None] = mapped_column(Text)
    approved_by: Mapped[str | None] = mapped_column(String(120))
    done_by: Mapped[str | None] = mapped_column(String(120))
    output: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    run: Mapped[Run] = relationship(back_populates="steps")

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class KeyLock(Base):
    """At most one active run per key: the primary key is the key id."""

    __tablename__ = "key_locks"

    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    holder: Mapped[str] = mapped_column(String(120))
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
