"""Preflight: is everything a run will need configured and reachable, before anything is opened?

A run that starts without its provider or Vault opens an incident and marks the key compromised, then
fails at its first outside call; a break-glass revoke must refuse before that, naming each missing piece.
The CLI calls :func:`preflight` first; Slack can call it before it opens a run too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bot.providers.base import ProviderError
from bot.runbooks.context import KeyFacts, Toolkit
from bot.runbooks.definitions import RunbookDefinition
from bot.secrets import redact

PROVIDER_SETTINGS = {"openai": "OPENAI_ADMIN_KEY (the OpenAI Admin API key)"}
"""Providers keybot automates, and the setting each one needs; other vendors are manual checklists."""

PROVIDER_ACTIONS = frozenset({"revoke_old", "mint", "verify_revoked"})
VAULT_ACTIONS = frozenset({"mint", "verify_new", "verify_revoked", "cleanup"})
VAULT_SETTINGS = "VAULT_ADDR with VAULT_TOKEN (or VAULT_ROLE_ID/VAULT_SECRET_ID)"

_T = TypeVar("_T")


@dataclass(frozen=True)
class Preflight:
    """What is missing or unreachable, one line each; empty when the run may start."""

    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        return "; ".join(self.problems)


def _reach(what: str, call: Callable[[], _T]) -> str | None:
    """None when ``call`` answers; else one line saying why ``what`` cannot be used (never a secret)."""
    try:
        call()
    except ProviderError as failure:
        return f"{what} is not usable: {redact(str(failure)).splitlines()[0] if str(failure) else 'error'}"
    except Exception as failure:  # an unreachable host surfaces as whatever the client raises
        return f"{what} is not reachable ({type(failure).__name__})"
    return None


def preflight(toolkit: Toolkit, key: KeyFacts, runbook: RunbookDefinition, mode: str) -> Preflight:
    """Check the provider (and its admin key) and Vault that `runbook` in `mode` uses on `key`.

    Each is first checked for configuration, then with one read-only call: the provider looks the key up
    (which proves the admin key and the network), Vault lists the key's secret versions.
    """
    actions = {step.action for _, step in runbook.plan(mode)}
    problems: list[str] = []
    if actions & PROVIDER_ACTIONS and key.provider in PROVIDER_SETTINGS:
        provider = toolkit.providers.get(key.provider)
        if provider is None:
            setting = PROVIDER_SETTINGS[key.provider]
            problems.append(f"no {key.provider} provider is configured: set {setting}")
        elif (problem := _reach(f"the {key.provider} provider", lambda: provider.find(key.ref))) is not None:
            problems.append(problem)
    if actions & VAULT_ACTIONS:
        store = toolkit.store
        if store is None:
            problems.append(f"no Vault is configured for the replacement key: set {VAULT_SETTINGS}")
        elif (problem := _reach("Vault", lambda: store.versions(key.vault_path))) is not None:
            problems.append(problem)
    return Preflight(tuple(problems))
