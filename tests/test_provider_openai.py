"""OpenAIAdminProvider through the real openai SDK against the spec-validating OpenAI stand-in."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from bot.providers.base import KeyProvider, KeyRef, ProviderError, ProviderErrorKind
from bot.providers.openai_admin import (
    OpenAIAdminProvider,
    ServiceAccountDeletionRequired,
    account_name,
)
from tests.standins import fixtures as standin_fixtures
from tests.standins.openai_api import OpenAIStandin

# The stand-in fixtures, so this module works whether or not conftest.py loads them; bound as names (not
# imported) so that test parameters of the same name are not flagged as redefinitions (ruff F811).
openai_standin = standin_fixtures.openai_standin
openai_standin_server = standin_fixtures.openai_standin_server

Kind = ProviderErrorKind


def _provider(standin: OpenAIStandin, **kwargs: Any) -> OpenAIAdminProvider:
    kwargs.setdefault("timeout", 5.0)
    return OpenAIAdminProvider(SecretStr(standin.admin_key), standin.base_url, **kwargs)


@pytest.fixture
def provider(openai_standin: OpenAIStandin) -> Iterator[OpenAIAdminProvider]:
    p = _provider(openai_standin)
    yield p
    p.close()


@pytest.fixture
def project(openai_standin: OpenAIStandin) -> dict[str, Any]:
    return openai_standin.add_project("Payments prod")


def _ref(key: dict[str, Any], *, project: bool = True) -> KeyRef:
    return KeyRef(key["id"], key["project_id"] if project else None, key["redacted_value"], key["name"])


def test_is_a_key_provider(provider: OpenAIAdminProvider, openai_standin: OpenAIStandin) -> None:
    as_protocol: KeyProvider = provider
    assert as_protocol.name == "openai"
    assert account_name("run-1:mint") == "keybot-run-1:mint"
    long = account_name("x" * 200)
    assert len(long) == 64 and long.startswith("keybot-xxx") and long != account_name("x" * 199)
    openai_standin.assert_no_validation_errors()


def test_find_by_id_by_redacted_and_across_projects(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    other = openai_standin.add_project("Analytics")
    user_key = openai_standin.add_key(project["id"], "checkout", created_at=1_700_000_000)
    sa_key = openai_standin.add_key(other["id"], "batch", owner="service_account")
    # an owner who lost project access: only visible with owner_project_access=any
    orphan = openai_standin.add_key(other["id"], "ex-employee", owner_project_access="inactive")

    found = provider.find(_ref(user_key))
    assert found is not None and found.id == user_key["id"] and found.project == project["id"]
    assert found.owner_kind == "user" and found.owner_id == openai_standin.default_user["id"]
    assert found.created_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert found.redacted == "sk-proj-..." + user_key["value"][-4:]

    across = provider.find(KeyRef(sa_key["id"], None))
    assert across is not None and across.project == other["id"]
    assert (
        across.owner_kind == "service_account" and across.owner_id == sa_key["owner"]["service_account"]["id"]
    )

    by_redacted = provider.find(KeyRef(None, None, orphan["redacted_value"]))
    assert by_redacted is not None and by_redacted.id == orphan["id"]
    # a registry row in the legacy family form still matches: "sk-" is compatible with "sk-proj-"
    legacy = provider.find(KeyRef(None, project["id"], "sk-..." + user_key["value"][-4:]))
    assert legacy is not None and legacy.id == user_key["id"]
    assert provider.find(KeyRef(None, project["id"], "sk-svcacct-..." + user_key["value"][-4:])) is None
    assert provider.find(KeyRef("key_doesnotexist", project["id"])) is None
    assert provider.find(KeyRef("key_doesnotexist", None)) is None
    assert provider.find(KeyRef(user_key["id"], "proj_doesnotexist")) is None
    assert {c.query.get("owner_project_access", [""])[0] for c in openai_standin.calls_to(r"/api_keys$")} == {
        "any"
    }
    openai_standin.assert_no_validation_errors()


def test_ambiguous_redacted_value_is_refused_unless_the_name_decides(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    a = openai_standin.add_key(project["id"], "one", redacted_value="sk-proj-...Ab12")
    openai_standin.add_key(project["id"], "two", redacted_value="sk-proj-...Ab12")
    with pytest.raises(ProviderError) as err:
        provider.find(KeyRef(None, None, "sk-proj-...Ab12"))
    assert err.value.kind is Kind.PERMANENT and "matches 2" in str(err.value)
    named = provider.find(KeyRef(None, None, "sk-proj-...Ab12", name="one"))
    assert named is not None and named.id == a["id"]
    with pytest.raises(ProviderError):
        provider.find(KeyRef(None, None, "not redacted at all"))
    openai_standin.assert_no_validation_errors()


def test_revoke_is_idempotent_kills_the_key_and_is_audited(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    leaked = openai_standin.add_key(project["id"], "leaked")
    secret = SecretStr(leaked["value"])
    start = datetime.now(UTC) - timedelta(seconds=5)
    assert provider.authenticates(secret)

    assert provider.revoke(_ref(leaked, project=False), idempotency_key="run-1:revoke") is True
    assert provider.find(_ref(leaked)) is None
    assert provider.revoke(_ref(leaked), idempotency_key="run-1:revoke") is False
    assert not provider.authenticates(secret)

    events = provider.audit_events(_ref(leaked), start, datetime.now(UTC) + timedelta(seconds=5))
    assert [e.type for e in events] == ["api_key.deleted"]
    assert events[0].details["id"] == leaked["id"] and events[0].details["project"]["id"] == project["id"]
    assert events[0].actor == openai_standin.default_user["email"]
    openai_standin.assert_no_validation_errors()


def test_revoke_between_find_and_delete_counts_as_already_gone(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    key = openai_standin.add_key(project["id"], "k")
    openai_standin.inject(r"/api_keys/key_", 404, method="DELETE")
    assert provider.revoke(_ref(key), idempotency_key="run-2:revoke") is False
    openai_standin.assert_no_validation_errors()


def test_service_account_key_needs_confirmed_account_deletion(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    openai_standin.service_account_key_delete_error = True
    sa = openai_standin.add_service_account(project["id"], "batch")
    leaked = openai_standin.add_key(project["id"], "leaked", service_account_id=sa.id)
    sibling = openai_standin.add_key(project["id"], "sibling", service_account_id=sa.id)

    with pytest.raises(ServiceAccountDeletionRequired) as err:
        provider.revoke(_ref(leaked), idempotency_key="run-3:revoke")
    assert err.value.kind is Kind.PERMANENT and err.value.service_account_id == sa.id
    assert sa.id in str(err.value) and "confirm" in str(err.value) and "other keys" in str(err.value)
    # nothing was deleted behind the engine's back
    assert openai_standin.authenticates(leaked["value"]) and openai_standin.authenticates(sibling["value"])

    assert provider.revoke_service_account(project["id"], sa.id) is True
    assert not provider.authenticates(SecretStr(leaked["value"]))
    assert not openai_standin.authenticates(sibling["value"])
    assert provider.revoke_service_account(project["id"], sa.id) is False
    assert provider.revoke(_ref(leaked), idempotency_key="run-3:revoke") is False
    openai_standin.assert_no_validation_errors()


def _accounts(standin: OpenAIStandin, project_id: str, name: str) -> list[str]:
    return [
        sa.id for sa in standin.service_accounts.values() if sa.project_id == project_id and sa.name == name
    ]


def test_mint_returns_a_working_key_once(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    old = openai_standin.add_key(project["id"], "checkout")
    minted = provider.mint(_ref(old, project=False), idempotency_key="run-4:mint")
    value = minted.value.get_secret_value()
    assert value.startswith("sk-svcacct-") and value not in repr(minted)
    assert minted.redacted == "sk-svcacct-..." + value[-4:]
    assert provider.authenticates(minted.value)
    assert _accounts(openai_standin, project["id"], "keybot-run-4:mint") == [minted.owner_id]
    new = provider.find(KeyRef(minted.key_id, project["id"]))
    assert new is not None and new.owner_id == minted.owner_id and new.redacted == minted.redacted
    openai_standin.assert_no_validation_errors()


def test_remint_after_a_crash_replaces_the_orphaned_account(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    # an earlier attempt created the account, then crashed before the value reached Vault
    orphan = openai_standin.add_service_account(project["id"], "keybot-run-5:mint")
    lost = openai_standin.add_key(project["id"], "Secret Key", service_account_id=orphan.id)
    openai_standin.add_service_account(project["id"], "keybot-run-6:mint")  # another run's: untouched

    minted = provider.mint(KeyRef(None, project["id"]), idempotency_key="run-5:mint")
    assert _accounts(openai_standin, project["id"], "keybot-run-5:mint") == [minted.owner_id]
    assert minted.owner_id != orphan.id
    assert not openai_standin.authenticates(lost["value"]) and provider.authenticates(minted.value)
    assert len(_accounts(openai_standin, project["id"], "keybot-run-6:mint")) == 1

    again = provider.mint(KeyRef(None, project["id"]), idempotency_key="run-5:mint")
    assert _accounts(openai_standin, project["id"], "keybot-run-5:mint") == [again.owner_id]
    assert not provider.authenticates(minted.value)
    openai_standin.assert_no_validation_errors()


def test_mint_create_is_not_blindly_retried(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    openai_standin.inject(r"/service_accounts$", 500, method="POST", retry_after=0.01)
    with pytest.raises(ProviderError) as err:
        provider.mint(KeyRef(None, project["id"]), idempotency_key="run-7:mint")
    assert err.value.transient and err.value.status == 500
    assert len(openai_standin.calls_to(r"/service_accounts$", "POST")) == 1
    minted = provider.mint(KeyRef(None, project["id"]), idempotency_key="run-7:mint")  # the engine's retry
    assert provider.authenticates(minted.value)
    openai_standin.assert_no_validation_errors()


def test_usage_costs_and_audit_events_in_a_window(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    a = openai_standin.add_key(project["id"], "a")
    b = openai_standin.add_key(project["id"], "b")
    t0 = 1_750_000_000 - 1_750_000_000 % 86400
    openai_standin.add_usage(a["id"], t0 + 60, 100, 10, 2)
    openai_standin.add_usage(a["id"], t0 + 90, 50, 5, 1, model="gpt-4o")
    openai_standin.add_usage(b["id"], t0 + 120, 1000, 900, 7)
    openai_standin.add_usage(a["id"], t0 + 7 * 86400 + 30, 1, 1, 1)  # only in the long window
    start = datetime.fromtimestamp(t0, UTC)

    buckets = provider.usage(_ref(a), start, start + timedelta(minutes=5))
    assert [(bk.start - start).seconds for bk in buckets] == [0, 60, 120, 180, 240]
    assert [(bk.requests, bk.input_tokens, bk.output_tokens) for bk in buckets if bk.requests] == [
        (3, 150, 15)
    ]
    (call,) = openai_standin.calls_to("/usage/completions")
    assert call.query["group_by"] == ["api_key_id"] and call.query["api_key_ids"] == [a["id"]]
    assert call.query["bucket_width"] == ["1m"]

    hourly = provider.usage(_ref(a), start, start + timedelta(days=8))
    assert len(hourly) == 8 * 24 and all(bk.end - bk.start == timedelta(hours=1) for bk in hourly)
    assert sum(bk.requests for bk in hourly) == 4
    pages = openai_standin.calls_to("/usage/completions")[1:]
    assert [c.query["bucket_width"] for c in pages] == [["1h"], ["1h"]] and "page" in pages[1].query

    (day,) = provider.costs(_ref(a), start, start + timedelta(hours=1))
    assert day.cost_usd == pytest.approx(100 * 0.15e-6 + 10 * 0.6e-6 + 50 * 2.5e-6 + 5 * 10e-6)

    openai_standin.add_audit_event("api_key.updated", {"id": a["id"]}, effective_at=t0 - 10)
    openai_standin.add_audit_event("api_key.created", {"id": a["id"]}, effective_at=t0 + 20)
    openai_standin.add_audit_event("api_key.deleted", {"id": a["id"]}, effective_at=t0 + 10)
    openai_standin.add_audit_event("api_key.deleted", {"id": b["id"]}, effective_at=t0 + 15)
    events = provider.audit_events(_ref(a), start, start + timedelta(minutes=1))
    assert [(e.type, int(e.effective_at.timestamp())) for e in events] == [
        ("api_key.deleted", t0 + 10),
        ("api_key.created", t0 + 20),
    ]
    (audit_call,) = openai_standin.calls_to("/audit_logs")
    assert audit_call.query["resource_ids"] == [a["id"]]
    assert audit_call.query["effective_at[gte]"] == [str(t0)]
    openai_standin.assert_no_validation_errors()


def test_contain_narrows_scopes_reversibly(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    minted = provider.mint(KeyRef(None, project["id"]), idempotency_key="run-8:mint")
    ref = KeyRef(minted.key_id, project["id"])
    previous = provider.contain(ref)
    assert previous == []  # as created: unrestricted
    assert openai_standin.keys[minted.key_id].scopes == ["api.all.read"]
    (update,) = openai_standin.calls_to(r"/api_keys/key_", "POST")
    assert update.json == {"scopes": ["api.all.read"]}
    assert provider.contain(ref, scopes=["api.model.read"]) == ["api.all.read"]  # read back from audit
    restored = provider.restore_scopes(ref, previous)
    assert restored.id == minted.key_id and openai_standin.keys[minted.key_id].scopes == []
    with pytest.raises(ValueError, match="ALL permissions"):
        provider.contain(ref, scopes=[])
    openai_standin.assert_no_validation_errors()


def test_rate_limit_with_retry_after_is_retried_transparently(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    key = openai_standin.add_key(project["id"], "k")
    openai_standin.inject(r"/api_keys/key_", 429, retry_after=0.05)
    found = provider.find(_ref(key))
    assert found is not None and found.id == key["id"]
    assert [c.status for c in openai_standin.calls_to(r"/api_keys/key_")] == [429, 200]
    openai_standin.assert_no_validation_errors()


def test_persistent_server_error_is_transient(openai_standin: OpenAIStandin, project: dict[str, Any]) -> None:
    key = openai_standin.add_key(project["id"], "k")
    openai_standin.inject(r"/api_keys", 500, times=None, retry_after=0.01)
    provider = _provider(openai_standin, max_retries=1)
    with pytest.raises(ProviderError) as err:
        provider.revoke(_ref(key), idempotency_key="run-9:revoke")
    assert err.value.kind is Kind.TRANSIENT and err.value.status == 500 and err.value.transient
    assert len(openai_standin.calls_to(r"/api_keys")) == 2  # bounded: one try + one retry
    openai_standin.assert_no_validation_errors()


def test_rejected_admin_key_is_permanent_and_named(
    openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    wrong = "sk-admin-wrong-key-0000000000000000WXYZ"
    provider = OpenAIAdminProvider(SecretStr(wrong), openai_standin.base_url)
    with pytest.raises(ProviderError) as err:
        provider.find(KeyRef("key_abc", project["id"]))
    assert err.value.kind is Kind.PERMANENT and err.value.status == 401
    assert "OPENAI_ADMIN_KEY" in str(err.value) and "WXYZ" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    openai_standin.assert_no_validation_errors()


def test_forbidden_and_bad_request_are_permanent(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    key = openai_standin.add_key(project["id"], "k")
    openai_standin.inject(r"/api_keys/key_", 403)
    with pytest.raises(ProviderError) as err:
        provider.find(_ref(key))
    assert err.value.kind is Kind.PERMANENT and err.value.status == 403
    assert "insufficient_permissions" in str(err.value)
    openai_standin.inject(r"/api_keys/key_", 400, method="DELETE", message="echo " + key["value"])
    with pytest.raises(ProviderError) as err:
        provider.revoke(_ref(key), idempotency_key="run-10:revoke")
    assert err.value.kind is Kind.PERMANENT and err.value.status == 400
    assert key["value"] not in str(err.value) and not isinstance(err.value, ServiceAccountDeletionRequired)
    openai_standin.assert_no_validation_errors()


def test_slow_answer_beyond_timeout_is_transient(
    openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    key = openai_standin.add_key(project["id"], "k")
    provider = _provider(openai_standin, timeout=0.3, max_retries=0)
    openai_standin.inject(r"/api_keys/key_", status=None, delay=1.0)
    began = time.monotonic()
    with pytest.raises(ProviderError) as err:
        provider.find(_ref(key))
    assert err.value.kind is Kind.TRANSIENT and time.monotonic() - began < 0.9
    openai_standin.inject("/models", status=None, delay=1.0)
    with pytest.raises(ProviderError) as err:
        provider.authenticates(SecretStr(key["value"]))
    assert err.value.transient
    time.sleep(0.8)  # let the stand-in finish the slow answers before it is reset
    openai_standin.assert_no_validation_errors()


def test_no_secret_reaches_a_log_record_or_an_exception(
    openai_standin: OpenAIStandin, project: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    for name in (None, "openai", "httpx2", "httpx", "bot"):
        caplog.set_level(logging.DEBUG, logger=name)
    provider = _provider(openai_standin, max_retries=1)
    leaked = openai_standin.add_key(project["id"], "leaked")
    secrets = [leaked["value"], openai_standin.admin_key]
    errors: list[BaseException] = []

    minted = provider.mint(_ref(leaked), idempotency_key="run-11:mint")
    secrets.append(minted.value.get_secret_value())
    assert provider.authenticates(minted.value) and provider.authenticates(SecretStr(leaked["value"]))
    openai_standin.inject("/models", 500, times=None, retry_after=0.01)
    with pytest.raises(ProviderError) as err:
        provider.authenticates(SecretStr(leaked["value"]))
    errors.append(err.value)
    openai_standin.faults.clear()
    openai_standin.inject(r"/service_accounts$", 400, method="POST", message="bad " + leaked["value"])
    with pytest.raises(ProviderError) as err:
        provider.mint(_ref(leaked), idempotency_key="run-11:mint")
    errors.append(err.value)
    assert provider.revoke(_ref(leaked), idempotency_key="run-11:revoke")
    assert not provider.authenticates(SecretStr(leaked["value"]))

    assert caplog.records, "expected the provider and the SDK to log something"
    logged = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    raised = "\n".join(f"{e!s} {e!r} {e.args!r}" for e in errors)
    for secret in secrets:
        assert secret not in logged and secret not in raised
    openai_standin.assert_no_validation_errors()


def test_first_mint_attempt_does_not_list_the_project(
    provider: OpenAIAdminProvider, openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    """The engine says when nothing was ever tried under a key: then there is nothing to sweep."""
    minted = provider.mint(KeyRef(None, project["id"]), idempotency_key="run-12:mint", first_attempt=True)
    assert openai_standin.calls_to(r"/service_accounts$", "GET") == []
    assert _accounts(openai_standin, project["id"], "keybot-run-12:mint") == [minted.owner_id]
    again = provider.mint(KeyRef(None, project["id"]), idempotency_key="run-12:mint")
    assert len(openai_standin.calls_to(r"/service_accounts$", "GET")) == 1
    assert _accounts(openai_standin, project["id"], "keybot-run-12:mint") == [again.owner_id]
    openai_standin.assert_no_validation_errors()
