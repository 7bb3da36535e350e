"""A complete little world for runbook tests: registry, OpenAI stand-in, real OpenBao, engine."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import hvac
from pydantic import SecretStr

from bot.access.policy import Policy, Roster
from bot.db.session import Database
from bot.providers.openai_admin import OpenAIAdminProvider
from bot.providers.vault import VaultStore
from bot.registry.fingerprint import Fingerprinter
from bot.registry.importer import parse_yaml
from bot.registry.models import Key
from bot.registry.store import apply_import
from bot.runbooks.context import Toolkit, WaitSettings
from bot.runbooks.definitions import load_runbooks
from bot.runbooks.engine import Engine, EngineConfig
from tests.standins.openai_api import OpenAIStandin
from tests.standins.openbao import OpenBaoServer

REPO = Path(__file__).resolve().parents[1]
RUNBOOKS = load_runbooks(REPO / "runbooks")
ADMIN = "U0ADMIN01"
REVOKERS = ("U0ONCALL1", "U0SECOND1")
POLICY = Policy(Roster(admins=frozenset({ADMIN}), revokers=frozenset(REVOKERS)))
"""The on-calls of these tests are on the revokers list; every key's owner is U0OWNER01, backup U0BACKUP1."""
NO_WAIT = WaitSettings(quiet_minutes=0.0)
"""Staged mode goes on as soon as the old key has no traffic (the stand-in's keys have none); the waiting
itself is tested with real waits in tests/test_staged_waits.py."""


@dataclass
class World:
    database: Database
    openai: OpenAIStandin
    bao: OpenBaoServer
    fingerprinter: Fingerprinter
    vault_prefix: str
    keys: dict[str, dict[str, str]] = field(default_factory=dict)

    def toolkit(self, admin_key: str | None = None, vault_addr: str | None = None) -> Toolkit:
        provider = OpenAIAdminProvider(
            SecretStr(admin_key or self.openai.admin_key), self.openai.base_url, timeout=3.0, max_retries=0
        )
        client = hvac.Client(url=vault_addr or self.bao.addr, token=self.bao.token, timeout=3)
        return Toolkit({"openai": provider}, VaultStore(client), self.fingerprinter)

    def engine(self, toolkit: Toolkit | None = None) -> Engine:
        config = EngineConfig(lease_ttl=timedelta(seconds=30), backoff_scale=0.005, waits=NO_WAIT)
        return Engine(self.database, RUNBOOKS, toolkit or self.toolkit(), config, policy=POLICY)

    def add_key(
        self,
        name: str,
        environment: str = "production",
        *,
        in_vault: bool = True,
        provider: str = "openai",
        owner: str = "U0OWNER01",
        backup: str = "U0BACKUP1",
        consumers: list[tuple[str, str]] | None = None,
    ) -> int:
        """A live stand-in key, registered, with its value as version 1 in Vault (where leaks come from)."""
        project = self.openai.add_project(f"proj for {name}")
        created = self.openai.add_key(project["id"], name)
        path = f"secret/{self.vault_prefix}/{name}"
        if in_vault:
            self.bao.client().secrets.kv.v2.create_or_update_secret(
                path=path.removeprefix("secret/"), secret={"api_key": created["value"]}, mount_point="secret"
            )
        consumers = consumers if consumers is not None else [(f"api-{name}", "U0CONSUME1")]
        consumer_yaml = "".join(f"\n      - name: {c}\n        contact: {who}" for c, who in consumers)
        document = f"""
teams:
  - name: team-{name}
    channel: C0TEAM{name.upper().replace("-", "")[:8]}
    manager: U0MANAGER1
keys:
  - name: {name}
    provider: {provider}
    provider_key_id: {created["id"]}
    project: {project["id"]}
    environment: {environment}
    vault_path: {path}
    secret: {created["value"]}
    team: team-{name}
    owners: [{owner}]
    backups: [{backup}]
    consumers:{consumer_yaml or " []"}
"""
        with self.database.session() as session:
            apply_import(session, parse_yaml(document), self.fingerprinter)
            key_id = session.query(Key.id).filter(Key.name == name).scalar()
        self.keys[name] = {
            "id": created["id"],
            "value": created["value"],
            "path": path,
            "project": project["id"],
        }
        assert key_id is not None
        return int(key_id)


def unique_name(prefix: str = "key") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
