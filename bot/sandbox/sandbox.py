"""The sandbox as keybot uses it: local provider + local Vault with the registry's keys seeded.

`keybot run` with no credentials backs every OpenAI key with the sandbox, so a newcomer can run the whole
runbook in a minute; drills (`bot.sandbox.drill`) rehearse on sandbox copies of real keys. The sandbox
keeps its state in memory, so every start re-seeds it from the database (:meth:`Sandbox.reseed`): each key
gets its twin back under the same provider key id and redacted form, with a value derived from this
installation's fingerprint key, so the same database always finds the same twins.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass

import hvac
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.providers.openai_admin import OpenAIAdminProvider
from bot.providers.vault import VaultStore
from bot.registry.fingerprint import Fingerprinter
from bot.registry.models import Key, KeyStatus
from bot.runbooks.context import DEFAULT_VAULT_PREFIX, Toolkit
from bot.sandbox.openai_server import SandboxOpenAI
from bot.sandbox.openbao import SandboxOpenBao
from bot.secrets import redacted_form

_CHARS = string.ascii_letters + string.digits + "-_"
_MARKER = "T3BlbkFJ"  # what every current OpenAI key carries between its two 74-character halves
_HALF = 74
_FAMILIES = ("sk-proj-", "sk-svcacct-", "sk-admin-")


@dataclass(frozen=True)
class Reseeded:
    """What a start-up re-seed did: keys given their twin back, and keys whose fingerprint had to change."""

    keys: int
    refingerprinted: int


def twin_value(fingerprinter: Fingerprinter, key_id: str, family: str, last4: str | None) -> str:
    """A key value in OpenAI's shape for the sandbox twin of provider key ``key_id``.

    Derived from the installation's fingerprint key, so every start gives the same key the same value
    (and fingerprint); it ends with ``last4`` when the registry documents one, so the redacted forms the
    registry and the README show (``sk-proj-...Xy9Q``) find the key.
    """
    seed = fingerprinter.fingerprint(f"keybot-sandbox-twin:{key_id}").encode()
    raw = hashlib.shake_256(seed).digest(2 * _HALF)
    body = "".join(_CHARS[b % len(_CHARS)] for b in raw)
    tail = body[_HALF:]
    if last4 and len(last4) == 4 and all(c in _CHARS for c in last4):
        tail = tail[:-4] + last4
    return f"{family}{body[:_HALF]}{_MARKER}{tail}"


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
        self._store(key, project, key_id, value)

    def _store(self, key: Key, project: str, key_id: str, value: str) -> None:
        path = key.vault_path or f"{DEFAULT_VAULT_PREFIX}/{key.name}"
        mount, _, rest = path.partition("/")
        self._vault.secrets.kv.v2.create_or_update_secret(
            path=rest, secret={"api_key": value}, mount_point=mount
        )
        redacted = redacted_form(value)
        key.provider, key.provider_key_id, key.project, key.vault_path = "openai", key_id, project, path
        key.fingerprint = self.fingerprinter.fingerprint(value)
        key.secret_family, key.secret_last4 = redacted.split("...", 1)[0], redacted[-4:]

    def twin(self, key: Key) -> bool:
        """Give `key` its twin back under its own provider key id and redacted form; True if its
        fingerprint changed (a value minted by an earlier sandbox, which is gone, is replaced)."""
        project = key.project or "proj_sandbox"
        key_id = key.provider_key_id or f"key_{self.fingerprinter.fingerprint(key.name)[:16]}"
        family = key.secret_family if key.secret_family in _FAMILIES else "sk-proj-"
        value = twin_value(self.fingerprinter, key_id, family, key.secret_last4)
        self.openai.add_project(project)
        if key_id in self.openai.keys:  # already seeded by this sandbox (a second call)
            return False
        self.openai.add_key(project, key.name, key_id)
        record = self.openai.keys[key_id]  # the sandbox mints random values; the twin keeps its own
        record.value, record.redacted_value = value, redacted_form(value)
        before = key.fingerprint
        self._store(key, project, key_id, value)
        return before != key.fingerprint

    def reseed(self, session: Session) -> Reseeded:
        """Back every OpenAI key the database still uses with the sandbox (zero-configuration mode).

        Revoked keys stay gone; everything else (status, history, runs) is left as it is, so a run that
        was waiting when keybot stopped carries on against the same provider key id.
        """
        keys = session.scalars(
            select(Key).where(Key.provider == "openai", Key.status != KeyStatus.REVOKED).order_by(Key.id)
        ).all()
        changed = sum(self.twin(key) for key in keys)
        session.flush()
        return Reseeded(len(keys), changed)

    def seed_examples(self, session: Session) -> int:
        """Back every OpenAI key of an example registry with the sandbox (kept for callers; see reseed)."""
        return self.reseed(session).keys
