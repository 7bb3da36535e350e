"""Settings read from the environment and `.env`, with the variable names the README documents.

Errors are turned into one line per bad variable so an operator at 3 a.m. sees what to fix, and secret
settings never appear in those lines.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable, never a secret value."""


def _slack_user(value: str) -> bool:
    return value[:1] in ("U", "W") and value.isalnum() and value.isupper()


def _cli_identity(value: str) -> bool:
    """`cli:<os user>@<host>`, what the CLI acts as (bot/cli/identity.py)."""
    return re.fullmatch(r"cli:[A-Za-z0-9._-]{1,64}@[A-Za-z0-9.-]{1,253}", value) is not None


def _parse_deadlines(value: str) -> dict[str, float]:
    pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
    return {env.strip(): float(minutes) for env, minutes in pairs}


BUILTIN_RUNBOOKS = Path(__file__).resolve().parent / "builtin_runbooks"


def default_runbooks_dir() -> Path:
    """`./runbooks` when the current directory has runbooks (a checkout, or an operator's own set); else
    the runbooks shipped inside the package, so an installed keybot works from any directory."""
    local = Path("runbooks")
    if any(local.glob("*.yaml")):
        return local
    return BUILTIN_RUNBOOKS


# slack-manifest.yaml's bot scopes: what an OAuth installation asks for unless SLACK_SCOPES says otherwise.
DEFAULT_SLACK_SCOPES = (
    "commands,chat:write,im:write,users:read,usergroups:read,channels:history,groups:history,files:write"
)


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    database_url: str = Field("sqlite:///keybot.db", validation_alias=_env("DATABASE_URL"))
    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(None, validation_alias=_env("SLACK_SIGNING_SECRET"))
    slack_app_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_api_url: str = Field("https://slack.com/api/", validation_alias=_env("SLACK_API_URL"))
    slack_client_id: str | None = Field(None, validation_alias=_env("SLACK_CLIENT_ID"))
    slack_client_secret: SecretStr | None = Field(None, validation_alias=_env("SLACK_CLIENT_SECRET"))
    slack_scopes: str = Field(DEFAULT_SLACK_SCOPES, validation_alias=_env("SLACK_SCOPES"))
    oauth_redirect_url: str | None = Field(None, validation_alias=_env("KEYBOT_OAUTH_REDIRECT_URL"))
    slack_default_team_id: str | None = Field(None, validation_alias=_env("SLACK_DEFAULT_TEAM_ID"))
    vault_addr: str | None = Field(None, validation_alias=_env("VAULT_ADDR"))
    vault_token: SecretStr | None = Field(None, validation_alias=_env("VAULT_TOKEN"))
    vault_role_id: str | None = Field(None, validation_alias=_env("VAULT_ROLE_ID"))
    vault_secret_id: SecretStr | None = Field(None, validation_alias=_env("VAULT_SECRET_ID"))
    openai_admin_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_ADMIN_KEY"))
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL"))
    openai_admin_base_url: str | None = Field(None, validation_alias=_env("OPENAI_ADMIN_BASE_URL"))
    fingerprint_key: SecretStr | None = Field(None, validation_alias=_env("KEYBOT_FINGERPRINT_KEY"))
    state_dir: Path = Field(Path(".keybot"), validation_alias=_env("KEYBOT_STATE_DIR"))
    runbooks_dir: Path = Field(
        default_factory=default_runbooks_dir, validation_alias=_env("KEYBOT_RUNBOOKS_DIR")
    )
    run_lease_seconds: float = Field(60.0, gt=0, le=3600, validation_alias=_env("KEYBOT_RUN_LEASE_SECONDS"))
    backoff_scale: float = Field(1.0, ge=0, le=100, validation_alias=_env("KEYBOT_BACKOFF_SCALE"))
    vault_mount: str = Field("secret", validation_alias=_env("VAULT_MOUNT"))
    revokers: str = Field("", validation_alias=_env("KEYBOT_REVOKERS"))
    revoker_group: str | None = Field(None, validation_alias=_env("KEYBOT_REVOKER_GROUP"))
    admins: str = Field("", validation_alias=_env("KEYBOT_ADMINS"))
    security_channel: str | None = Field(None, validation_alias=_env("KEYBOT_SECURITY_CHANNEL"))
    distribute_deadlines: str = Field(
        "production=60,default=30", validation_alias=_env("KEYBOT_DISTRIBUTE_DEADLINES")
    )
    quiet_minutes: float = Field(15.0, ge=0, le=24 * 60, validation_alias=_env("KEYBOT_QUIET_MINUTES"))
    wait_poll_seconds: float = Field(60.0, gt=0, le=3600, validation_alias=_env("KEYBOT_WAIT_POLL_SECONDS"))
    clock_tick_seconds: float = Field(30.0, gt=0, le=3600, validation_alias=_env("KEYBOT_CLOCK_TICK_SECONDS"))
    leak_ask_delete: bool = Field(False, validation_alias=_env("KEYBOT_LEAK_ASK_DELETE"))
    port: int = Field(3000, ge=1, le=65535, validation_alias=AliasChoices("PORT", "KEYBOT_PORT", "port"))
    log_format: str = Field("auto", validation_alias=_env("KEYBOT_LOG_FORMAT"))
    log_level: str = Field("INFO", validation_alias=_env("KEYBOT_LOG_LEVEL"))

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "sqlite+", "postgresql:", "postgresql+")):
            raise ValueError(
                "expected a SQLAlchemy URL such as sqlite:///keybot.db or postgresql+psycopg://..."
            )
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("slack_scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        scopes = [s.strip() for s in value.split(",") if s.strip()]
        if not scopes or any(re.fullmatch(r"[a-z][a-z0-9_.:-]{0,63}", s) is None for s in scopes):
            raise ValueError("expected comma-separated Slack scopes like commands,chat:write")
        return ",".join(scopes)

    def scopes(self) -> list[str]:
        """The bot scopes an OAuth installation asks for."""
        return self.slack_scopes.split(",")

    @field_validator(
        "slack_api_url", "openai_base_url", "openai_admin_base_url", "vault_addr", "oauth_redirect_url"
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("revokers", "admins")
    @classmethod
    def _user_list(cls, value: str) -> str:
        users = [u.strip() for u in value.split(",") if u.strip()]
        bad = [u for u in users if not (_slack_user(u) or _cli_identity(u))]
        if bad:
            raise ValueError(
                "expected comma-separated Slack user ids like U024BE7LH, or terminal identities like "
                "cli:alice@bastion-1"
            )
        return ",".join(users)

    @field_validator("distribute_deadlines")
    @classmethod
    def _deadlines(cls, value: str) -> str:
        try:
            parsed = _parse_deadlines(value)
        except ValueError:
            raise ValueError("expected environment=minutes pairs like production=60,default=30") from None
        if any(not 0 < minutes <= 7 * 24 * 60 for minutes in parsed.values()):
            raise ValueError("each deadline must be between 0 and 10080 minutes")
        return value

    def deadlines(self) -> dict[str, float]:
        """Minutes staged mode waits for consumers before asking the on-call, per environment."""
        return _parse_deadlines(self.distribute_deadlines)

    def user_list(self, name: str) -> list[str]:
        value: str = getattr(self, name)
        return [u for u in value.split(",") if u]

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in {"auto", "json", "console"}:
            raise ValueError("expected one of auto, json, console")
        return value

    @field_validator("fingerprint_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("expected at least 32 characters (generate one with: openssl rand -hex 32)")
        return value


def _variables(model: type[BaseSettings]) -> dict[str, str]:
    """Map every accepted spelling (field name or env variable) to its canonical env variable name."""
    names: dict[str, str] = {}
    for field, info in model.model_fields.items():
        alias = info.validation_alias
        choices = [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else [field.upper()]
        for spelling in [field, *choices]:
            names[spelling] = choices[0]
    return names


def _secret_variables(model: type[BaseSettings], names: dict[str, str]) -> set[str]:
    return {names[field] for field, info in model.model_fields.items() if "SecretStr" in str(info.annotation)}


def describe_validation_error(error: ValidationError, model: type[BaseSettings] = Settings) -> str:
    """One line per bad variable of `model`; the offending input is shown only for non-secret settings.

    Shared by every settings class (the domains keep theirs apart), so all name variables the same way.
    """
    names = _variables(model)
    secrets = _secret_variables(model, names)
    lines = []
    for item in error.errors():
        loc = str(item["loc"][0]) if item["loc"] else "?"
        name = names.get(loc, loc.upper())
        message = str(item["msg"]).removeprefix("Value error, ")
        shown = "" if name in secrets else f" (got {str(item.get('input'))[:60]!r})"
        lines.append(f"{name}: {message}{shown}")
    return "; ".join(lines)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def read_settings(model: type[SettingsT]) -> SettingsT:
    """Read `model` from the environment; a bad value is a one-line ConfigError naming its variable."""
    try:
        return model()
    except ValidationError as error:
        raise ConfigError("invalid configuration: " + describe_validation_error(error, model)) from None


def load_settings() -> Settings:
    return read_settings(Settings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
