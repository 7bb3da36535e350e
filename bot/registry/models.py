"""Registry tables. A key row never holds the secret: only its keyed fingerprint and redacted form."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.base import Base, utcnow


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    ROTATING = "rotating"
    COMPROMISED = "compromised"
    REVOKED = "revoked"


class OwnerRole(enum.StrEnum):
    OWNER = "owner"
    BACKUP = "backup"


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    slack_channel: Mapped[str | None] = mapped_column(String(64))
    manager_slack_id: Mapped[str | None] = mapped_column(String(64))
    rotation_days: Mapped[int | None] = mapped_column(Integer)  # the team's default (bot/reminders)
    timezone: Mapped[str | None] = mapped_column(String(64))  # IANA; null: KEYBOT_REMINDER_TIMEZONE
    reminder_time: Mapped[str | None] = mapped_column(String(5))  # HH:MM local; null: 09:30
    reminder_days: Mapped[str | None] = mapped_column(String(32))  # mon,tue,...; null: weekdays
    escalation: Mapped[str | None] = mapped_column(
        String(200)
    )  # backup:15,...; null: KEYBOT_ALERT_ESCALATION
    oncall_group: Mapped[str | None] = mapped_column(String(64))  # Slack user group id (S...)

    keys: Mapped[list[Key]] = relationship(back_populates="team")


def redacted_form_of(family: str | None, last4: str | None) -> str | None:
    """A registry row's redacted secret (`sk-proj...Xy9Q`), from its two stored parts."""
    if family is None or last4 is None:
        return None
    return f"{family}...{last4}"


class Key(Base):
    __tablename__ = "keys"
    __table_args__ = (
        Index("ix_keys_last4_family", "secret_last4", "secret_family"),
        Index("ix_keys_provider_key_id", "provider_key_id"),
        Index("ix_keys_team_env", "team_id", "environment"),
        Index("ix_keys_name_lower", func.lower(text("name"))),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_key_id: Mapped[str | None] = mapped_column(String(200))
    project: Mapped[str | None] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(32), default="production")
    vault_path: Mapped[str | None] = mapped_column(String(500))
    secret_family: Mapped[str | None] = mapped_column(String(32))
    secret_last4: Mapped[str | None] = mapped_column(String(8))
    fingerprint: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[KeyStatus] = mapped_column(
        Enum(KeyStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=KeyStatus.ACTIVE,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_rotated_at: Mapped[datetime | None] = mapped_column()
    rotation_days: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str | None] = mapped_column(Text)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    drill: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A drill's sandbox copy: never listed, exported, suggested or due; retired when its drill ends."""

    team: Mapped[Team | None] = relationship(back_populates="keys", lazy="joined")
    owners: Mapped[list[KeyOwner]] = relationship(
        back_populates="key", cascade="all, delete-orphan", lazy="selectin", order_by="KeyOwner.id"
    )
    consumers: Mapped[list[Consumer]] = relationship(
        back_populates="key", cascade="all, delete-orphan", lazy="selectin", order_by="Consumer.id"
    )

    @property
    def redacted(self) -> str | None:
        return redacted_form_of(self.secret_family, self.secret_last4)

    def owner_ids(self, role: OwnerRole = OwnerRole.OWNER) -> list[str]:
        return [o.slack_user_id for o in self.owners if o.role == role]

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "provider": self.provider, "env": self.environment}


class KeyOwner(Base):
    __tablename__ = "key_owners"
    __table_args__ = (UniqueConstraint("key_id", "slack_user_id", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="CASCADE"), index=True)
    slack_user_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[OwnerRole] = mapped_column(
        Enum(OwnerRole, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )

    key: Mapped[Key] = relationship(back_populates="owners")


class Consumer(Base):
    __tablename__ = "consumers"
    __table_args__ = (UniqueConstraint("key_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str | None] = mapped_column(String(64))
    redeploy_hook: Mapped[str | None] = mapped_column(String(500))

    key: Mapped[Key] = relationship(back_populates="consumers")


class Setting(Base):
    """Small persistent facts, e.g. the check value that proves fingerprints use the configured key."""

    __tablename__ = "keybot_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
