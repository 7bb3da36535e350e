"""The small interfaces the runbook engine drives; each provider wraps one outside system.

Every call that changes something outside takes an `idempotency_key` (derived from run + step) so that a
step re-run after a crash finds its earlier effect instead of repeating it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import SecretStr


class ProviderErrorKind(enum.StrEnum):
    TRANSIENT = "transient"  # 429, 5xx, timeouts, connection refused, sealed Vault: retry with backoff
    PERMANENT = "permanent"  # bad credentials, forbidden, invalid request: a human must act
    NOT_FOUND = "not_found"


class ProviderError(Exception):
    """A failed outside call, classified so the engine knows whether to retry; never carries a secret."""

    def __init__(self, kind: ProviderErrorKind, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status

    @property
    def transient(self) -> bool:
        return self.kind is ProviderErrorKind.TRANSIENT

    @classmethod
    def transient_failure(cls, message: str) -> ProviderError:
        """A check that may pass on a later attempt (e.g. revocation still propagating)."""
        return cls(ProviderErrorKind.TRANSIENT, message)


@dataclass(frozen=True)
class KeyRef:
    """What a provider needs to find a key; built from a registry row."""

    provider_key_id: str | None
    project: str | None
    redacted: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class ProviderKey:
    """A key as the provider sees it right now."""

    id: str
    name: str | None
    redacted: str | None
    project: str | None
    owner_kind: str | None = None  # "user" | "service_account"
    owner_id: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class MintedKey:
    """A freshly minted replacement. `value` is shown once by the provider and must go straight to Vault."""

    key_id: str
    value: SecretStr
    owner_id: str | None = None  # e.g. the service account id
    redacted: str | None = None


@dataclass(frozen=True)
class UsageBucket:
    start: datetime
    end: datetime
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = None


@dataclass(frozen=True)
class AuditEvent:
    id: str
    type: str
    effective_at: datetime
    actor: str | None
    details: dict[str, Any] = field(default_factory=dict)


class KeyProvider(Protocol):
    """Revokes and mints keys at one vendor."""

    name: str

    def find(self, ref: KeyRef) -> ProviderKey | None:
        """The live key, or None when the provider no longer has it."""
        ...

    def revoke(self, ref: KeyRef, *, idempotency_key: str) -> bool:
        """Delete the key. True if this call deleted it, False if it was already gone."""
        ...

    def mint(self, ref: KeyRef, *, idempotency_key: str, first_attempt: bool = False) -> MintedKey:
        """Create a replacement, removing any half-made earlier attempt with the same idempotency key.

        `first_attempt`: nothing was ever tried under this key (the caller recorded that durably), so
        there is nothing to look for.
        """
        ...

    def authenticates(self, secret: SecretStr) -> bool:
        """Does a request made with this secret succeed right now?"""
        ...

    def usage(self, ref: KeyRef, start: datetime, end: datetime) -> list[UsageBucket]: ...

    def audit_events(self, ref: KeyRef, start: datetime, end: datetime) -> list[AuditEvent]: ...


@dataclass(frozen=True)
class StoredVersion:
    path: str
    version: int
    key_id: str | None
    run_id: str | None
    state: str  # pending | current | previous | destroyed


class SecretStore(Protocol):
    """Keeps replacement secrets (Vault / OpenBao KV v2)."""

    def versions(self, path: str) -> list[StoredVersion]: ...

    def find_run_version(self, path: str, run_id: str) -> StoredVersion | None:
        """The version an earlier attempt of this run wrote, so a re-run never writes a second one."""
        ...

    def write_pending(self, path: str, secret: SecretStr, *, key_id: str, run_id: str) -> StoredVersion: ...

    def read(self, path: str, version: int) -> SecretStr: ...

    def promote(self, path: str, version: int) -> None:
        """Mark `version` current and the previous current version `previous`."""
        ...

    def destroy(self, path: str, version: int) -> None:
        """Permanently destroy one version's data, keeping the metadata."""
        ...
