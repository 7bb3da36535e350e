"""How OpenAI SDK exceptions become ProviderErrors: one classification, messages built from ids only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import openai

from bot.providers.base import ProviderError, ProviderErrorKind
from bot.secrets import redact

Kind = ProviderErrorKind
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class ServiceAccountDeletionRequired(ProviderError):
    """The API will only remove this key together with its service account (and its other keys)."""

    def __init__(self, project: str, service_account_id: str, key_id: str) -> None:
        super().__init__(
            Kind.PERMANENT,
            f"OpenAI refused to delete API key {key_id} on its own: removing it requires deleting service "
            f"account {service_account_id} in project {project}, which also kills its other keys; confirm "
            "before calling revoke_service_account()",
            status=400,
        )
        self.project = project
        self.service_account_id = service_account_id
        self.key_id = key_id


def _safe(token: object) -> str | None:
    """An error type/code from the response body, kept only if it looks like an identifier."""
    return token if isinstance(token, str) and _SAFE_TOKEN.fullmatch(token) else None


def to_provider_error(exc: openai.OpenAIError, action: str) -> ProviderError:
    """Classify an SDK exception; the message never includes the SDK's text or body (they may echo input)."""
    status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
    parts = [f"HTTP {status}"] if status is not None else []
    if isinstance(exc, openai.APIError):
        parts += [p for p in (_safe(exc.type), _safe(exc.code)) if p]
    detail = f" ({', '.join(parts)})" if parts else ""
    kind = Kind.PERMANENT
    if isinstance(exc, openai.AuthenticationError):
        message = f"OpenAI rejected OPENAI_ADMIN_KEY{detail} while trying to {action}; check or rotate it"
    elif isinstance(exc, openai.PermissionDeniedError):
        message = f"OPENAI_ADMIN_KEY is not allowed to {action}{detail}"
    elif isinstance(exc, openai.NotFoundError):
        kind, message = Kind.NOT_FOUND, f"OpenAI has no such object: {action}{detail}"
    elif isinstance(exc, openai.APITimeoutError):
        kind, message = Kind.TRANSIENT, f"OpenAI timed out: {action}"
    elif isinstance(exc, openai.APIConnectionError):
        kind, message = Kind.TRANSIENT, f"cannot reach OpenAI: {action}"
    elif isinstance(exc, openai.RateLimitError | openai.InternalServerError) or (
        status is not None and (status in (408, 409) or status >= 500)
    ):
        kind, message = Kind.TRANSIENT, f"OpenAI is busy or failing: {action}{detail}"
    elif isinstance(exc, openai.APIStatusError):
        message = f"OpenAI refused to {action}{detail}"
    else:
        message = f"OpenAI call failed ({type(exc).__name__}): {action}"
    return ProviderError(kind, redact(message), status=status)


@contextmanager
def sdk_errors(action: str) -> Iterator[None]:
    """Turn any SDK exception raised inside into a ProviderError, dropping the SDK's exception chain."""
    try:
        yield
    except openai.OpenAIError as exc:
        raise to_provider_error(exc, action) from None
