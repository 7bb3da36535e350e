"""Builds the long-lived objects every entry point needs (settings, database, runbooks, providers) once."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from bot.access.policy import Policy, Roster
from bot.config import Settings, get_settings
from bot.db.migrate import ensure_schema
from bot.db.session import Database
from bot.providers.base import KeyProvider, SecretStore
from bot.registry.fingerprint import Fingerprinter, load_or_create_key
from bot.runbooks.context import Toolkit, WaitSettings
from bot.runbooks.definitions import RunbookDefinition, load_runbooks
from bot.runbooks.engine import Engine, EngineConfig

if TYPE_CHECKING:
    from bot.sandbox.sandbox import Reseeded, Sandbox


DURABLE_RETRY_AFTER_SECONDS = 5.0
DB_MAX_OVERFLOW = 40
"""Every run being executed holds a connection for its writer (Slack worker threads, bulk revokes), on top
of the short sessions of Slack handlers; the pool's default overflow of 10 would make them queue."""


@dataclass
class Runtime:
    settings: Settings

    @classmethod
    def from_environment(cls) -> Runtime:
        return cls(get_settings())

    @cached_property
    def database(self) -> Database:
        database = Database(self.settings.database_url, max_overflow=DB_MAX_OVERFLOW)
        ensure_schema(database.engine)
        return database

    @cached_property
    def fingerprinter(self) -> Fingerprinter:
        configured = (
            self.settings.fingerprint_key.get_secret_value() if self.settings.fingerprint_key else None
        )
        return Fingerprinter(load_or_create_key(configured, self.settings.state_dir))

    @cached_property
    def runbooks(self) -> dict[str, RunbookDefinition]:
        return load_runbooks(self.settings.runbooks_dir)

    local_sandbox: bool = False

    def use_sandbox(self) -> None:
        """Zero-configuration mode: every provider call and Vault write goes to the local sandbox."""
        self.local_sandbox = True

    def start_sandbox(self) -> Reseeded:
        """Sandbox mode, with every key the database still uses given its sandbox twin back (the sandbox
        forgets everything when keybot stops, the database does not)."""
        self.use_sandbox()
        with self.database.session() as session:
            return self.sandbox.reseed(session)

    @property
    def sandbox_started(self) -> bool:
        return "sandbox" in self.__dict__

    def warm_up(self) -> None:
        """Build what worker threads share, and import the SDK modules they load lazily, before any starts.

        Two threads' first imports of the openai SDK's modules at once can fail with Python's import
        deadlock error (``_DeadlockError``: seen when a new clock leader's jobs all ran at once)."""
        if self.local_sandbox:
            return
        _ = self.toolkit  # providers and the secret store, with their SDK imports
        s = self.settings
        if s.openai_admin_key is not None:
            importlib.import_module("bot.usage.openai_poll")  # the usage poller's job thread
        if s.openai_api_key is not None:
            importlib.import_module("bot.postmortems.narrative")  # the outbox sender's LLM drafts

    @cached_property
    def providers(self) -> dict[str, KeyProvider]:
        if self.local_sandbox:
            return self.sandbox.toolkit().providers
        providers: dict[str, KeyProvider] = {}
        if self.settings.openai_admin_key is not None:
            from bot.providers.openai_admin import OpenAIAdminProvider

            providers["openai"] = OpenAIAdminProvider(
                self.settings.openai_admin_key,
                self.settings.openai_admin_base_url,
                max_retries=0,  # the engine retries, visibly and within each step's budget
            )
        return providers

    @cached_property
    def secret_store(self) -> SecretStore | None:
        s = self.settings
        if self.local_sandbox:
            return self.sandbox.toolkit().store
        if s.vault_addr is None:
            return None
        from bot.providers.vault import VaultStore

        return VaultStore.from_settings(
            s.vault_addr,
            token=s.vault_token.get_secret_value() if s.vault_token else None,
            role_id=s.vault_role_id,
            secret_id=s.vault_secret_id.get_secret_value() if s.vault_secret_id else None,
            mount=s.vault_mount,
        )

    @cached_property
    def toolkit(self) -> Toolkit:
        return Toolkit(self.providers, self.secret_store, self.fingerprinter)

    @cached_property
    def policy(self) -> Policy:
        """Who is admin and who is a revoker, from settings; Slack adds the revokers group membership."""
        s = self.settings
        roster = Roster(
            admins=frozenset(s.user_list("admins")),
            revokers=frozenset(s.user_list("revokers")),
            revoker_group=s.revoker_group,
        )
        return Policy(roster)

    def engine(self, *, durable_retries: bool = False) -> Engine:
        """`durable_retries` for processes a clock stands behind (the Slack worker, the clock itself): long
        retry backoffs then park the run instead of holding a thread and the lease."""
        config = EngineConfig(
            durable_retry_after=DURABLE_RETRY_AFTER_SECONDS if durable_retries else None,
            lease_ttl=timedelta(seconds=self.settings.run_lease_seconds),
            backoff_scale=self.settings.backoff_scale,
            waits=WaitSettings(
                deadlines=self.settings.deadlines(),
                quiet_minutes=self.settings.quiet_minutes,
                poll_seconds=self.settings.wait_poll_seconds,
            ),
        )
        return Engine(
            self.database,
            self.runbooks,
            self.toolkit,
            config,
            drill_toolkit=self.drill_toolkit,
            on_drill_end=self.drill_ended,
            policy=self.policy,
        )

    @cached_property
    def sandbox(self) -> Sandbox:
        """Started on first use: drills, and every key in zero-configuration mode."""
        from bot.sandbox.sandbox import Sandbox

        return Sandbox(self.fingerprinter)

    def drill_toolkit(self) -> Toolkit:
        return self.sandbox.toolkit()

    def drill_ended(self, run_id: str) -> None:
        """A drill's run ended (or was aborted): retire its copy key and clear the sandbox it used."""
        from bot.sandbox.drill import end_drill

        end_drill(self.database, self.__dict__.get("sandbox"), run_id)  # a sandbox never started is clean
