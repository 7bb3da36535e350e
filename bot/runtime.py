"""Builds the long-lived objects every entry point needs (settings, database, fingerprinter) once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from bot.config import Settings, get_settings
from bot.db.migrate import ensure_schema
from bot.db.session import Database
from bot.registry.fingerprint import Fingerprinter, load_or_create_key


@dataclass
class Runtime:
    settings: Settings

    @classmethod
    def from_environment(cls) -> Runtime:
        return cls(get_settings())

    @cached_property
    def database(self) -> Database:
        database = Database(self.settings.database_url)
        ensure_schema(database.engine)
        return database

    @cached_property
    def fingerprinter(self) -> Fingerprinter:
        configured = (
            self.settings.fingerprint_key.get_secret_value() if self.settings.fingerprint_key else None
        )
        return Fingerprinter(load_or_create_key(configured, self.settings.state_dir))
