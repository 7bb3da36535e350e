"""Sandbox API keys: fake values in OpenAI's shape, and the record the sandbox keeps for each key.

Split out of :mod:`bot.sandbox.openai_server` (which re-exports the public names) to keep each file
short. A key's value is a secret even here: it never appears in a repr or in an API answer.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field

from bot.sandbox.openai_wire import Json
from bot.secrets import redacted_form

__all__ = ["Key", "SandboxKeySpec", "SeededKey", "new_key_value", "rand"]

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
class Key:
    id: str
    project: str
    name: str
    value: str = field(repr=False)
    owner: Json
    created_at: int
    scopes: list[str] = field(default_factory=list)
    last_used_at: int | None = None

    def to_api(self) -> Json:
        return {
            "object": "organization.project.api_key",
            "id": self.id,
            "name": self.name,
            "redacted_value": redacted_form(self.value),
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "owner_project_access": "active",
            "owner": self.owner,
        }
