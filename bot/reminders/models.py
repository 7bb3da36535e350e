"""Reminder tables: snoozes, the key's append-only timeline, and one row per team and local reminder day."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, utcnow


class KeySnooze(Base):
    """A key hidden from reminders until `until`; those since the key's last rotation count "in a row"."""

    __tablename__ = "key_snoozes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="CASCADE"), index=True)
    until: Mapped[datetime] = mapped_column()
    reason: Mapped[str] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class KeyEvent(Base):
    """The key's timeline: snoozes, rotations marked by hand, reminders and escalations. Append-only."""

    __tablename__ = "key_events"
    __table_args__ = (Index("ix_key_events_key_at", "key_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReminderDay(Base):
    """One row per team and local date once its slot was handled: the claim that makes it happen once.

    `team` is the team's name, or `*` for keys without a team. `notification_id` is null when nothing
    was due; `channel` and `ts` are the posted message, so it can be edited in place.
    """

    __tablename__ = "reminder_days"
    __table_args__ = (UniqueConstraint("team", "local_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team: Mapped[str] = mapped_column(String(120))
    local_date: Mapped[date] = mapped_column(Date)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id", ondelete="SET NULL"))
    late: Mapped[bool] = mapped_column(default=False)
    channel: Mapped[str | None] = mapped_column(String(64))
    ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
