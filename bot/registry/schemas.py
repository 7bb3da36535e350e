"""Validated shapes of registry records as they arrive from YAML or CSV files."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
SLACK_CHANNEL = re.compile(r"^([CGD][A-Z0-9]{2,20}|#[a-z0-9][a-z0-9._-]{0,79})$")
PROVIDERS = ("openai", "vault", "manual")
ENVIRONMENTS = ("production", "staging", "development", "sandbox")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _slack_user(value: str) -> str:
    if not SLACK_USER.match(value):
        raise ValueError(f"{value[:40]!r} is not a Slack user id (like U024BE7LH)")
    return value


class TeamRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    channel: str | None = None
    manager: str | None = None

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not SLACK_CHANNEL.match(value):
            raise ValueError(f"{value[:40]!r} is not a Slack channel id (like C024BE91L) or #channel-name")
        return value

    @field_validator("manager")
    @classmethod
    def _manager(cls, value: str | None) -> str | None:
        return None if value is None else _slack_user(value)


class ConsumerRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    contact: str | None = None
    redeploy_hook: str | None = Field(None, max_length=500)

    @field_validator("contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        return None if value is None else _slack_user(value)


class KeyRecord(BaseModel):
    """One key. `secret` is fingerprinted on import and then dropped; it is never stored or exported."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    provider: str = "openai"
    provider_key_id: str | None = Field(None, max_length=200)
    project: str | None = Field(None, max_length=200)
    environment: str = "production"
    vault_path: str | None = Field(None, max_length=500)
    redacted: str | None = None
    fingerprint: str | None = None
    secret: SecretStr | None = None
    team: str | None = Field(None, max_length=120)
    owners: list[str] = Field(default_factory=list)
    backups: list[str] = Field(default_factory=list)
    consumers: list[ConsumerRecord] = Field(default_factory=list)
    rotation_days: int | None = Field(None, ge=1, le=3650)
    last_rotated: datetime | None = None
    status: str = "active"
    tags: list[str] = Field(default_factory=list)
    description: str | None = Field(None, max_length=2000)

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"expected one of {', '.join(PROVIDERS)}")
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        if value not in ENVIRONMENTS:
            raise ValueError(f"expected one of {', '.join(ENVIRONMENTS)}")
        return value

    @field_validator("status")
    @classmethod
    def _status(cls, value: str) -> str:
        allowed = ("active", "rotating", "compromised", "revoked")
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    @field_validator("consumers", mode="before")
    @classmethod
    def _consumer_names(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("owners", "backups")
    @classmethod
    def _users(cls, values: list[str]) -> list[str]:
        return [_slack_user(v.strip()) for v in values]

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("expected 64 lowercase hex characters (an HMAC-SHA256 exported by keybot)")
        return value

    @field_validator("vault_path")
    @classmethod
    def _vault_path(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+", value):
            raise ValueError("expected a KV path like secret/team/service (mount/path, no spaces)")
        return value

    @field_validator("last_rotated", mode="before")
    @classmethod
    def _date_or_datetime(cls, value: object) -> object:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return value.strip() + "T00:00:00+00:00"
        return value

    @field_validator("last_rotated")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teams: list[TeamRecord] = Field(default_factory=list)
    keys: list[KeyRecord] = Field(default_factory=list)
