"""State objects of the OpenAI stand-in, shaped after the spec's schemas (not its older inline examples)."""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

_ALNUM = string.ascii_letters + string.digits


def rand_id(prefix: str, n: int = 16) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(n))


def new_secret(family: str = "sk-proj-") -> str:
    """A fresh secret in OpenAI's current shape: ``<family><74 chars>T3BlbkFJ<74 chars>``."""
    body = "".join(secrets.choice(_ALNUM + "-_") for _ in range(144))
    return f"{family}{body[:74]}T3BlbkFJ{body[74:]}{rand_id('', 4)}"


FAMILIES = ("sk-svcacct-", "sk-admin-", "sk-proj-", "sk-")


def redact(secret: str) -> str:
    """Redacted form: the key family and the last 4 characters, e.g. ``sk-proj-...Xy9Q``
    (the form keybot's registry uses; tests can pass their own ``redacted_value``)."""
    family = next((f for f in FAMILIES if secret.startswith(f)), secret[:3])
    return f"{family}...{secret[-4:]}"


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def now_s() -> int:
    return int(time.time())


@dataclass
class StandinServiceAccount:
    id: str
    project_id: str
    name: str
    role: str = "member"  # owner | member | none
    created_at: int = field(default_factory=now_s)

    def to_api(self) -> dict[str, Any]:
        return {
            "object": "organization.project.service_account",
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at,
        }

    def owner_ref(self) -> dict[str, Any]:
        return {
            "type": "service_account",
            "service_account": {
                "id": self.id,
                "name": self.name,
                "created_at": self.created_at,
                "role": self.role if self.role != "none" else "member",
            },
        }


@dataclass
class StandinKey:
    """A project API key. ``value`` is the secret; the API only ever shows ``redacted_value``."""

    id: str
    project_id: str
    name: str
    value: str
    owner: dict[str, Any]  # ProjectApiKey.owner: {"type": "user", "user": {...}} or service_account
    redacted_value: str
    created_at: int = field(default_factory=now_s)
    last_used_at: int | None = None
    owner_project_access: str = "active"
    scopes: list[str] = field(default_factory=list)
    expires_at: int | None = None
    deleted_at: int | None = None

    @property
    def service_account_id(self) -> str | None:
        sa = self.owner.get("service_account")
        return sa["id"] if self.owner.get("type") == "service_account" and sa else None

    def live(self, now: int) -> bool:
        return self.deleted_at is None and (self.expires_at is None or now < self.expires_at)

    def to_api(self) -> dict[str, Any]:
        return {
            "object": "organization.project.api_key",
            "redacted_value": self.redacted_value,
            "name": self.name,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "id": self.id,
            "owner_project_access": self.owner_project_access,
            "owner": self.owner,
        }


def paginate(
    items: list[dict[str, Any]], query: dict[str, list[str]], *, default_limit: int = 20, max_limit: int = 100
) -> dict[str, Any]:
    """Cursor page shape shared by the admin list endpoints (``after``/``before``/``limit``)."""
    limit = max(1, min(int((query.get("limit") or [str(default_limit)])[-1]), max_limit))
    ids = [it["id"] for it in items]
    start = 0
    if after := (query.get("after") or [""])[-1]:
        start = ids.index(after) + 1 if after in ids else len(ids)
    end_cap = len(items)
    if before := (query.get("before") or [""])[-1]:
        end_cap = ids.index(before) if before in ids else 0
        start = max(start, end_cap - limit)
    page = items[start : min(start + limit, end_cap)]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": start + len(page) < end_cap,
    }


def query_dict(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Wire query as ``{name: [values]}``; ``name[]`` is folded into ``name``, ``a[b]`` kept as is."""
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key.removesuffix("[]"), []).append(value)
    return out


def audit_matches(event: dict[str, Any], q: dict[str, list[str]]) -> bool:
    if (types := q.get("event_types")) and event["type"] not in types:
        return False
    if (pids := q.get("project_ids")) and (event.get("project") or {}).get("id") not in pids:
        return False
    if rids := q.get("resource_ids"):
        details = event.get(event["type"]) or {}
        if details.get("id") not in rids:
            return False
    if actor_ids := q.get("actor_ids"):
        actor = event.get("actor") or {}
        if not set(_actor_ids(actor)) & set(actor_ids):
            return False
    if emails := q.get("actor_emails"):
        actor = event.get("actor") or {}
        who = (actor.get("api_key") or {}).get("user") or (actor.get("session") or {}).get("user") or {}
        if who.get("email") not in emails:
            return False
    eff = event["effective_at"]
    for op, test in (("gt", eff.__gt__), ("gte", eff.__ge__), ("lt", eff.__lt__), ("lte", eff.__le__)):
        for bound in q.get(f"effective_at[{op}]", []):
            if not test(int(bound)):
                return False
    return True


def _actor_ids(actor: dict[str, Any]) -> list[str]:
    api_key = actor.get("api_key") or {}
    session = actor.get("session") or {}
    ids = [
        api_key.get("id"),
        (api_key.get("user") or {}).get("id"),
        (api_key.get("service_account") or {}).get("id"),
        (session.get("user") or {}).get("id"),
    ]
    return [i for i in ids if i]
