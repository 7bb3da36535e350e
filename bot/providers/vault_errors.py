"""Vault / OpenBao failures mapped to ProviderError, in keybot's own words.

Split out of :mod:`bot.providers.vault` to keep each file short. Every hvac exception or network error
the store sees is classified here (transient, permanent, not found) and turned into a message that names
the operation, the path and the policy capability it needs. Messages are built here, never copied from a
request, so they cannot carry a secret value; server text is only echoed (redacted) for calls that sent
no secret.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hvac import exceptions as hx

from bot.providers.base import ProviderError, ProviderErrorKind
from bot.secrets import redact

__all__ = ["POLICY_FILE", "capabilities", "fail", "guarded_call", "provider_error", "server_errors"]

POLICY_FILE = "runbooks/vault-policy.hcl"
_T = TypeVar("_T")
_PERMANENT = ProviderErrorKind.PERMANENT
_TRANSIENT = ProviderErrorKind.TRANSIENT
_NOT_FOUND = ProviderErrorKind.NOT_FOUND
_CAPS = {"data": '"create", "update", "read"', "metadata": '"read", "update"', "destroy": '"update"'}
_ERRORS: tuple[tuple[type[Exception], ProviderErrorKind, int, str], ...] = (
    (hx.VaultDown, _TRANSIENT, 503, "Vault is sealed or unavailable (HTTP 503)"),
    (hx.RateLimitExceeded, _TRANSIENT, 429, "Vault is rate-limiting keybot (HTTP 429)"),
    (hx.InternalServerError, _TRANSIENT, 500, "Vault internal error (HTTP 500)"),
    (hx.BadGateway, _TRANSIENT, 502, "bad gateway in front of Vault (HTTP 502)"),
    (hx.InvalidPath, _PERMANENT, 404, "no secrets engine is mounted there (HTTP 404)"),
    (hx.InvalidRequest, _PERMANENT, 400, "Vault rejected the request (HTTP 400)"),
    (hx.VaultNotInitialized, _PERMANENT, 501, "Vault is not initialised (HTTP 501)"),
)


def fail(kind: ProviderErrorKind, message: str, status: int | None = None) -> ProviderError:
    return ProviderError(kind, message, status=status)


def capabilities(mount: str, kind: str) -> str:
    """The policy capabilities a KV v2 call needs on ``<mount>/<kind>/*`` (kind: data, metadata, destroy…)."""
    return f"{_CAPS.get(kind, _CAPS['destroy'])} on {mount}/{kind}/*"


def server_errors(exc: hx.VaultError) -> str:
    return "; ".join(str(e) for e in (exc.errors or []) if e).strip()


def _no_route(exc: hx.VaultError) -> bool:
    return "no handler for route" in server_errors(exc)


def provider_error(
    exc: Exception, *, addr: str, op: str, where: str, needs: str, echo: bool
) -> ProviderError:
    """Our own words for a failed `op` on `where` (Vault at `addr`); `needs` names the policy it lacks."""
    if isinstance(exc, OSError):
        return fail(_TRANSIENT, f"Vault at {addr} unreachable or timed out during {op}")
    assert isinstance(exc, hx.VaultError)
    at = f"{op} on {where}"
    if isinstance(exc, hx.Forbidden | hx.Unauthorized):
        status = 403 if isinstance(exc, hx.Forbidden) else 401
        return fail(
            _PERMANENT,
            f"Vault denied {at} (HTTP {status}): the token is missing, expired or revoked, or its policy "
            f"lacks {needs}. Give keybot's token (VAULT_TOKEN, or the AppRole's token_policies) the "
            f"policy in {POLICY_FILE}",
            status,
        )
    if isinstance(exc, hx.InvalidPath) and not _no_route(exc):
        return fail(_NOT_FOUND, f"not found: {at}", 404)
    reason = redact(server_errors(exc))[:300] if echo else ""
    detail = f": {reason}" if reason else ""
    for cls, kind, status, text in _ERRORS:
        if isinstance(exc, cls):
            return fail(kind, f"{text} during {at}{detail}", status)
    return fail(_TRANSIENT, f"Vault failed {at} ({type(exc).__name__}){detail}")


def guarded_call(
    fn: Callable[[], _T],
    translate: Callable[[Exception], ProviderError],
    renew: Callable[[], None] | None = None,
) -> _T:
    """Run one hvac call; on 401/403 call `renew` (an AppRole re-login) once and retry. Any hvac or
    network failure is raised as ``translate(exc)``, without the hvac exception chained to it."""
    try:
        return fn()
    except (hx.Forbidden, hx.Unauthorized) as exc:
        if renew is None:
            raise translate(exc) from None
    except (hx.VaultError, OSError) as exc:
        raise translate(exc) from None
    renew()
    try:
        return fn()
    except (hx.VaultError, OSError) as exc:
        raise translate(exc) from None
