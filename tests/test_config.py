from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

SECRET_VALUE = "xoxb-not-a-real-token-but-secret-0000"


def test_defaults_match_the_design() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///keybot.db"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.slack_bot_token is None


def test_reads_exact_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/keybot")
    monkeypatch.setenv("SLACK_BOT_TOKEN", SECRET_VALUE)
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    monkeypatch.setenv("KEYBOT_FINGERPRINT_KEY", "k" * 40)
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1/keybot"
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == SECRET_VALUE
    assert SECRET_VALUE not in repr(settings)
    assert settings.vault_addr == "http://127.0.0.1:8200"


def test_reads_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OPENAI_BASE_URL=http://127.0.0.1:9999/v1\n")
    assert load_settings().openai_base_url == "http://127.0.0.1:9999/v1"


def test_malformed_setting_names_variable_and_expectation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/x")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "DATABASE_URL" in message
    assert "sqlite:///keybot.db" in message
    assert "\n" not in message


def test_secret_setting_error_never_shows_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    short_secret = "hunter2-short"
    monkeypatch.setenv("KEYBOT_FINGERPRINT_KEY", short_secret)
    monkeypatch.setenv("VAULT_ADDR", "vault.internal:8200")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "KEYBOT_FINGERPRINT_KEY" in message and "32 characters" in message
    assert short_secret not in message
    assert "VAULT_ADDR" in message and "vault.internal:8200" in message
