"""What the Slack surface must remember across replicas: events already handled, and where each run's
live progress message lives."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, utcnow


class SlackEvent(Base):
    """Slack retries an event up to three times; a row here means it was already handled."""

    __tablename__ = "slack_events"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RunMessage(Base):
    """The incident header (thread parent) and the one progress message that is updated in place."""

    __tablename__ = "run_messages"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    header_ts: Mapped[str | None] = mapped_column(String(32))
    progress_ts: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
