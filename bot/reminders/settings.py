"""Reminder settings, read from the environment like `bot.config.Settings` but kept with their domain.

Kept apart so the reminders domain adds its variables without widening the shared settings class; an
invalid value is one line naming the variable, as everywhere else.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config import get_settings, read_settings

DEFAULT_ROTATION_DAYS = "production=30,default=60"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


def parse_rotation_days(value: str) -> dict[str, int]:
    """`production=30,default=60` → {"production": 30, "default": 60}; raises ValueError when malformed."""
    days: dict[str, int] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        env, sep, number = part.partition("=")
        if not sep or not env.strip() or not number.strip().isdigit():
            raise ValueError("expected environment=days pairs like production=30,default=60")
        days[env.strip()] = int(number)
    if any(not 1 <= d <= 3650 for d in days.values()):
        raise ValueError("each rotation period must be between 1 and 3650 days")
    days.setdefault("default", 60)
    return days


def check_timezone(value: str) -> str:
    """An IANA timezone name zoneinfo knows (`Europe/Paris`), else ValueError."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value[:60]!r} is not an IANA timezone like Europe/Paris") from None
    return value


class ReminderSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    rotation_days: str = Field(DEFAULT_ROTATION_DAYS, validation_alias=_env("KEYBOT_ROTATION_DAYS"))
    horizon_days: int = Field(7, ge=0, le=365, validation_alias=_env("KEYBOT_REMINDER_HORIZON_DAYS"))
    fallback_channel: str | None = Field(None, validation_alias=_env("KEYBOT_REMINDER_FALLBACK_CHANNEL"))
    timezone: str = Field("UTC", validation_alias=_env("KEYBOT_REMINDER_TIMEZONE"))
    escalate_after_days: int = Field(14, ge=1, le=3650, validation_alias=_env("KEYBOT_ESCALATE_AFTER_DAYS"))
    max_snooze_days: int = Field(30, ge=1, le=365, validation_alias=_env("KEYBOT_MAX_SNOOZE_DAYS"))

    @field_validator("rotation_days")
    @classmethod
    def _rotation_days(cls, value: str) -> str:
        parse_rotation_days(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)

    def rotation_defaults(self) -> dict[str, int]:
        """Days between rotations per environment; `default` for every other environment."""
        return parse_rotation_days(self.rotation_days)

    def channel_for_teamless(self) -> str | None:
        """Where keys without a team are reminded: the fallback channel, else the security channel."""
        return self.fallback_channel or get_settings().security_channel


def load_reminder_settings() -> ReminderSettings:
    return read_settings(ReminderSettings)


def reminder_settings() -> ReminderSettings:
    """Read each time (it is cheap), so a changed environment is seen by the next clock tick and test."""
    return load_reminder_settings()
