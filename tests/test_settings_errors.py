"""Every domain's settings report a bad variable the way `bot.config` does: one line, its env name, and
the offending input only when the setting is not a secret."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from bot.alerts.settings import AlertSettings, alert_settings
from bot.config import ConfigError, describe_validation_error
from bot.postmortems.settings import postmortem_settings
from bot.reminders.settings import load_reminder_settings
from bot.usage.settings import UsageSettings, usage_settings

BAD_VALUES: list[tuple[Callable[[], BaseSettings], dict[str, str], str]] = [
    (
        alert_settings,
        {"KEYBOT_ALERT_COOLDOWN_MINUTES": "-3"},
        "KEYBOT_ALERT_COOLDOWN_MINUTES: Input should be greater than or equal to 0 (got '-3')",
    ),
    (
        postmortem_settings,
        {"KEYBOT_DIGEST_TIME": "someday", "KEYBOT_LLM_TIMEOUT_SECONDS": "0"},
        "KEYBOT_LLM_TIMEOUT_SECONDS: Input should be greater than 0 (got '0'); "
        "KEYBOT_DIGEST_TIME: expected a weekday and a time like `mon 09:00` (got 'someday')",
    ),
    (
        load_reminder_settings,
        {"KEYBOT_REMINDER_TIMEZONE": "Mars/Olympus"},
        "KEYBOT_REMINDER_TIMEZONE: 'Mars/Olympus' is not an IANA timezone like Europe/Paris "
        "(got 'Mars/Olympus')",
    ),
    (
        usage_settings,
        {"KEYBOT_INGEST_MAX_BYTES": "12"},
        "KEYBOT_INGEST_MAX_BYTES: Input should be greater than or equal to 1024 (got '12')",
    ),
]


@pytest.mark.parametrize(("load", "environment", "expected"), BAD_VALUES)
def test_a_bad_value_is_one_line_naming_its_variable_and_input(
    monkeypatch: pytest.MonkeyPatch,
    load: Callable[[], BaseSettings],
    environment: dict[str, str],
    expected: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load()
    assert str(caught.value) == "invalid configuration: " + expected


@pytest.mark.parametrize(
    ("model", "field", "variable"),
    [
        (UsageSettings, "ingest_token", "KEYBOT_INGEST_TOKEN"),
        (UsageSettings, "ingest_hmac_secret", "KEYBOT_INGEST_HMAC_SECRET"),
        (AlertSettings, "pagerduty_routing_key", "KEYBOT_PAGERDUTY_ROUTING_KEY"),
    ],
)
def test_a_bad_secret_is_named_but_never_shown(model: type[BaseSettings], field: str, variable: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model(**{field: 987654321})
    message = describe_validation_error(caught.value, model)
    assert message.startswith(f"{variable}: ")
    assert "987654321" not in message
