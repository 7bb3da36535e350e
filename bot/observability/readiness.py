"""`GET /readyz`: may this replica take traffic? Each dependency is checked and named.

The database must answer and carry the schema this keybot needs; Vault and Slack are checked only when
configured (else ``skipped``); with OAuth, Slack is the installation store and how many workspaces
installed keybot. Answers are cached per dependency (Slack's ``auth.test`` for a minute), so a
load balancer probing every second never hammers Slack or Vault. Reasons are one line built from error
types and codes, never from a token or a response body.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import text

from bot.config import Settings
from bot.db.session import Database
from bot.secrets import redact

Status = Literal["ok", "fail", "skipped"]


@dataclass(frozen=True)
class Check:
    status: Status
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"status": self.status, "reason": redact(self.reason)[:200]}


Probe = Callable[[], Check]


def database_check(database: Database) -> Probe:
    """SELECT 1, then the schema revision against the migrations' head (read once: it cannot change)."""
    head: list[str | None] = []

    def probe() -> Check:
        from alembic.runtime.migration import MigrationContext

        from bot.db.migrate import head_revision

        try:
            with database.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                current = MigrationContext.configure(conn).get_current_revision()
        except Exception as error:
            return Check("fail", f"unreachable ({type(error).__name__})")
        if not head:
            head.append(head_revision(database.engine))
        if current != head[0]:
            return Check(
                "fail", f"schema at {current or 'nothing'}, needs {head[0]}: run `keybot db upgrade`"
            )
        return Check("ok", f"schema at head {current}")

    return probe


def vault_check(settings: Settings, timeout: float = 3.0) -> Probe:
    """sys/health and the token's lookup-self, through the same VaultStore the engine uses."""
    from bot.providers.base import ProviderError
    from bot.providers.vault import VaultStore

    if settings.vault_addr is None:
        return lambda: Check("skipped", "VAULT_ADDR is not set")
    addr = settings.vault_addr
    stores: list[VaultStore] = []  # one client (and one AppRole login) reused while it stays healthy

    def probe() -> Check:
        if not stores:
            try:
                stores.append(
                    VaultStore.from_settings(
                        addr,
                        settings.vault_token,
                        settings.vault_role_id,
                        settings.vault_secret_id,
                        settings.vault_mount,
                        timeout=timeout,
                    )
                )
            except ProviderError as error:
                return Check("fail", f"cannot log in ({error.kind.value})")
            except Exception as error:
                return Check("fail", f"cannot connect ({type(error).__name__})")
        if not stores[0].health():
            stores.clear()
            return Check("fail", "sealed, uninitialised, unreachable or the token is not valid")
        return Check("ok", "unsealed; token valid")

    return probe


def installations_check(settings: Settings, database: Database) -> Probe:
    """OAuth mode: the installation store answers, and at least one workspace has installed keybot."""
    client_id = settings.slack_client_id
    assert client_id is not None

    def probe() -> Check:
        from bot.slack.installations import installation_count

        try:
            count = installation_count(database.engine, client_id)
        except Exception as error:
            return Check("fail", f"installation store unreadable ({type(error).__name__})")
        if count == 0:
            return Check("fail", "OAuth is on but no workspace has installed keybot yet: open /slack/install")
        return Check("ok", f"OAuth: {count} workspace installation{'s' if count != 1 else ''}")

    return probe


def slack_check(settings: Settings, timeout: int = 3, database: Database | None = None) -> Probe:
    """auth.test with the bot token (no retries: a probe must answer quickly); with OAuth (and the
    database), the installations instead (:func:`installations_check`)."""
    if database is not None and settings.slack_client_id and settings.slack_client_secret:
        return installations_check(settings, database)
    if settings.slack_bot_token is None:
        return lambda: Check("skipped", "SLACK_BOT_TOKEN is not set")
    token, url = settings.slack_bot_token, settings.slack_api_url

    def probe() -> Check:
        from bot.slack.api import SlackAPI, SlackError

        api = SlackAPI(token, base_url=url, timeout=timeout, rate_limit_retries=0, server_retries=0)
        try:
            who = api.auth_test()
        except SlackError as error:
            return Check("fail", f"auth.test failed: {error.code}")
        return Check("ok", f"authenticated as team {who.get('team_id', '?')}")

    return probe


@dataclass
class _Cached:
    probe: Probe
    ttl: float
    at: float = float("-inf")
    last: Check | None = None


@dataclass
class Readiness:
    """The named checks, each with its cache lifetime in seconds; `clock` is injectable for tests."""

    checks: dict[str, tuple[Probe, float]]
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_settings(cls, database: Database, settings: Settings | None) -> Readiness:
        checks: dict[str, tuple[Probe, float]] = {"database": (database_check(database), 0.0)}
        if settings is not None:
            checks["vault"] = (vault_check(settings), 5.0)
            oauth = settings.slack_client_id is not None and settings.slack_client_secret is not None
            # An installation must show within seconds; auth.test is a call to Slack, so once a minute.
            checks["slack"] = (slack_check(settings, database=database), 5.0 if oauth else 60.0)
        return cls(checks)

    def check(self) -> tuple[bool, dict[str, dict[str, str]]]:
        """(ready, {name: {status, reason}}): ready when nothing failed (skipped is fine)."""
        results: dict[str, Check] = {}
        for name, (probe, ttl) in self.checks.items():
            results[name] = self._one(name, probe, ttl)
        ready = all(c.status != "fail" for c in results.values())
        return ready, {name: c.to_dict() for name, c in results.items()}

    def _one(self, name: str, probe: Probe, ttl: float) -> Check:
        with self._lock:
            cached = self._cache.setdefault(name, _Cached(probe, ttl))
            if cached.last is not None and self.clock() - cached.at < ttl:
                return cached.last
        try:
            result = probe()
        except Exception as error:  # a probe must never turn the answer into a 500
            result = Check("fail", f"check crashed ({type(error).__name__})")
        with self._lock:
            cached.at, cached.last = self.clock(), result
        return result
