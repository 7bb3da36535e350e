"""Alert settings, read from the environment like `bot.reminders.settings`, kept with their domain."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.alerts.chain import DEFAULT_ESCALATION, Chain, parse_chain
from bot.config import read_settings


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


def parse_thresholds(value: str) -> dict[str, float]:
    """`production=0.95,staging=0.99` → {"production": 0.95, "staging": 0.99}; ValueError when malformed."""
    found: dict[str, float] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        env, sep, number = part.partition("=")
        try:
            score = float(number)
        except ValueError:
            score = -1.0
        if not sep or not env.strip() or not 0.0 < score <= 1.0:
            raise ValueError(
                "expected environment=score pairs like production=0.95,staging=0.99 (0 < score <= 1)"
            )
        found[env.strip()] = score
    return found


class AlertSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    threshold: float = Field(0.98, gt=0.0, le=1.0, validation_alias=_env("KEYBOT_ALERT_THRESHOLD"))
    thresholds: str = Field("", validation_alias=_env("KEYBOT_ALERT_THRESHOLDS"))
    escalation: str = Field(DEFAULT_ESCALATION, validation_alias=_env("KEYBOT_ALERT_ESCALATION"))
    cooldown_minutes: int = Field(60, ge=0, le=10080, validation_alias=_env("KEYBOT_ALERT_COOLDOWN_MINUTES"))
    reopen_ratio: float = Field(10.0, ge=1.0, validation_alias=_env("KEYBOT_ALERT_REOPEN_RATIO"))
    quiet_minutes: int = Field(60, ge=1, le=10080, validation_alias=_env("KEYBOT_ALERT_QUIET_MINUTES"))
    expected_days: int = Field(7, ge=0, le=365, validation_alias=_env("KEYBOT_ALERT_EXPECTED_DAYS"))
    catchup_minutes: int = Field(360, ge=1, le=10080, validation_alias=_env("KEYBOT_ALERT_CATCHUP_MINUTES"))
    detect_every_seconds: float = Field(60.0, ge=5.0, validation_alias=_env("KEYBOT_ALERT_DETECT_SECONDS"))
    pagerduty_routing_key: SecretStr | None = Field(
        None, validation_alias=_env("KEYBOT_PAGERDUTY_ROUTING_KEY")
    )
    pagerduty_url: str = Field("https://events.pagerduty.com", validation_alias=_env("KEYBOT_PAGERDUTY_URL"))

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: str) -> str:
        parse_thresholds(value)
        return value

    @field_validator("escalation")
    @classmethod
    def _escalation(cls, value: str) -> str:
        parse_chain(value)
        return value

    @field_validator("pagerduty_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http(s) URL like https://events.pagerduty.com")
        return value.rstrip("/")

    def threshold_for(self, environment: str) -> float:
        """The paging threshold of an environment: its own, else KEYBOT_ALERT_THRESHOLD."""
        return parse_thresholds(self.thresholds).get(environment, self.threshold)

    def chain(self, team_escalation: str | None) -> Chain:
        """The team's chain, else the global default (a stored chain that no longer parses: the default)."""
        if team_escalation is not None:
            try:
                return parse_chain(team_escalation)
            except ValueError:
                pass
        return parse_chain(self.escalation)


def alert_settings() -> AlertSettings:
    """Read each time (cheap), so a changed environment is seen by the next tick; one line per bad value."""
    return read_settings(AlertSettings)
