"""The Vault client resolves proxies and CA bundles from the environment once, as requests would per call."""

from __future__ import annotations

import hvac
import pytest

from bot.providers.vault import VaultStore


def _store(url: str = "https://vault.internal:8200", **kwargs: object) -> VaultStore:
    return VaultStore(hvac.Client(url=url, token="t", **kwargs))  # type: ignore[arg-type]


def _session(store: VaultStore) -> object:
    return store._client.adapter.session


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "ALL_PROXY", "all_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_proxy_from_the_environment_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    session = _session(_store())
    assert session.proxies["https"] == "http://proxy.corp:3128"  # type: ignore[attr-defined]
    assert session.trust_env is False  # type: ignore[attr-defined]


def test_no_proxy_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "vault.internal,127.0.0.1")
    assert "https" not in _session(_store()).proxies  # type: ignore[attr-defined]


def test_ca_bundle_variable_applies_unless_verify_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")
    assert _store()._client.adapter._kwargs["verify"] == "/etc/corp/ca.pem"
    assert _store(verify="/opt/vault-ca.pem")._client.adapter._kwargs["verify"] == "/opt/vault-ca.pem"
