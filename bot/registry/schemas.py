"""Validated shapes of registry records as they arrive from YAML or CSV files."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
SLACK_CHANNEL = re.compile(r"^([CGD][A-Z0-9]{2,20}|#[a-z0-9][a-z0-9._-]{0,79})$")
SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,20}$")
PROVIDERS = ("openai", "vault", "manual")
ENVIRONMENTS = ("production", "staging", "development", "sandbox")

# Characters that make a name render as something else in Slack or a terminal (Trojan Source, CVE-2021-42574):
# C0/C1 controls, bidirectional embeddings/overrides/isolates/marks, zero-width characters, line separators.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
LINE_BREAKS = re.compile(r"[\t\n\r]")
BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff]")


def unsafe_characters(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` cannot be shown as typed, or None: what people read must be what is stored."""
    if CONTROL.search(value) or (not multiline and LINE_BREAKS.search(value)):
        return "contains control characters"
    if BIDI.search(value):
        return "contains bidirectional-override characters"
    if ZERO_WIDTH.search(value):
        return "contains zero-width characters"
    return None


def _plain(value: str) -> str:
    problem = unsafe_characters(value)
    if problem:
        raise ValueError(problem)
    return value


def _plain_paragraph(value: str) -> str:
    problem = unsafe_characters(value, multiline=True)
    if problem:
        raise ValueError(problem)
    return value


Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_plain)
]
Plain = Annotated[str, AfterValidator(_plain)]
Paragraph = Annotated[str, AfterValidator(_plain_paragraph)]


def _slack_user(value: str) -> str:
    if not SLACK_USER.match(value):
        raise ValueError(f"{value[:40]!r} is not a Slack user id (like U024BE7LH)")
    return value


class TeamRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    channel: Plain | None = None
    manager: Plain | None = None
    rotation_days: int | None = Field(None, ge=1, le=3650)
    timezone: Plain | None = Field(None, max_length=64)  # rotation reminders: IANA zone, HH:MM, weekdays
    reminder_time: Plain | None = None
    reminder_days: Plain | None = Field(None, max_length=32)
    escalation: Plain | None = Field(None, max_length=200)  # anomaly alerts: backup:15,channel:30,manager:60
    oncall_group: Plain | None = Field(None, max_length=64)  # anomaly alerts: the on-call Slack user group

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == "*":
            raise ValueError("'*' is reserved: it names the keys without a team in rotation reminders")
        return value

    @field_validator("timezone", "reminder_time", "reminder_days")
    @classmethod
    def _schedule(cls, value: str | None, info: ValidationInfo) -> str | None:
        from bot.reminders.schedule import check_team_schedule

        check_team_schedule(**{info.field_name or "": value})
        return value

    @field_validator("escalation")
    @classmethod
    def _escalation(cls, value: str | None) -> str | None:
        from bot.alerts.chain import check_chain

        return check_chain(value)

    @field_validator("oncall_group")
    @classmethod
    def _oncall_group(cls, value: str | None) -> str | None:
        if value is not None and not SLACK_GROUP.match(value):
            raise ValueError(f"{value[:40]!r} is not a Slack user group id (like S0614TZR7)")
        return value

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
    contact: Plain | None = None
    redeploy_hook: Plain | None = Field(None, max_length=500)

    @field_validator("contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        return None if value is None else _slack_user(value)


class KeyRecord(BaseModel):
    """One key. `secret` is fingerprinted on import and then dropped; it is never stored or exported."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    provider: str = "openai"
    provider_key_id: Plain | None = Field(None, max_length=200)
    project: Plain | None = Field(None, max_length=200)
    environment: str = "production"
    vault_path: Plain | None = Field(None, max_length=500)
    redacted: Plain | None = None
    fingerprint: str | None = None
    secret: SecretStr | None = None
    team: Plain | None = Field(None, max_length=120)
    owners: list[str] = Field(default_factory=list)
    backups: list[str] = Field(default_factory=list)
    consumers: list[ConsumerRecord] = Field(default_factory=list)
    rotation_days: int | None = Field(None, ge=1, le=3650)
    last_rotated: datetime | None = None
    status: str = "active"
    tags: list[Plain] = Field(default_factory=list)
    description: Paragraph | None = Field(None, max_length=2000)

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
