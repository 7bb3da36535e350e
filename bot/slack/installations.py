"""Where OAuth installations live: slack_sdk's SQLAlchemy stores on keybot's own engine.

The tables are made by the Alembic migration ``0010_slack_installations``, never by the stores'
``create_tables``, so ``keybot db upgrade`` is the one way the schema changes. Bot tokens are what
Slack handed over at install time: they are sealed before they reach these tables (AES-GCM with a key
derived from KEYBOT_FINGERPRINT_KEY, see :class:`TokenSealer`), so a copy of the database holds no usable
Slack token, and they never reach logs or messages. See docs/multi-workspace.md.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
from dataclasses import dataclass
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import ColumnElement, Table, Text, desc, distinct, func, select
from sqlalchemy.engine import Engine

from bot.db.base import Base

STATE_EXPIRATION_SECONDS = 600
SEALED_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token", "incoming_webhook_url")
"""Every field that would let someone act as the app, or post into a channel."""
SEALED_PREFIX = "kbs1:"

# The stores' own table shapes, registered in keybot's metadata so the migration is checked against them
# (tests/test_migrations.py) and test databases are emptied like every other table.
BOTS: Table = SQLAlchemyInstallationStore.build_bots_table(Base.metadata, "slack_bots")
INSTALLATIONS: Table = SQLAlchemyInstallationStore.build_installations_table(
    Base.metadata, "slack_installations"
)
OAUTH_STATES: Table = SQLAlchemyOAuthStateStore.build_oauth_states_table(Base.metadata, "slack_oauth_states")
for _table in (BOTS, INSTALLATIONS):  # a sealed token is longer than Slack's 200-character columns allow
    for _name in SEALED_FIELDS:
        if _name in _table.c:
            _table.c[_name].type = Text()


class TokenKeyMismatch(Exception):
    """A sealed token does not open with this key: KEYBOT_FINGERPRINT_KEY differs from the installer's."""


class TokenSealer:
    """Seals tokens at rest. The key is derived from the fingerprint key every keybot process already
    shares, so no new secret has to be distributed; a value already sealed is left as it is."""

    def __init__(self, fingerprint_key: bytes) -> None:
        self._aead = AESGCM(hashlib.sha256(b"keybot slack tokens v1\0" + fingerprint_key).digest())

    def seal(self, value: str | None) -> str | None:
        if value is None or value.startswith(SEALED_PREFIX):
            return value
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, value.encode(), SEALED_PREFIX.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def open(self, value: str | None) -> str | None:
        if value is None or not value.startswith(SEALED_PREFIX):
            return value
        try:
            raw = base64.urlsafe_b64decode(value[len(SEALED_PREFIX) :].encode())
            return self._aead.decrypt(raw[:12], raw[12:], SEALED_PREFIX.encode()).decode()
        except (InvalidTag, ValueError):
            raise TokenKeyMismatch(
                "a stored Slack installation does not open with this KEYBOT_FINGERPRINT_KEY: every keybot "
                "process must share the key that was set when the app was installed"
            ) from None


_Entity = TypeVar("_Entity", Bot, Installation)


class SealedInstallationStore(SQLAlchemyInstallationStore):
    """slack_sdk's SQLAlchemy store, with tokens sealed on the way in and opened on the way out."""

    def __init__(self, client_id: str, engine: Engine, sealer: TokenSealer) -> None:
        super().__init__(client_id=client_id, engine=engine)
        self.sealer = sealer

    def _sealed(self, entity: _Entity) -> _Entity:
        sealed = copy.copy(entity)
        for name in SEALED_FIELDS:
            if hasattr(sealed, name):
                setattr(sealed, name, self.sealer.seal(getattr(sealed, name)))
        return sealed

    def _opened(self, entity: _Entity) -> _Entity:
        for name in SEALED_FIELDS:
            if hasattr(entity, name):
                setattr(entity, name, self.sealer.open(getattr(entity, name)))
        return entity

    def save(self, installation: Installation) -> None:
        super().save(self._sealed(installation))

    def save_bot(self, bot: Bot) -> None:
        super().save_bot(self._sealed(bot))

    def find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        found = super().find_bot(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        return self._opened(found) if found is not None else None

    def find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        found = super().find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )
        return self._opened(found) if found is not None else None


def installation_store(client_id: str, engine: Engine, sealer: TokenSealer) -> SealedInstallationStore:
    return SealedInstallationStore(client_id, engine, sealer)


def state_store(
    engine: Engine, expiration_seconds: int = STATE_EXPIRATION_SECONDS
) -> SQLAlchemyOAuthStateStore:
    return SQLAlchemyOAuthStateStore(expiration_seconds=expiration_seconds, engine=engine)


def installation_count(engine: Engine, client_id: str) -> int:
    """How many workspaces (or organisations) have this app installed; reads no token."""
    query = select(func.count(distinct(func.coalesce(BOTS.c.team_id, BOTS.c.enterprise_id)))).where(
        BOTS.c.client_id == client_id
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


@dataclass(frozen=True)
class WorkspaceTokens:
    """Bot tokens by workspace, for work that is not answering a request (the outbox, the clock)."""

    store: SealedInstallationStore

    def for_team(self, enterprise_id: str | None, team_id: str | None) -> str | None:
        """The newest bot token of a workspace; an org-wide (Enterprise Grid) install answers for every
        workspace of its organisation."""
        bot = self.store.find_bot(enterprise_id=enterprise_id, team_id=team_id)
        if bot is None and enterprise_id is not None:
            bot = self.store.find_bot(enterprise_id=enterprise_id, team_id=None, is_enterprise_install=True)
        if bot is None and enterprise_id is None and team_id is not None:
            return self._newest(self.store.bots.c.team_id == team_id)  # e.g. SLACK_DEFAULT_TEAM_ID on a Grid
        return bot.bot_token if bot is not None else None

    def count(self) -> int:
        return installation_count(self.store.engine, self.store.client_id)

    def latest(self) -> str | None:
        """The most recently installed bot token: the organisation's, in the Enterprise Grid case."""
        return self._newest(None)

    def _newest(self, where: ColumnElement[bool] | None) -> str | None:
        bots = self.store.bots
        query = (
            select(bots.c.bot_token)
            .where(bots.c.client_id == self.store.client_id, bots.c.bot_token.is_not(None))
            .order_by(desc(bots.c.installed_at), desc(bots.c.id))
            .limit(1)
        )
        if where is not None:
            query = query.where(where)
        with self.store.engine.connect() as conn:
            token = conn.execute(query).scalar()
        return self.store.sealer.open(str(token)) if token else None
