"""Plain-Python state API of the OpenAI stand-in: seed projects, keys, usage and audit events."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ._openai_state import StandinKey, StandinServiceAccount, new_secret, rand_id, redact
from ._openai_usage import UsageRecord


class OpenAIState:
    _lock: threading.RLock
    now: Callable[[], int]
    admin_key: str
    api_key: str
    usage: list[UsageRecord]
    chat_reply: str | Callable[[dict[str, Any]], str]
    service_account_key_delete_error: bool

    def reset_state(self) -> None:
        self.projects: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, StandinKey] = {}
        self.deleted_keys: dict[str, StandinKey] = {}
        self.service_accounts: dict[str, StandinServiceAccount] = {}
        self.audit_logs: list[dict[str, Any]] = []  # oldest first; the API lists newest first
        self.default_user: dict[str, Any] = {
            "id": "user-standin0001",
            "email": "oncall@example.com",
            "name": "On Call",
            "created_at": 1700000000,
            "role": "owner",
        }
        self.admin_key_id = "key_adminstandin01"

    # ---- state API for tests ----------------------------------------------------------------
    def add_project(
        self,
        name: str = "Default project",
        *,
        project_id: str | None = None,
        created_at: int | None = None,
        status: str = "active",
    ) -> dict[str, Any]:
        pid = project_id or rand_id("proj_", 24)
        project: dict[str, Any] = {
            "id": pid,
            "object": "organization.project",
            "name": name,
            "created_at": created_at if created_at is not None else self.now(),
            "archived_at": None,
            "status": status,
            "external_key_id": None,
        }
        with self._lock:
            self.projects[pid] = project
        return dict(project)

    def add_service_account(
        self,
        project_id: str,
        name: str = "svc",
        *,
        role: str = "member",
        service_account_id: str | None = None,
    ) -> StandinServiceAccount:
        self._require_project(project_id)
        sa = StandinServiceAccount(
            service_account_id or rand_id("svc_acct_"), project_id, name, role, self.now()
        )
        with self._lock:
            self.service_accounts[sa.id] = sa
        return sa

    def add_key(
        self,
        project_id: str,
        name: str = "Secret key",
        value: str | None = None,
        *,
        owner: str = "user",
        user: dict[str, Any] | None = None,
        service_account_id: str | None = None,
        key_id: str | None = None,
        created_at: int | None = None,
        last_used_at: int | None = None,
        redacted_value: str | None = None,
        scopes: list[str] | None = None,
        owner_project_access: str = "active",
    ) -> dict[str, Any]:
        """Seed a live key (no audit event). ``owner``: "user" (``user`` dict or :attr:`default_user`)
        or "service_account" (``service_account_id``, else a new one). Returns the API object plus
        ``value`` (the secret) and ``project_id``."""
        self._require_project(project_id)
        if owner == "service_account" or service_account_id:
            sa = (
                self.service_accounts[service_account_id]
                if service_account_id
                else self.add_service_account(project_id, f"{name} owner")
            )
            owner_ref, family = sa.owner_ref(), "sk-svcacct-"
        else:
            owner_ref, family = {"type": "user", "user": dict(user or self.default_user)}, "sk-proj-"
        secret = value or new_secret(family)
        key = StandinKey(
            key_id or rand_id("key_"),
            project_id,
            name,
            secret,
            owner_ref,
            redacted_value or redact(secret),
            created_at if created_at is not None else self.now(),
            last_used_at,
            owner_project_access,
            list(scopes or []),
        )
        with self._lock:
            self.keys[key.id] = key
        return {**key.to_api(), "value": secret, "project_id": project_id}

    def add_usage(
        self,
        api_key_id: str,
        minute_ts: int,
        input_tokens: int,
        output_tokens: int,
        num_model_requests: int,
        *,
        model: str = "gpt-4o-mini",
        project_id: str | None = None,
        user_id: str | None = None,
    ) -> UsageRecord:
        key = self.keys.get(api_key_id) or self.deleted_keys.get(api_key_id)
        rec = UsageRecord(
            api_key_id,
            project_id or (key.project_id if key else None),
            minute_ts - minute_ts % 60,
            input_tokens,
            output_tokens,
            num_model_requests,
            model,
            user_id,
        )
        with self._lock:
            self.usage.append(rec)
        return rec

    def add_audit_event(
        self,
        event_type: str,
        details: dict[str, Any],
        *,
        project_id: str | None = None,
        effective_at: int | None = None,
        actor: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        at = effective_at if effective_at is not None else self.now()
        day = datetime.fromtimestamp(at, UTC).strftime("%Y%m%d")
        event: dict[str, Any] = {
            "id": f"audit_log-{secrets.token_hex(8)}_{day}",
            "type": event_type,
            "effective_at": at,
            "actor": actor or self._admin_actor(),
            event_type: details,
        }
        if project_id:
            event["project"] = {"id": project_id, "name": self.projects.get(project_id, {}).get("name", "")}
        with self._lock:
            self.audit_logs.append(event)
        return event

    def authenticates(self, secret: str) -> bool:
        """Would ``secret`` be accepted by the inference endpoints right now?"""
        with self._lock:
            return secret == self.api_key or self.key_by_value(secret) is not None

    def key_by_value(self, secret: str) -> StandinKey | None:
        now = self.now()
        with self._lock:
            return next((k for k in self.keys.values() if k.value == secret and k.live(now)), None)

    def _require_project(self, project_id: str) -> None:
        if project_id not in self.projects:
            raise KeyError(f"unknown project {project_id!r}; call add_project() first")

    def _admin_actor(self) -> dict[str, Any]:
        return {
            "type": "api_key",
            "api_key": {
                "id": self.admin_key_id,
                "type": "user",
                "user": {"id": self.default_user["id"], "email": self.default_user["email"]},
            },
        }

    def _authorized(self, kind: str, token: str) -> bool:
        if kind == "admin":
            return secrets.compare_digest(token.encode(), self.admin_key.encode())
        if token == self.api_key:
            return True
        key = self.key_by_value(token)
        if key is not None:
            key.last_used_at = self.now()
        return key is not None

    @staticmethod
    def _redact_for_error(token: str) -> str:
        return f"{token[:3]}{'*' * 8}{token[-4:]}" if len(token) > 8 else "***"
