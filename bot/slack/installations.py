"""Where OAuth installations live: slack_sdk's SQLAlchemy stores on keybot's own engine.

The tables are made by the Alembic migration ``0010_slack_installations``, never by the stores'
``create_tables``, so ``keybot db upgrade`` is the one way the schema changes. Bot tokens are what
Slack handed over at install time; they stay in these tables and never reach logs or messages.
See docs/multi-workspace.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import Table, desc, select
from sqlalchemy.engine import Engine

from bot.db.base import Base

STATE_EXPIRATION_SECONDS = 600

# The stores' own table shapes, registered in keybot's metadata so the migration is checked against them
# (tests/test_migrations.py) and test databases are emptied like every other table.
BOTS: Table = SQLAlchemyInstallationStore.build_bots_table(Base.metadata, "slack_bots")
INSTALLATIONS: Table = SQLAlchemyInstallationStore.build_installations_table(
    Base.metadata, "slack_installations"
)
OAUTH_STATES: Table = SQLAlchemyOAuthStateStore.build_oauth_states_table(Base.metadata, "slack_oauth_states")


def installation_store(client_id: str, engine: Engine) -> SQLAlchemyInstallationStore:
    return SQLAlchemyInstallationStore(client_id=client_id, engine=engine)


def state_store(
    engine: Engine, expiration_seconds: int = STATE_EXPIRATION_SECONDS
) -> SQLAlchemyOAuthStateStore:
    return SQLAlchemyOAuthStateStore(expiration_seconds=expiration_seconds, engine=engine)


@dataclass(frozen=True)
class WorkspaceTokens:
    """Bot tokens by workspace, for work that is not answering a request (the outbox, the clock)."""

    store: SQLAlchemyInstallationStore

    def for_team(self, enterprise_id: str | None, team_id: str | None) -> str | None:
        """The newest bot token of a workspace; an org-wide (Enterprise Grid) install answers for every
        workspace of its organisation."""
        bot = self.store.find_bot(enterprise_id=enterprise_id, team_id=team_id)
        if bot is None and enterprise_id is not None:
            bot = self.store.find_bot(enterprise_id=enterprise_id, team_id=None, is_enterprise_install=True)
        return bot.bot_token if bot is not None else None

    def latest(self) -> str | None:
        """The most recently installed bot token: the organisation's, in the Enterprise Grid case."""
        bots = self.store.bots
        query = (
            select(bots.c.bot_token)
            .where(bots.c.client_id == self.store.client_id, bots.c.bot_token.is_not(None))
            .order_by(desc(bots.c.installed_at), desc(bots.c.id))
            .limit(1)
        )
        with self.store.engine.connect() as conn:
            token = conn.execute(query).scalar()
        return str(token) if token else None
