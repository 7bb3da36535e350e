"""Sandbox API keys and service accounts: fake values in OpenAI's shape, and the records the sandbox keeps.

Split out of :mod:`bot.sandbox.openai_server` (which re-exports the public names) to keep each file
short. A key's value is a secret even here: it never appears in a repr or in an API answer.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field

from bot.sandbox.openai_wire import Json
from bot.secrets import redacted_form

__all__ = ["Key", "SandboxKeySpec", "SeededKey", "ServiceAccount", "new_key_value", "rand"]

_CHARS = string.ascii_letters + string.digits + "-_"
_ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_key_value(family: str = "sk-proj-") -> str:
    """A fake key in OpenAI's current shape: family + 74 chars + ``T3BlbkFJ`` + 74 chars (random)."""
    return f"{family}{rand(74, _CHARS)}T3BlbkFJ{rand(74, _CHARS)}"


@dataclass(frozen=True)
class SandboxKeySpec:
    """An example key to create: its name, the project id it lives in, and optionally its key id."""

    name: str
    project: str
    key_id: str | None = None


@dataclass(frozen=True)
class SeededKey:
    key_id: str
    name: str
    project: str
    value: str = field(repr=False)  # the secret: goes to the sandbox Vault, never to a log


@dataclass
class ServiceAccount:
    """A project service account (role ``none`` when created without a key)."""

    id: str
    project_id: str
    name: str
    role: str
    created_at: int

    def to_api(self) -> Json:
        return {
            "object": "organization.project.service_account",
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at,
        }

    def owner_ref(self) -> Json:
        """How a key this account owns names its owner (``ProjectApiKey.owner``)."""
        account = {"id": self.id, "name": self.name, "created_at": self.created_at}
        role = self.role if self.role != "none" else "member"
        return {"type": "service_account", "service_account": account | {"role": role}}


@dataclass
class Key:
    """A project API key. ``value`` is the secret; the API only ever shows ``redacted_value``."""

    id: str
    project_id: str
    name: str
    value: str = field(repr=False)
    owner: Json  # {"type": "user", "user": {...}} or {"type": "service_account", ...}
    created_at: int
    redacted_value: str = ""
    scopes: list[str] = field(default_factory=list)
    last_used_at: int | None = None
    owner_project_access: str = "active"
    expires_at: int | None = None
    deleted_at: int | None = None

    def __post_init__(self) -> None:
        self.redacted_value = self.redacted_value or redacted_form(self.value)

    @property
    def service_account_id(self) -> str | None:
        account = self.owner.get("service_account")
        return str(account["id"]) if self.owner.get("type") == "service_account" and account else None

    def live(self, now: int) -> bool:
        return self.deleted_at is None and (self.expires_at is None or now < self.expires_at)

    def to_api(self) -> Json:
        return {
            "object": "organization.project.api_key",
            "id": self.id,
            "name": self.name,
            "redacted_value": self.redacted_value,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "owner_project_access": self.owner_project_access,
            "owner": self.owner,
        }
