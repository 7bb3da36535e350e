"""The sandbox as keybot uses it: local provider + local Vault with the example keys seeded.

`keybot run` with no credentials backs every example OpenAI key with the sandbox, so a newcomer can run
the whole runbook in a minute; drills (`bot.sandbox.drill`) rehearse on sandbox copies of real keys.
"""

from __future__ import annotations

import hvac
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.providers.openai_admin import OpenAIAdminProvider
from bot.providers.vault import VaultStore
from bot.registry.fingerprint import Fingerprinter
from bot.registry.models import Key
from bot.runbooks.context import DEFAULT_VAULT_PREFIX, Toolkit
from bot.sandbox.openai_server import SandboxOpenAI
from bot.sandbox.openbao import SandboxOpenBao
from bot.secrets import redacted_form


class Sandbox:
    def __init__(self, fingerprinter: Fingerprinter) -> None:
        self.fingerprinter = fingerprinter
        self.openai = SandboxOpenAI().start()
        self.bao = SandboxOpenBao().start()
        self._vault = hvac.Client(url=self.bao.addr, token=self.bao.token, timeout=5)

    def toolkit(self) -> Toolkit:
        provider = OpenAIAdminProvider(SecretStr(self.openai.admin_key), self.openai.base_url, timeout=5.0)
        return Toolkit({"openai": provider}, VaultStore(self._vault), self.fingerprinter)

    def stop(self) -> None:
        self.openai.stop()
        self.bao.stop()

    def materialise(self, key: Key) -> None:
        """Give `key` a live sandbox twin: provider key, its value in sandbox Vault, matching fingerprint."""
        project = key.project or "proj_sandbox"
        self.openai.add_project(project)
        key_id, value = self.openai.add_key(project, key.name)
        path = key.vault_path or f"{DEFAULT_VAULT_PREFIX}/{key.name}"
        mount, _, rest = path.partition("/")
        self._vault.secrets.kv.v2.create_or_update_secret(
            path=rest, secret={"api_key": value}, mount_point=mount
        )
        redacted = redacted_form(value)
        key.provider, key.provider_key_id, key.project, key.vault_path = "openai", key_id, project, path
        key.fingerprint = self.fingerprinter.fingerprint(value)
        key.secret_family, key.secret_last4 = redacted.split("...", 1)[0], redacted[-4:]

    def seed_examples(self, session: Session) -> int:
        """Back every OpenAI key of an example registry with the sandbox (zero-configuration mode only)."""
        keys = session.scalars(select(Key).where(Key.provider == "openai")).all()
        for key in keys:
            self.materialise(key)
        return len(keys)
