"""The sandbox's HTTP endpoints: which request goes to which handler, who may call it, and the handlers.

Split out of :mod:`bot.sandbox.openai_server` (state and HTTP) to keep each file short. Each handler
takes the sandbox, the parsed query and JSON body, and the ids matched in the path, and returns
``(status, JSON body)``; :func:`dispatch` runs under the sandbox's state lock.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.sandbox.openai_keys import Key, rand
from bot.sandbox.openai_wire import Json, Query, audit_matches, buckets, error, one, page

if TYPE_CHECKING:
    from bot.sandbox.openai_server import SandboxOpenAI

__all__ = ["MODELS", "dispatch"]

MODELS = ("gpt-4o-mini", "gpt-4o")
_Handler = Callable[..., tuple[int, Json]]


def dispatch(
    sandbox: SandboxOpenAI, method: str, path: str, query: Query, body: Any, token: str
) -> tuple[int, Json]:
    """One request → (status, JSON body); the caller holds the sandbox's state lock."""
    for verb, pattern, handler, auth in _ROUTES:
        match = pattern.fullmatch(path)
        if verb != method or not match:
            continue
        if auth == "admin" and not hmac.compare_digest(token.encode(), sandbox.admin_key.encode()):
            return _unauthorized(token)
        if auth == "key" and not _use_key(sandbox, token):
            return _unauthorized(token)
        return handler(sandbox, query, body if isinstance(body, dict) else {}, **match.groupdict())
    return error(404, f"Invalid URL ({method} {path})")


def _unauthorized(token: str) -> tuple[int, Json]:
    shown = f"***{token[-4:]}" if len(token) > 12 else "***"  # like the real API: never the whole key
    return error(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")


def _use_key(sb: SandboxOpenAI, token: str) -> bool:
    key = next((k for k in sb.keys.values() if hmac.compare_digest(k.value, token)), None)
    if key is not None:
        key.last_used_at = sb.now()
    return key is not None


def _key_in(sb: SandboxOpenAI, project_id: str, key_id: str) -> Key | None:
    key = sb.keys.get(key_id)
    return key if key is not None and key.project == project_id else None


def _public(sa: Json) -> Json:
    return {k: v for k, v in sa.items() if not k.startswith("_")}


def _list_projects(sb: SandboxOpenAI, query: Query, body: Json) -> tuple[int, Json]:
    archived = one(query, "include_archived") == "true"
    items = [p for p in sb.projects.values() if archived or p["status"] == "active"]
    return 200, page(items, query)


def _get_project(sb: SandboxOpenAI, query: Query, body: Json, project_id: str) -> tuple[int, Json]:
    project = sb.projects.get(project_id)
    return (200, project) if project else error(404, f"No such project: {project_id}", "not_found")


def _list_keys(sb: SandboxOpenAI, query: Query, body: Json, project_id: str) -> tuple[int, Json]:
    if project_id not in sb.projects:
        return error(404, f"No such project: {project_id}", "not_found")
    return 200, page([k.to_api() for k in sb.keys.values() if k.project == project_id], query)


def _get_key(sb: SandboxOpenAI, query: Query, body: Json, project_id: str, key_id: str) -> tuple[int, Json]:
    key = _key_in(sb, project_id, key_id)
    return (200, key.to_api()) if key else error(404, f"No such API key: {key_id}", "not_found")


def _delete_key(
    sb: SandboxOpenAI, query: Query, body: Json, project_id: str, key_id: str
) -> tuple[int, Json]:
    key = _key_in(sb, project_id, key_id)
    if key is None:
        return error(404, f"No such API key: {key_id}", "not_found")
    del sb.keys[key.id]
    sb._audit("api_key.deleted", {"id": key.id}, project_id)
    return 200, {"object": "organization.project.api_key.deleted", "id": key.id, "deleted": True}


def _update_key(
    sb: SandboxOpenAI, query: Query, body: Json, project_id: str, key_id: str
) -> tuple[int, Json]:
    key = _key_in(sb, project_id, key_id)
    if key is None:
        return error(404, f"No such API key: {key_id}", "not_found")
    scopes = body.get("scopes")
    if not isinstance(scopes, list):
        return error(400, "Provide scopes (array).", param="scopes")
    key.scopes = [str(s) for s in scopes]
    sb._audit("api_key.updated", {"id": key.id, "changes_requested": {"scopes": key.scopes}}, project_id)
    return 200, key.to_api()


def _list_accounts(sb: SandboxOpenAI, query: Query, body: Json, project_id: str) -> tuple[int, Json]:
    if project_id not in sb.projects:
        return error(404, f"No such project: {project_id}", "not_found")
    items = [sa for sa in sb.service_accounts.values() if sa["_project"] == project_id]
    return 200, page([_public(sa) for sa in items], query)


def _create_account(sb: SandboxOpenAI, query: Query, body: Json, project_id: str) -> tuple[int, Json]:
    if project_id not in sb.projects:
        return error(404, f"No such project: {project_id}", "not_found")
    if not isinstance(body.get("name"), str) or not body["name"]:
        return error(400, "Missing required parameter: 'name'.", param="name")
    only = bool(body.get("create_service_account_only"))
    sa: Json = {
        "object": "organization.project.service_account",
        "id": "svc_acct_" + rand(16),
        "name": body["name"],
        "role": "none" if only else "member",
        "created_at": sb.now(),
        "_project": project_id,
    }
    sb.service_accounts[sa["id"]] = sa
    sb._audit("service_account.created", {"id": sa["id"], "data": {"role": sa["role"]}}, project_id)
    if only:
        return 200, {**_public(sa), "api_key": None}
    owner_sa = {k: sa[k] for k in ("id", "name", "created_at")} | {"role": "member"}
    owner = {"type": "service_account", "service_account": owner_sa}
    key = sb._new_key(project_id, "Secret Key", "sk-svcacct-", owner)
    api_key = {
        "object": "organization.project.service_account.api_key",
        "id": key.id,
        "name": key.name,
        "created_at": key.created_at,
        "value": key.value,  # shown once, exactly like the real API
    }
    return 200, {**_public(sa), "api_key": api_key}


def _get_account(
    sb: SandboxOpenAI, query: Query, body: Json, project_id: str, account_id: str
) -> tuple[int, Json]:
    sa = sb.service_accounts.get(account_id)
    if sa is None or sa["_project"] != project_id:
        return error(404, f"No such service account: {account_id}", "not_found")
    return 200, _public(sa)


def _delete_account(
    sb: SandboxOpenAI, query: Query, body: Json, project_id: str, account_id: str
) -> tuple[int, Json]:
    status, found = _get_account(sb, query, body, project_id, account_id)
    if status != 200:
        return status, found
    for key in [k for k in sb.keys.values() if k.owner.get("service_account", {}).get("id") == account_id]:
        del sb.keys[key.id]
        sb._audit("api_key.deleted", {"id": key.id}, project_id)
    del sb.service_accounts[account_id]
    sb._audit("service_account.deleted", {"id": account_id}, project_id)
    return 200, {
        "object": "organization.project.service_account.deleted",
        "id": account_id,
        "deleted": True,
    }


def _audit_logs(sb: SandboxOpenAI, query: Query, body: Json) -> tuple[int, Json]:
    return 200, page([e for e in reversed(sb.audit_log) if audit_matches(e, query)], query)


def _usage_completions(sb: SandboxOpenAI, query: Query, body: Json) -> tuple[int, Json]:
    return buckets(sb.traffic, query, now=sb.now(), costs=False)


def _costs(sb: SandboxOpenAI, query: Query, body: Json) -> tuple[int, Json]:
    return buckets(sb.traffic, query, now=sb.now(), costs=True)


def _models(sb: SandboxOpenAI, query: Query, body: Json) -> tuple[int, Json]:
    data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"} for m in MODELS]
    return 200, {"object": "list", "data": data}


_P = "/v1/organization/projects/(?P<project_id>[^/]+)"
_ROUTES: tuple[tuple[str, re.Pattern[str], _Handler, str], ...] = tuple(
    (verb, re.compile(pattern), handler, auth)
    for verb, pattern, handler, auth in (
        ("GET", "/v1/organization/projects", _list_projects, "admin"),
        ("GET", _P, _get_project, "admin"),
        ("GET", _P + "/api_keys", _list_keys, "admin"),
        ("GET", _P + "/api_keys/(?P<key_id>[^/]+)", _get_key, "admin"),
        ("DELETE", _P + "/api_keys/(?P<key_id>[^/]+)", _delete_key, "admin"),
        ("POST", _P + "/api_keys/(?P<key_id>[^/]+)", _update_key, "admin"),
        ("GET", _P + "/service_accounts", _list_accounts, "admin"),
        ("POST", _P + "/service_accounts", _create_account, "admin"),
        ("GET", _P + "/service_accounts/(?P<account_id>[^/]+)", _get_account, "admin"),
        ("DELETE", _P + "/service_accounts/(?P<account_id>[^/]+)", _delete_account, "admin"),
        ("GET", "/v1/organization/audit_logs", _audit_logs, "admin"),
        ("GET", "/v1/organization/usage/completions", _usage_completions, "admin"),
        ("GET", "/v1/organization/costs", _costs, "admin"),
        ("GET", "/v1/models", _models, "key"),
    )
)
