"""OpenAI keys through the official SDK's Admin API (``client.admin.organization...``).

The SDK's argument names drift between versions (it is pinned for that reason), so every SDK call lives
here or in :mod:`bot.providers.openai_usage`, and every SDK exception is classified in one place
(:func:`sdk_errors`). Secrets never reach a log record or an exception message: messages are built
from ids, HTTP status and the error's type/code only.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime

import httpx2
import openai
from openai.types.admin.organization.projects.project_api_key import ProjectAPIKey
from pydantic import SecretStr

from bot.observability.calls import TimedOpenAIClient
from bot.providers import openai_usage
from bot.providers.base import (
    AuditEvent,
    KeyRef,
    MintedKey,
    ProviderError,
    ProviderErrorKind,
    ProviderKey,
    UsageBucket,
)
from bot.providers.openai_errors import ServiceAccountDeletionRequired, sdk_errors, to_provider_error
from bot.secrets import parse_redacted, redact, redacted_form

__all__ = [
    "ACCOUNT_PREFIX",
    "READ_ONLY_SCOPES",
    "OpenAIAdminProvider",
    "ServiceAccountDeletionRequired",
    "account_name",
    "sdk_errors",
    "to_provider_error",
]

log = logging.getLogger(__name__)

ACCOUNT_PREFIX = "keybot-"
ACCOUNT_NAME_MAX = 64  # the spec sets no limit; stay well inside what the dashboard shows
READ_ONLY_SCOPES: tuple[str, ...] = ("api.all.read",)
MAX_RETRIES_CAP = 5  # the engine retries with backoff too; keep the SDK's own loop short
# The admin client never calls an inference endpoint; a placeholder keeps it from reading OPENAI_API_KEY.
_NO_INFERENCE_KEY = "keybot-admin-client-has-no-inference-key"
_PAGE = 100

Kind = ProviderErrorKind


def account_name(idempotency_key: str) -> str:
    """Deterministic service-account name for a mint step, so a re-run recognises its earlier attempt."""
    name = f"{ACCOUNT_PREFIX}{idempotency_key}"
    if len(name) <= ACCOUNT_NAME_MAX:
        return name
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]
    return f"{name[: ACCOUNT_NAME_MAX - len(digest) - 1]}-{digest}"


def _redacted_matches(wanted: tuple[str, str], shown: str) -> bool:
    """Same last 4 characters and a compatible family (``sk-`` is compatible with ``sk-proj-``)."""
    parsed = parse_redacted(shown)
    if parsed is None:
        return False
    (want_prefix, want_suffix), (prefix, suffix) = wanted, parsed
    return want_suffix[-4:] == suffix[-4:] and (
        prefix.startswith(want_prefix) or want_prefix.startswith(prefix)
    )


def _to_key(key: ProjectAPIKey, project: str) -> ProviderKey:
    owner = key.owner
    owner_id = (owner.service_account.id if owner.service_account else None) or (
        owner.user.id if owner.user else None
    )
    return ProviderKey(
        id=key.id,
        name=key.name,
        redacted=key.redacted_value,
        project=project,
        owner_kind=owner.type,
        owner_id=owner_id,
        created_at=openai_usage.to_datetime(key.created_at),
        last_used_at=openai_usage.to_datetime(key.last_used_at),
    )


class OpenAIAdminProvider:
    """The ``openai`` KeyProvider: revokes project API keys, mints service-account keys as replacements."""

    name = "openai"

    def __init__(
        self,
        admin_key: SecretStr,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 2,
        http_client: httpx2.Client | None = None,
    ) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self._max_retries = max(0, min(max_retries, MAX_RETRIES_CAP))
        self._http_client = http_client
        # Our own pool (one for both SDK clients) times every request; a caller's client is used as given.
        self._own_http = TimedOpenAIClient() if http_client is None else None
        self._auth_http: httpx2.Client | None = None
        self._client = self._sdk_client(_NO_INFERENCE_KEY, admin_key.get_secret_value())
        self._org = self._client.admin.organization
        # No SDK retry for creating a service account: a timed-out create may have succeeded, and a blind
        # retry would make a second account. The engine retries the whole mint step instead.
        self._once = self._sdk_client(_NO_INFERENCE_KEY, admin_key.get_secret_value(), max_retries=0)

    def _sdk_client(
        self,
        api_key: str,
        admin_key: str | None,
        *,
        max_retries: int | None = None,
        http_client: httpx2.Client | None = None,
    ) -> openai.OpenAI:
        """An SDK client with the SDK's own retry (honours Retry-After) but bounded."""
        client = openai.OpenAI(
            api_key=api_key,
            admin_api_key=admin_key,
            base_url=self._base_url,
            timeout=self._timeout,
            max_retries=self._max_retries if max_retries is None else max_retries,
            http_client=http_client or self._http_client or self._own_http,
        )
        # Ambient OPENAI_ORG_ID / OPENAI_PROJECT_ID headers could make a live key look dead (or the reverse).
        client.organization = None
        client.project = None
        client.admin_api_key = admin_key  # None also drops an OPENAI_ADMIN_KEY the SDK read from the env
        return client

    def close(self) -> None:
        """Close the connection pools this provider opened (never a caller's ``http_client``)."""
        if self._own_http is not None:
            self._own_http.close()
            if self._auth_http is not None:
                self._auth_http.close()

    # ---- find ---------------------------------------------------------------------------------
    def find(self, ref: KeyRef) -> ProviderKey | None:
        """By id (retrieve), else by redacted value (list and match); every project when none is given."""
        if not ref.provider_key_id and not ref.redacted:
            raise ProviderError(Kind.PERMANENT, "cannot find an OpenAI key without its id or redacted value")
        projects = [ref.project] if ref.project else self._project_ids()
        if ref.provider_key_id:
            for project in projects:
                if (key := self._retrieve(project, ref.provider_key_id)) is not None:
                    return key
            return None
        assert ref.redacted is not None
        wanted = parse_redacted(ref.redacted)
        if wanted is None:
            raise ProviderError(Kind.PERMANENT, redact(f"not a redacted key: {ref.redacted!r}"))
        matches = [
            k for p in projects for k in self._list_keys(p) if _redacted_matches(wanted, k.redacted or "")
        ]
        if len(matches) > 1 and ref.name:
            matches = [k for k in matches if k.name == ref.name] or matches
        if len(matches) > 1:
            ids = ", ".join(f"{k.id} ({k.project})" for k in matches)
            raise ProviderError(
                Kind.PERMANENT, redact(f"{ref.redacted} matches {len(matches)} OpenAI keys: {ids}")
            )
        return matches[0] if matches else None

    def _project_ids(self) -> list[str]:
        with sdk_errors("list projects"):
            return [p.id for p in self._org.projects.list(limit=_PAGE)]

    def _retrieve(self, project: str, key_id: str) -> ProviderKey | None:
        try:
            with sdk_errors(f"retrieve API key {key_id} in project {project}"):
                return _to_key(self._org.projects.api_keys.retrieve(key_id, project_id=project), project)
        except ProviderError as err:
            if err.kind is Kind.NOT_FOUND:
                return None
            raise

    def _list_keys(self, project: str) -> list[ProviderKey]:
        """Every enabled key, including those whose owner lost access to the project ("any")."""
        try:
            with sdk_errors(f"list API keys in project {project}"):
                pages = self._org.projects.api_keys.list(project, limit=_PAGE, owner_project_access="any")
                return [_to_key(k, project) for k in pages]
        except ProviderError as err:
            if err.kind is Kind.NOT_FOUND:
                return []
            raise

    def _require(self, ref: KeyRef) -> tuple[ProviderKey, str]:
        key = self.find(ref)
        if key is None or key.project is None:
            raise ProviderError(
                Kind.NOT_FOUND, redact(f"OpenAI key {ref.provider_key_id or ref.redacted} not found")
            )
        return key, key.project

    # ---- revoke -------------------------------------------------------------------------------
    def revoke(self, ref: KeyRef, *, idempotency_key: str) -> bool:
        """Delete the key; False when it is already gone. Never deletes a service account by itself."""
        key = self.find(ref)
        if key is None or key.project is None:
            log.info(
                "openai key already gone", extra={"key_id": ref.provider_key_id, "step": idempotency_key}
            )
            return False
        try:
            with sdk_errors(f"delete API key {key.id} in project {key.project}"):
                self._org.projects.api_keys.delete(key.id, project_id=key.project)
        except ProviderError as err:
            if err.kind is Kind.NOT_FOUND:
                return False
            if err.status == 400 and key.owner_kind == "service_account" and key.owner_id:
                raise ServiceAccountDeletionRequired(key.project, key.owner_id, key.id) from None
            raise
        log.info(
            "openai key revoked", extra={"key_id": key.id, "project": key.project, "step": idempotency_key}
        )
        return True

    def revoke_service_account(self, project: str, service_account_id: str) -> bool:
        """Delete a service account and so EVERY key it owns; only after a human confirmed it."""
        try:
            with sdk_errors(f"delete service account {service_account_id} in project {project}"):
                self._org.projects.service_accounts.delete(service_account_id, project_id=project)
        except ProviderError as err:
            if err.kind is Kind.NOT_FOUND:
                return False
            raise
        log.warning(
            "openai service account deleted with all its keys",
            extra={"service_account_id": service_account_id, "project": project},
        )
        return True

    # ---- mint ---------------------------------------------------------------------------------
    def mint(self, ref: KeyRef, *, idempotency_key: str, first_attempt: bool = False) -> MintedKey:
        """A new service account in the key's project; its key value is returned once.

        An account already carrying this step's name is an earlier attempt whose value was lost: it is
        deleted first, so a re-run never leaves two replacements. The engine must therefore not call
        mint again once the value is safely stored (it checks the secret store first). On a first attempt
        there is no such account, and listing every service account of the project is skipped.
        """
        project = ref.project or self._require(ref)[1]
        name = account_name(idempotency_key)
        accounts = self._org.projects.service_accounts
        stale: list[str] = []
        if not first_attempt:
            with sdk_errors(f"list service accounts in project {project}"):
                stale = [sa.id for sa in accounts.list(project, limit=_PAGE) if sa.name == name]
        for sa_id in stale:
            log.warning(
                "deleting a half-made replacement whose key value was lost",
                extra={"service_account_id": sa_id, "project": project, "step": idempotency_key},
            )
            self.revoke_service_account(project, sa_id)
        # Created without SDK retry (see __init__); a re-run's sweep above removes a lost first attempt.
        with sdk_errors(f"create service account {name} in project {project}"):
            created = self._once.admin.organization.projects.service_accounts.create(project, name=name)
        if created.api_key is None:
            raise ProviderError(Kind.PERMANENT, f"OpenAI created service account {created.id} without a key")
        value = SecretStr(created.api_key.value)
        log.info(
            "openai replacement minted",
            extra={"key_id": created.api_key.id, "service_account_id": created.id, "step": idempotency_key},
        )
        return MintedKey(
            key_id=created.api_key.id,
            value=value,
            owner_id=created.id,
            redacted=redacted_form(value.get_secret_value()),
        )

    # ---- verify -------------------------------------------------------------------------------
    def authenticates(self, secret: SecretStr) -> bool:
        """``GET /models`` made with the key itself: 200 (or 403, known but restricted) is live, 401 dead."""
        client = self._sdk_client(secret.get_secret_value(), None, http_client=self._auth_pool())
        try:
            client.models.list()
        except openai.AuthenticationError:
            return False
        except openai.PermissionDeniedError:
            return True  # the key was recognised; for "is the old key dead yet?" that means no
        except openai.OpenAIError as exc:
            raise to_provider_error(exc, "check a key with GET /models") from None
        return True

    def _auth_pool(self) -> httpx2.Client:
        """One connection pool (and TLS context) for every key check; building one costs ~45 ms of CPU."""
        if self._http_client is not None:
            return self._http_client
        if self._auth_http is None:
            self._auth_http = TimedOpenAIClient(timeout=self._timeout)
        return self._auth_http

    # ---- assess -------------------------------------------------------------------------------
    def _key_id(self, ref: KeyRef) -> str:
        return ref.provider_key_id or self._require(ref)[0].id

    def usage(self, ref: KeyRef, start: datetime, end: datetime) -> list[UsageBucket]:
        """Completions usage for the key: minute buckets up to a day, hour buckets beyond."""
        key_id = self._key_id(ref)
        with sdk_errors(f"read usage of API key {key_id}"):
            return openai_usage.usage(self._client, key_id, start, end)

    def costs(self, ref: KeyRef, start: datetime, end: datetime) -> list[openai_usage.CostBucket]:
        """Daily cost of the key (the costs API has only day buckets, so it is not folded into usage)."""
        key_id = self._key_id(ref)
        with sdk_errors(f"read costs of API key {key_id}"):
            return openai_usage.costs(self._client, key_id, start, end)

    def audit_events(self, ref: KeyRef, start: datetime, end: datetime) -> list[AuditEvent]:
        key_id = self._key_id(ref)
        with sdk_errors(f"read audit log of API key {key_id}"):
            return openai_usage.audit_events(self._client, key_id, start, end)

    # ---- contain (reversible) -----------------------------------------------------------------
    def contain(self, ref: KeyRef, *, scopes: Sequence[str] = READ_ONLY_SCOPES) -> list[str] | None:
        """Narrow the key's scopes (read-only by default). Returns the scopes to restore later, as last
        recorded in the audit log, or None when unknown (a human then decides what to restore)."""
        if not scopes:
            raise ValueError("empty scopes mean ALL permissions; containment needs a non-empty list")
        key, project = self._require(ref)
        with sdk_errors(f"read audit log of API key {key.id}"):
            previous = openai_usage.latest_scopes(self._client, key.id)
        self._set_scopes(key.id, project, scopes)
        return previous

    def restore_scopes(self, ref: KeyRef, scopes: Sequence[str]) -> ProviderKey:
        """Undo :meth:`contain`. ``[]`` restores ALL permissions, so callers pass it deliberately."""
        key, project = self._require(ref)
        return self._set_scopes(key.id, project, scopes)

    def _set_scopes(self, key_id: str, project: str, scopes: Sequence[str]) -> ProviderKey:
        with sdk_errors(f"update scopes of API key {key_id} in project {project}"):
            updated = self._org.projects.api_keys.update(key_id, project_id=project, scopes=list(scopes))
        return _to_key(updated, project)
