"""VaultStore against a real OpenBao dev server: versions, CAS, states, errors, policy, audit log."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import pytest
from pydantic import SecretStr

from bot.providers.base import ProviderError, ProviderErrorKind, StoredVersion
from bot.providers.vault import MAX_CUSTOM_KEYS, VaultStore
from tests.standins import fixtures as standin_fixtures
from tests.standins.openbao import OpenBaoServer

# The OpenBao fixtures, so this module works whether or not conftest.py loads them; bound as names (not
# imported) so that test parameters of the same name are not flagged as redefinitions (ruff F811).
openbao = standin_fixtures.openbao
openbao_isolated = standin_fixtures.openbao_isolated
openbao_kv_prefix = standin_fixtures.openbao_kv_prefix

POLICY = Path(__file__).resolve().parents[1] / "runbooks" / "vault-policy.hcl"


def _canary() -> SecretStr:
    return SecretStr(f"sk-proj-KEYBOTCANARY{uuid.uuid4().hex}")


def _uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def path(openbao_kv_prefix: str) -> str:
    return f"secret/{openbao_kv_prefix}/openai"


@pytest.fixture
def store(openbao: OpenBaoServer) -> VaultStore:
    return VaultStore(openbao.client())


def _kv_path(path: str) -> str:
    return path.split("/", 1)[1]


def _custom(server: OpenBaoServer, path: str) -> dict[str, str]:
    meta = server.client().secrets.kv.v2.read_secret_metadata(path=_kv_path(path), mount_point="secret")
    return dict(meta["data"]["custom_metadata"] or {})


def _states(store: VaultStore, path: str) -> dict[int, str]:
    return {v.version: v.state for v in store.versions(path)}


def _raw_write(server: OpenBaoServer, path: str, data: dict[str, str]) -> int:
    resp = server.client().secrets.kv.v2.create_or_update_secret(
        path=_kv_path(path), secret=data, mount_point="secret"
    )
    return int(resp["data"]["version"])


def _assert_clean(exc: ProviderError, *secrets: SecretStr) -> None:
    """Nothing the engine might log (message, repr, chained cause) carries a secret."""
    for secret in secrets:
        value = secret.get_secret_value()
        assert value not in str(exc) and value not in repr(exc)
        assert all(value not in str(a) for a in exc.args)
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


def _token_with_policy(server: OpenBaoServer, policy_text: str) -> str:
    root = server.client()
    name = f"keybot-test-{_uid()}"
    root.sys.create_or_update_policy(name=name, policy=policy_text)
    return str(
        root.auth.token.create(policies=[name], no_default_policy=True, ttl="10m")["auth"]["client_token"]
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- writing versions ------------------------------------------------------------------------
def test_write_pending_writes_one_version_with_labels(
    store: VaultStore, openbao: OpenBaoServer, path: str
) -> None:
    secret = _canary()
    stored = store.write_pending(path, secret, key_id="key_new", run_id="run-1", owner="team-payments")
    assert stored == StoredVersion(path, 1, "key_new", "run-1", "pending")
    again = store.write_pending(path, _canary(), key_id="key_other", run_id="run-1")
    assert again == stored
    assert [v.version for v in store.versions(path)] == [1]
    assert store.read(path, 1).get_secret_value() == secret.get_secret_value()
    data = openbao.client().secrets.kv.v2.read_secret_version(
        path=_kv_path(path), version=1, mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert {"api_key", "key_id", "keybot_run", "minted_at"} == set(data)
    assert (data["key_id"], data["keybot_run"]) == ("key_new", "run-1")


def test_custom_metadata_layout(store: VaultStore, openbao: OpenBaoServer, path: str) -> None:
    store.write_pending(path, _canary(), key_id="key_a", run_id="run-a", owner="team-x")
    assert _custom(openbao, path) == {
        "managed_by": "keybot",
        "owner": "team-x",
        "state": "pending",
        "v1_state": "pending",
        "v1_run": "run-a",
        "v1_key_id": "key_a",
    }
    store.promote(path, 1)
    store.write_pending(path, _canary(), key_id="key_b", run_id="run-b")
    store.mark_leaked(path, 1)
    custom = _custom(openbao, path)
    assert custom["current_version"] == "1" and custom["key_id"] == "key_a"
    assert (custom["v1_state"], custom["v2_state"], custom["state"]) == ("leaked", "pending", "leaked")
    store.promote(path, 2)
    store.destroy(path, 1)
    custom = _custom(openbao, path)
    assert (custom["current_version"], custom["key_id"], custom["state"]) == ("2", "key_b", "current")
    assert (custom["v1_state"], custom["v1_run"], custom["v2_state"]) == ("destroyed", "run-a", "current")


def test_find_run_version_reads_only_metadata_when_recorded(store: VaultStore, path: str) -> None:
    assert store.find_run_version(path, "run-1") is None
    store.write_pending(path, _canary(), key_id="k1", run_id="run-1")
    store.write_pending(path, _canary(), key_id="k2", run_id="run-2")
    found = store.find_run_version(path, "run-1")
    assert found is not None and (found.version, found.key_id) == (1, "k1")
    assert store.find_run_version(path, "run-3") is None


def test_crash_between_data_and_metadata_write_is_recovered(
    store: VaultStore, openbao: OpenBaoServer, path: str
) -> None:
    _raw_write(openbao, path, {"api_key": "sk-human-written"})
    _raw_write(openbao, path, {"api_key": "sk-x", "key_id": "key_9", "keybot_run": "run-9", "minted_at": "t"})
    assert _states(store, path) == {1: "unrecorded", 2: "unrecorded"}
    found = store.find_run_version(path, "run-9")
    assert found == StoredVersion(path, 2, "key_9", "run-9", "pending")
    assert store.write_pending(path, _canary(), key_id="key_9", run_id="run-9") == found
    assert _states(store, path) == {1: "unrecorded", 2: "pending"}  # the search stops at this run's version
    assert _custom(openbao, path)["v2_run"] == "run-9"


def _interfere(
    store_client: hvac.Client, monkeypatch: pytest.MonkeyPatch, times: int, action: Callable[[], Any]
) -> None:
    """Run `action` (another writer) just before each of the next `times` CAS writes of `store_client`."""
    kv = store_client.secrets.kv.v2
    original = kv.create_or_update_secret
    left = [times]

    def write(*args: Any, **kwargs: Any) -> Any:
        if left[0] > 0:
            left[0] -= 1
            action()
        return original(*args, **kwargs)

    monkeypatch.setattr(kv, "create_or_update_secret", write)


def test_cas_conflict_with_a_stranger_retries_once(
    openbao: OpenBaoServer, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = openbao.client()
    _interfere(client, monkeypatch, 1, lambda: _raw_write(openbao, path, {"api_key": "sk-stranger"}))
    stored = VaultStore(client).write_pending(path, _canary(), key_id="k", run_id="run-1")
    assert stored.version == 2
    assert _states(VaultStore(client), path) == {1: "external", 2: "pending"}


def test_cas_conflict_every_time_is_permanent(
    openbao: OpenBaoServer, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = openbao.client()
    _interfere(client, monkeypatch, 5, lambda: _raw_write(openbao, path, {"api_key": "sk-stranger"}))
    secret = _canary()
    with pytest.raises(ProviderError) as info:
        VaultStore(client).write_pending(path, secret, key_id="k", run_id="run-1")
    assert info.value.kind is ProviderErrorKind.PERMANENT and "another writer" in str(info.value)
    _assert_clean(info.value, secret)
    assert all(v.run_id != "run-1" for v in VaultStore(client).versions(path))


def test_cas_conflict_with_this_runs_own_earlier_write_returns_it(
    openbao: OpenBaoServer, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = openbao.client()
    twin = VaultStore(openbao.client())
    _interfere(
        client, monkeypatch, 1, lambda: twin.write_pending(path, _canary(), key_id="k", run_id="run-1")
    )
    stored = VaultStore(client).write_pending(path, _canary(), key_id="k", run_id="run-1")
    assert stored.version == 1
    assert [v.version for v in twin.versions(path)] == [1]


def _parallel(n: int, fn: Callable[[int], StoredVersion]) -> list[StoredVersion | BaseException]:
    results: list[StoredVersion | BaseException] = [RuntimeError("not run")] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_attempts_of_one_run_write_one_version(openbao: OpenBaoServer, path: str) -> None:
    results = _parallel(
        4, lambda i: VaultStore(openbao.client()).write_pending(path, _canary(), key_id="k", run_id="run-1")
    )
    assert all(isinstance(r, StoredVersion) and r.version == 1 for r in results), results
    assert _states(VaultStore(openbao.client()), path) == {1: "pending"}


def test_two_concurrent_runs_both_land_and_both_are_recorded(openbao: OpenBaoServer, path: str) -> None:
    results = _parallel(
        2,
        lambda i: VaultStore(openbao.client()).write_pending(
            path, _canary(), key_id=f"k{i}", run_id=f"run-{i}"
        ),
    )
    assert sorted(r.version for r in results if isinstance(r, StoredVersion)) == [1, 2], results
    custom = _custom(openbao, path)
    assert {custom["v1_run"], custom["v2_run"]} == {"run-0", "run-1"}


# ---- state transitions -----------------------------------------------------------------------
def test_promote_then_destroy_the_leaked_version(store: VaultStore, path: str) -> None:
    old, new = _canary(), _canary()
    store.write_pending(path, old, key_id="key_old", run_id="run-0")
    store.promote(path, 1)
    store.promote(path, 1)
    assert _states(store, path) == {1: "current"}
    store.mark_leaked(path, 1)
    store.write_pending(path, new, key_id="key_new", run_id="run-1")
    store.promote(path, 2)
    assert _states(store, path) == {1: "leaked", 2: "current"}
    store.destroy(path, 1)
    store.destroy(path, 1)
    with pytest.raises(ProviderError) as info:
        store.read(path, 1)
    assert info.value.kind is ProviderErrorKind.NOT_FOUND and "destroyed" in str(info.value)
    _assert_clean(info.value, old, new)
    assert store.versions(path)[0] == StoredVersion(path, 1, "key_old", "run-0", "destroyed")
    assert store.read(path, 2).get_secret_value() == new.get_secret_value()
    with pytest.raises(ProviderError, match="destroyed"):
        store.promote(path, 1)


def test_promote_moves_old_current_to_previous(store: VaultStore, path: str) -> None:
    for run in ("run-1", "run-2", "run-3"):
        store.write_pending(path, _canary(), key_id=run, run_id=run)
    store.promote(path, 1)
    store.promote(path, 3)
    assert _states(store, path) == {1: "previous", 2: "pending", 3: "current"}


def test_destroy_refuses_the_current_version_and_unknown_versions(store: VaultStore, path: str) -> None:
    store.write_pending(path, _canary(), key_id="k", run_id="run-1")
    store.promote(path, 1)
    with pytest.raises(ProviderError, match="current") as info:
        store.destroy(path, 1)
    assert info.value.kind is ProviderErrorKind.PERMANENT
    with pytest.raises(ProviderError) as missing:
        store.destroy(path, 7)
    assert missing.value.kind is ProviderErrorKind.NOT_FOUND
    with pytest.raises(ProviderError):
        store.destroy(path, 0)


def test_soft_delete_is_reversible(store: VaultStore, openbao: OpenBaoServer, path: str) -> None:
    secret = _canary()
    store.write_pending(path, secret, key_id="k", run_id="run-1")
    store.write_pending(path, _canary(), key_id="k2", run_id="run-2")
    store.promote(path, 2)
    store.soft_delete(path, 1)
    store.soft_delete(path, 1)
    assert _states(store, path) == {1: "deleted", 2: "current"}
    with pytest.raises(ProviderError, match="deleted"):
        store.read(path, 1)
    openbao.client().secrets.kv.v2.undelete_secret_versions(
        path=_kv_path(path), versions=[1], mount_point="secret"
    )
    assert store.read(path, 1).get_secret_value() == secret.get_secret_value()


def test_versions_and_paths(store: VaultStore, openbao: OpenBaoServer, openbao_kv_prefix: str) -> None:
    assert store.versions(f"secret/{openbao_kv_prefix}/nothing-here") == []
    for bad in ("secret", "secret//x", "other/x", f"secret/data/{openbao_kv_prefix}/x", "secret/../x"):
        with pytest.raises(ProviderError) as info:
            store.versions(bad)
        assert info.value.kind is ProviderErrorKind.PERMANENT, bad
    with pytest.raises(ProviderError, match="no secrets engine") as nomount:
        VaultStore(openbao.client(), mount=None).versions(f"nomount-{_uid()}/x")
    assert nomount.value.kind is ProviderErrorKind.PERMANENT


def test_metadata_entries_follow_kv_max_versions(
    store: VaultStore, openbao: OpenBaoServer, path: str
) -> None:
    store.write_pending(path, _canary(), key_id="k0", run_id="run-0")
    openbao.client().adapter.post(f"/v1/secret/metadata/{_kv_path(path)}", json={"max_versions": 3})
    for i in range(1, 6):
        store.write_pending(path, _canary(), key_id=f"k{i}", run_id=f"run-{i}")
    assert [v.version for v in store.versions(path)] == [4, 5, 6]
    custom = _custom(openbao, path)
    assert {k.split("_")[0] for k in custom if k.startswith("v")} == {"v4", "v5", "v6"}
    assert len(custom) <= MAX_CUSTOM_KEYS


# ---- errors ----------------------------------------------------------------------------------
def test_token_without_permission_is_permanent_and_explains(openbao: OpenBaoServer, path: str) -> None:
    token = _token_with_policy(openbao, 'path "secret/metadata/*" { capabilities = ["read"] }')
    narrow = VaultStore(hvac.Client(url=openbao.addr, token=token))
    secret = _canary()
    with pytest.raises(ProviderError) as info:
        narrow.write_pending(path, secret, key_id="k", run_id="run-1")
    exc = info.value
    assert exc.kind is ProviderErrorKind.PERMANENT and exc.status == 403
    assert "runbooks/vault-policy.hcl" in str(exc) and "secret/data/*" in str(exc)
    _assert_clean(exc, secret)
    assert not narrow.health()


def test_unreachable_server_is_transient() -> None:
    dead = VaultStore(hvac.Client(url=f"http://127.0.0.1:{_closed_port()}", token="t", timeout=2))
    secret = _canary()
    calls = (
        lambda: dead.versions("secret/x/y"),
        lambda: dead.write_pending("secret/x/y", secret, key_id="k", run_id="r"),
    )
    for call in calls:
        with pytest.raises(ProviderError) as info:
            call()
        assert info.value.transient
        _assert_clean(info.value, secret)
    assert not dead.health()


def test_sealed_server_is_transient_until_unsealed(openbao_isolated: OpenBaoServer) -> None:
    store = VaultStore(openbao_isolated.client())
    path = "secret/sealed/openai"
    store.write_pending(path, _canary(), key_id="k1", run_id="run-1")
    openbao_isolated.seal()
    assert not store.health()
    secret = _canary()
    with pytest.raises(ProviderError) as info:
        store.write_pending(path, secret, key_id="k2", run_id="run-2")
    assert info.value.transient and info.value.status == 503 and "sealed" in str(info.value)
    _assert_clean(info.value, secret)
    openbao_isolated.unseal()
    assert store.health()
    assert store.write_pending(path, secret, key_id="k2", run_id="run-2").version == 2


def test_from_settings_without_credentials_is_permanent(openbao: OpenBaoServer) -> None:
    with pytest.raises(ProviderError, match="VAULT_TOKEN") as info:
        VaultStore.from_settings(openbao.addr)
    assert info.value.kind is ProviderErrorKind.PERMANENT


# ---- the least-privilege policy --------------------------------------------------------------
def test_policy_file_allows_the_full_cycle_and_nothing_else(openbao: OpenBaoServer, path: str) -> None:
    token = _token_with_policy(openbao, POLICY.read_text())
    store = VaultStore.from_settings(openbao.addr, token=SecretStr(token))
    assert store.health()
    new = _canary()
    store.write_pending(path, _canary(), key_id="key_old", run_id="run-0")
    store.promote(path, 1)
    store.mark_leaked(path, 1)
    assert store.write_pending(path, new, key_id="key_new", run_id="run-1").version == 2
    assert store.find_run_version(path, "run-1") is not None
    assert store.read(path, 2).get_secret_value() == new.get_secret_value()
    store.promote(path, 2)
    store.write_pending(path, _canary(), key_id="key_3", run_id="run-3")
    store.soft_delete(path, 3)
    store.destroy(path, 1)
    assert _states(store, path) == {1: "destroyed", 2: "current", 3: "deleted"}
    store.revoke_leases(f"database/creds/app-{_uid()}")

    other = f"other-{_uid()}"
    openbao.client().sys.enable_secrets_engine("kv", path=other, options={"version": "2"})
    with pytest.raises(ProviderError) as info:
        VaultStore(hvac.Client(url=openbao.addr, token=token), mount=None).versions(f"{other}/x")
    assert info.value.kind is ProviderErrorKind.PERMANENT and info.value.status == 403
    with pytest.raises(ProviderError) as revoke:
        store.revoke_leases("auth/token/create")
    assert revoke.value.status == 403
    raw = hvac.Client(url=openbao.addr, token=token)
    with pytest.raises(hvac.exceptions.Forbidden):
        raw.sys.list_acl_policies()
    with pytest.raises(hvac.exceptions.Forbidden):
        raw.secrets.kv.v2.delete_metadata_and_all_versions(path=_kv_path(path), mount_point="secret")


def test_approle_login_and_renewal(openbao: OpenBaoServer, path: str) -> None:
    root = openbao.client()
    mount, policy = f"approle-{_uid()}", f"keybot-{_uid()}"
    root.sys.create_or_update_policy(name=policy, policy=POLICY.read_text())
    root.sys.enable_auth_method("approle", path=mount)
    root.auth.approle.create_or_update_approle(
        "keybot", token_policies=[policy], token_ttl="10m", mount_point=mount
    )
    role_id = root.auth.approle.read_role_id("keybot", mount_point=mount)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("keybot", mount_point=mount)["data"]["secret_id"]
    store = VaultStore.from_settings(
        openbao.addr, role_id=role_id, secret_id=SecretStr(secret_id), approle_mount=mount
    )
    store.write_pending(path, _canary(), key_id="k", run_id="run-1")
    root.auth.token.revoke(store._client.token)
    assert [v.version for v in store.versions(path)] == [1]
    bad = SecretStr(f"wrong-{uuid.uuid4()}")
    with pytest.raises(ProviderError) as info:
        VaultStore.from_settings(openbao.addr, role_id=role_id, secret_id=bad, approle_mount=mount)
    assert info.value.kind is ProviderErrorKind.PERMANENT
    _assert_clean(info.value, bad)


def test_revoke_leases_revokes_tokens_issued_under_the_prefix(
    store: VaultStore, openbao: OpenBaoServer
) -> None:
    root, role = openbao.client(), f"keybot-lease-{_uid()}"
    root.auth.token.create_or_update_role(role, orphan=True)
    issued = root.auth.token.create(role_name=role, ttl="10m")["auth"]["client_token"]
    assert hvac.Client(url=openbao.addr, token=issued).is_authenticated()
    store.revoke_leases(f"auth/token/create/{role}")
    assert not hvac.Client(url=openbao.addr, token=issued).is_authenticated()
    with pytest.raises(ProviderError, match="empty prefix"):
        store.revoke_leases(" / ")


# ---- the audit trail -------------------------------------------------------------------------
def test_audit_log_never_holds_the_plaintext_secret(
    store: VaultStore, openbao: OpenBaoServer, path: str
) -> None:
    leaked, replacement = _canary(), _canary()
    store.write_pending(path, leaked, key_id="key_old", run_id="run-0")
    store.promote(path, 1)
    store.mark_leaked(path, 1)
    store.write_pending(path, replacement, key_id="key_new", run_id="run-1")
    assert store.read(path, 2).get_secret_value() == replacement.get_secret_value()
    store.promote(path, 2)
    store.destroy(path, 1)
    log = openbao.audit_log_path.read_text()
    for secret in (leaked, replacement):
        assert secret.get_secret_value() not in log
        assert secret.get_secret_value().removeprefix("sk-proj-") not in log
    data_path = f"secret/data/{_kv_path(path)}"
    ours = [e for e in openbao.audit_entries() if e.get("request", {}).get("path") == data_path]
    writes = [
        e["request"]["data"] for e in ours if e["type"] == "request" and e["request"]["operation"] != "read"
    ]
    assert len(writes) == 2 and all(w["data"]["api_key"].startswith("hmac-sha256:") for w in writes)
    reads = [
        e["response"]["data"] for e in ours if e["type"] == "response" and e["request"]["operation"] == "read"
    ]
    assert reads and all(r["data"]["api_key"].startswith("hmac-sha256:") for r in reads)
