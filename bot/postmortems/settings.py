"""Postmortem, summary and digest settings, read from the environment and kept with their domain."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config import read_settings
from bot.reminders.settings import check_timezone

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


def parse_digest_time(value: str) -> tuple[int, int, int]:
    """`mon 09:00` → (weekday 0-6, hour, minute); ValueError when malformed."""
    day, _, clock = value.strip().lower().partition(" ")
    hour, sep, minute = clock.strip().partition(":")
    if day[:3] not in DAYS or not sep or not hour.isdigit() or not minute.isdigit():
        raise ValueError("expected a weekday and a time like `mon 09:00`")
    if not (0 <= int(hour) <= 23 and 0 <= int(minute) <= 59):
        raise ValueError("the time must be HH:MM between 00:00 and 23:59")
    return DAYS.index(day[:3]), int(hour), int(minute)


class PostmortemSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    templates_dir: Path | None = Field(None, validation_alias=_env("KEYBOT_TEMPLATES_DIR"))
    """User templates that override the built-in ones (same file names)."""
    postmortem_dir: Path | None = Field(None, validation_alias=_env("KEYBOT_POSTMORTEM_DIR"))
    """Where drafts are saved; default KEYBOT_STATE_DIR/postmortems."""
    llm: bool = Field(True, validation_alias=_env("KEYBOT_POSTMORTEM_LLM"))
    """Ask the LLM for a narrative when OPENAI_API_KEY is set."""
    llm_model: str = Field(
        "gpt-4o-mini", min_length=1, max_length=100, validation_alias=_env("KEYBOT_LLM_MODEL")
    )
    llm_timeout_seconds: float = Field(
        30.0, gt=0, le=600, validation_alias=_env("KEYBOT_LLM_TIMEOUT_SECONDS")
    )
    digest_channel: str | None = Field(None, validation_alias=_env("KEYBOT_DIGEST_CHANNEL"))
    """The managers' channel for the weekly digest; no channel, no digest."""
    digest_time: str = Field("mon 09:00", validation_alias=_env("KEYBOT_DIGEST_TIME"))
    digest_timezone: str = Field("UTC", validation_alias=_env("KEYBOT_DIGEST_TIMEZONE"))

    @field_validator("digest_time")
    @classmethod
    def _digest_time(cls, value: str) -> str:
        parse_digest_time(value)
        return value

    @field_validator("digest_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)


def postmortem_settings() -> PostmortemSettings:
    """Read each time (it is cheap): a changed environment is seen by the next job and test."""
    return read_settings(PostmortemSettings)
