"""Route table and endpoint handlers of :class:`tests.standins.openai_api.OpenAIStandin`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._http import Reply
from ._openai_seed import OpenAIState
from ._openai_state import (
    StandinKey,
    StandinServiceAccount,
    audit_matches,
    error_body,
    paginate,
    rand_id,
)
from ._openai_usage import UsageRecord, completions_page, costs_page, parse_query

if TYPE_CHECKING:
    from .openai_api import OpenAICall


@dataclass(frozen=True)
class Route:
    method: str
    regex: re.Pattern[str]
    spec_pattern: str | None  # None: not in the spec, so not validated
    auth: str  # "admin" | "inference"
    handler: str


def _route(method: str, pattern: str, handler: str, auth: str = "admin", in_spec: bool = True) -> Route:
    regex = re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern))
    return Route(method, regex, pattern if in_spec else None, auth, handler)


_P = "/organization/projects/{project_id}"
ROUTES: tuple[Route, ...] = (
    _route("GET", "/organization/projects", "h_list_projects"),
    _route("GET", _P, "h_get_project"),
    _route("GET", _P + "/api_keys", "h_list_keys"),
    _route("GET", _P + "/api_keys/{api_key_id}", "h_get_key"),
    _route("DELETE", _P + "/api_keys/{api_key_id}", "h_delete_key"),
    # scopes/expiry update exists in the pinned SDK but not in the spec: answered, not validated
    _route("POST", _P + "/api_keys/{api_key_id}", "h_update_key", in_spec=False),
    _route("GET", _P + "/service_accounts", "h_list_sas"),
    _route("POST", _P + "/service_accounts", "h_create_sa"),
    _route("GET", _P + "/service_accounts/{service_account_id}", "h_get_sa"),
    _route("DELETE", _P + "/service_accounts/{service_account_id}", "h_delete_sa"),
    _route("POST", _P + "/service_accounts/{service_account_id}/api_keys", "h_create_sa_key"),
    _route("GET", "/organization/audit_logs", "h_audit_logs"),
    _route("GET", "/organization/usage/completions", "h_usage_completions"),
    _route("GET", "/organization/costs", "h_costs"),
    _route("GET", "/models", "h_models", auth="inference"),
    _route("GET", "/models/{model}", "h_get_model", auth="inference"),
    _route("POST", "/chat/completions", "h_chat", auth="inference"),
)

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1")


def _not_found(what: str) -> Reply:
    return Reply.json(error_body(f"No such {what}", code="not_found"), 404)


class RouteHandlers(OpenAIState):
    """Endpoint handlers; called with the stand-in's lock held."""

    # ---- handlers: projects and keys --------------------------------------------------------
    def h_list_projects(self, call: OpenAICall, **_: Any) -> Reply:
        archived = (call.query.get("include_archived") or ["false"])[-1] == "true"
        items = [p for p in self.projects.values() if archived or p["status"] != "archived"]
        return Reply.json(paginate(items, call.query))

    def h_get_project(self, call: OpenAICall, project_id: str, **_: Any) -> Reply:
        project = self.projects.get(project_id)
        return Reply.json(project) if project else _not_found(f"project: {project_id}")

    def h_list_keys(self, call: OpenAICall, project_id: str, **_: Any) -> Reply:
        if project_id not in self.projects:
            return _not_found(f"project: {project_id}")
        access = (call.query.get("owner_project_access") or ["active"])[-1]
        items = [
            k.to_api()
            for k in self.keys.values()
            if k.project_id == project_id and (access == "any" or k.owner_project_access == access)
        ]
        return Reply.json(paginate(items, call.query))

    def _project_key(self, project_id: str, api_key_id: str) -> StandinKey | None:
        key = self.keys.get(api_key_id)
        return key if key is not None and key.project_id == project_id else None

    def h_get_key(self, call: OpenAICall, project_id: str, api_key_id: str, **_: Any) -> Reply:
        key = self._project_key(project_id, api_key_id)
        return Reply.json(key.to_api()) if key else _not_found(f"API key: {api_key_id}")

    def h_delete_key(self, call: OpenAICall, project_id: str, api_key_id: str, **_: Any) -> Reply:
        key = self._project_key(project_id, api_key_id)
        if key is None:
            return _not_found(f"API key: {api_key_id}")
        if self.service_account_key_delete_error and key.service_account_id:
            return Reply.json(
                error_body(
                    "API keys owned by service accounts cannot be deleted; delete the "
                    "service account instead.",
                    param="api_key_id",
                ),
                400,
            )
        self._delete_key(key)
        return Reply.json({"object": "organization.project.api_key.deleted", "id": key.id, "deleted": True})

    def _delete_key(self, key: StandinKey) -> None:
        key.deleted_at = self.now()
        self.deleted_keys[key.id] = self.keys.pop(key.id)
        self.add_audit_event("api_key.deleted", {"id": key.id}, project_id=key.project_id)

    def h_update_key(self, call: OpenAICall, project_id: str, api_key_id: str, **_: Any) -> Reply:
        key = self._project_key(project_id, api_key_id)
        if key is None:
            return _not_found(f"API key: {api_key_id}")
        body = call.json if isinstance(call.json, dict) else {}
        scopes, expires = body.get("scopes"), body.get("expires_in_seconds")
        if (scopes is None and expires is None) or (scopes is not None and not isinstance(scopes, list)):
            return Reply.json(
                error_body("Provide scopes (array) and/or expires_in_seconds.", param="scopes"), 400
            )
        if scopes is not None:
            key.scopes = [str(s) for s in scopes]
        if expires is not None:
            key.expires_at = self.now() + int(expires)
        self.add_audit_event(
            "api_key.updated",
            {"id": key.id, "changes_requested": {"scopes": key.scopes}},
            project_id=project_id,
        )
        return Reply.json(key.to_api())

    # ---- handlers: service accounts ---------------------------------------------------------
    def _project_sa(self, project_id: str, sa_id: str) -> StandinServiceAccount | None:
        sa = self.service_accounts.get(sa_id)
        return sa if sa is not None and sa.project_id == project_id else None

    def h_list_sas(self, call: OpenAICall, project_id: str, **_: Any) -> Reply:
        if project_id not in self.projects:
            return _not_found(f"project: {project_id}")
        items = [sa.to_api() for sa in self.service_accounts.values() if sa.project_id == project_id]
        return Reply.json(paginate(items, call.query))

    def h_get_sa(self, call: OpenAICall, project_id: str, service_account_id: str, **_: Any) -> Reply:
        sa = self._project_sa(project_id, service_account_id)
        return Reply.json(sa.to_api()) if sa else _not_found(f"service account: {service_account_id}")

    def _mint_sa_key(
        self, sa: StandinServiceAccount, name: str, scopes: list[str], expires_in: int | None
    ) -> dict[str, Any]:
        created = self.add_key(
            sa.project_id, name, owner="service_account", service_account_id=sa.id, scopes=scopes
        )
        if expires_in is not None:
            self.keys[created["id"]].expires_at = self.now() + expires_in
        self.add_audit_event(
            "api_key.created", {"id": created["id"], "data": {"scopes": scopes}}, project_id=sa.project_id
        )
        return {
            "object": "organization.project.service_account.api_key",
            "value": created["value"],
            "name": name,
            "created_at": created["created_at"],
            "id": created["id"],
        }

    def h_create_sa(self, call: OpenAICall, project_id: str, **_: Any) -> Reply:
        if project_id not in self.projects:
            return _not_found(f"project: {project_id}")
        body = call.json if isinstance(call.json, dict) else {}
        only = bool(body.get("create_service_account_only"))
        sa = self.add_service_account(project_id, str(body.get("name")), role="none" if only else "member")
        self.add_audit_event(
            "service_account.created", {"id": sa.id, "data": {"role": sa.role}}, project_id=project_id
        )
        api_key = None if only else self._mint_sa_key(sa, "Secret Key", [], body.get("expires_in_seconds"))
        return Reply.json({**sa.to_api(), "api_key": api_key})

    def h_create_sa_key(self, call: OpenAICall, project_id: str, service_account_id: str, **_: Any) -> Reply:
        sa = self._project_sa(project_id, service_account_id)
        if sa is None:
            return _not_found(f"service account: {service_account_id}")
        body = call.json if isinstance(call.json, dict) else {}
        return Reply.json(
            self._mint_sa_key(
                sa,
                str(body.get("name") or "Secret Key"),
                list(body.get("scopes") or []),
                body.get("expires_in_seconds"),
            )
        )

    def h_delete_sa(self, call: OpenAICall, project_id: str, service_account_id: str, **_: Any) -> Reply:
        sa = self._project_sa(project_id, service_account_id)
        if sa is None:
            return _not_found(f"service account: {service_account_id}")
        for key in [k for k in self.keys.values() if k.service_account_id == sa.id]:
            self._delete_key(key)
        del self.service_accounts[sa.id]
        self.add_audit_event("service_account.deleted", {"id": sa.id}, project_id=project_id)
        return Reply.json(
            {"object": "organization.project.service_account.deleted", "id": sa.id, "deleted": True}
        )

    # ---- handlers: audit, usage, costs ------------------------------------------------------
    def h_audit_logs(self, call: OpenAICall, **_: Any) -> Reply:
        events = [e for e in reversed(self.audit_logs) if audit_matches(e, call.query)]
        return Reply.json(paginate(events, call.query))

    def h_usage_completions(self, call: OpenAICall, **_: Any) -> Reply:
        return Reply.json(
            completions_page(parse_query(call.query_pairs, now=self.now(), costs=False), list(self.usage))
        )

    def h_costs(self, call: OpenAICall, **_: Any) -> Reply:
        return Reply.json(
            costs_page(parse_query(call.query_pairs, now=self.now(), costs=True), list(self.usage))
        )

    # ---- handlers: inference ----------------------------------------------------------------
    def h_models(self, call: OpenAICall, **_: Any) -> Reply:
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "system"} for m in MODELS]
        return Reply.json({"object": "list", "data": data})

    def h_get_model(self, call: OpenAICall, model: str, **_: Any) -> Reply:
        if model not in MODELS:
            return Reply.json(error_body(f"The model '{model}' does not exist", code="model_not_found"), 404)
        return Reply.json({"id": model, "object": "model", "created": 1700000000, "owned_by": "system"})

    def h_chat(self, call: OpenAICall, token: str, **_: Any) -> Reply:
        body = call.json if isinstance(call.json, dict) else {}
        if body.get("stream"):
            return Reply.json(error_body("The stand-in does not stream.", param="stream"), 400)
        reply = self.chat_reply(body) if callable(self.chat_reply) else self.chat_reply
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_tokens = len(reply.split())
        now = self.now()
        if (key := self.key_by_value(token)) is not None:
            self.usage.append(
                UsageRecord(
                    key.id,
                    key.project_id,
                    now - now % 60,
                    prompt_tokens,
                    completion_tokens,
                    1,
                    str(body.get("model")),
                )
            )
        return Reply.json(
            {
                "id": rand_id("chatcmpl-", 24),
                "object": "chat.completion",
                "created": now,
                "model": body.get("model"),
                "service_tier": "default",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "logprobs": None,
                        "message": {
                            "role": "assistant",
                            "content": reply,
                            "refusal": None,
                            "annotations": [],
                        },
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )
