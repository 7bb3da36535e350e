"""What a run remembers between steps (the `runs.context` JSON), typed so a misspelt key is a type error."""

from __future__ import annotations

from typing import Any, TypedDict


class DistributeWait(TypedDict, total=False):
    since: str  # ISO time distribution began (the quiet period counts from here)
    deadline: str  # ISO time the on-call is asked "Revoke now / Wait longer"


class RunContext(TypedDict, total=False):
    reason: str  # redacted, as the person typed it
    contain: bool  # narrow the key's scopes first
    contained_previous_scopes: Any
    old_key_id: str | None  # the leaked key at the provider
    old_redacted: str | None
    leaked_version: int | None  # the Vault version holding the leaked secret (None: not in Vault)
    mint_tried: bool
    new_version: int  # the replacement's Vault version
    new_key_id: str | None
    new_owner_id: str | None  # the service account that owns the replacement
    new_fingerprint: str
    new_redacted: str | None
    revoked_at: str
    time_to_contain: str
    exposure: dict[str, Any]  # requests, tokens, cost while exposed
    distribute: DistributeWait
    confirmed: dict[str, str]  # consumer -> who confirmed they redeployed
