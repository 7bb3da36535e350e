"""Registry keys and clocks for the usage tests."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.db.session import Database
from bot.registry.models import Key

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)


def add_key(
    database: Database,
    name: str,
    *,
    provider_key_id: str | None = None,
    family: str | None = "sk-proj-",
    last4: str | None = None,
    fingerprint: str | None = None,
    drill: bool = False,
) -> int:
    with database.session() as session:
        key = Key(
            name=name,
            provider="openai",
            provider_key_id=provider_key_id,
            secret_family=family if last4 else None,
            secret_last4=last4,
            fingerprint=fingerprint,
            drill=drill,
        )
        session.add(key)
        session.flush()
        return key.id
