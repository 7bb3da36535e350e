"""Usage settings, read from the environment like `bot.config.Settings` but kept with their domain.

`KEYBOT_INGEST_TOKEN` and `KEYBOT_INGEST_HMAC_SECRET` switch `POST /ingest/usage` on; with neither set the
endpoint answers 404 saying it is disabled. An invalid value is one line naming the variable.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config import read_settings


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class UsageSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    ingest_token: SecretStr | None = Field(None, validation_alias=_env("KEYBOT_INGEST_TOKEN"))
    ingest_hmac_secret: SecretStr | None = Field(None, validation_alias=_env("KEYBOT_INGEST_HMAC_SECRET"))
    ingest_max_bytes: int = Field(
        8_000_000, ge=1024, le=256_000_000, validation_alias=_env("KEYBOT_INGEST_MAX_BYTES")
    )
    hmac_window_seconds: int = Field(300, ge=10, le=3600, validation_alias=_env("KEYBOT_INGEST_HMAC_WINDOW"))
    retention_days: int = Field(14, ge=1, le=3650, validation_alias=_env("KEYBOT_USAGE_RETENTION_DAYS"))
    backfill_hours: int = Field(24, ge=1, le=24 * 31, validation_alias=_env("KEYBOT_USAGE_BACKFILL_HOURS"))
    poll_page_limit: int = Field(1440, ge=1, le=1440, validation_alias=_env("KEYBOT_USAGE_POLL_PAGE_LIMIT"))
    learning_hours: int = Field(24, ge=0, le=24 * 90, validation_alias=_env("KEYBOT_USAGE_LEARNING_HOURS"))

    @property
    def ingest_enabled(self) -> bool:
        return self.ingest_token is not None or self.ingest_hmac_secret is not None


def usage_settings() -> UsageSettings:
    """Read each time (it is cheap), so a changed environment is seen by the next request and test."""
    return read_settings(UsageSettings)
