"""Resolve requests' environment lookups once per Vault client instead of on every request.

With `trust_env` on, requests re-reads the proxy variables, checks NO_PROXY, looks for ~/.netrc and the CA
bundle variables before every request: about a tenth of a Vault call's client CPU, for an answer that
cannot change (the Vault address is fixed). The same answer is computed once here, then `trust_env` is
turned off. ~/.netrc is deliberately not honoured: Vault authenticates with its token header. The
session's adapters are also wrapped to time every Vault request (bot/observability/calls.py).
"""

from __future__ import annotations

import os

import hvac
from requests.utils import get_environ_proxies

from bot.observability.calls import time_session

CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def pin_environment(client: hvac.Client) -> None:
    adapter = client.adapter
    session = getattr(adapter, "session", None)
    if session is None:
        return
    time_session(session)
    if not session.trust_env:
        return
    proxies = dict(session.proxies or {})
    for scheme, proxy in get_environ_proxies(adapter.base_uri).items():
        proxies.setdefault(scheme, proxy)
    session.proxies = proxies
    options = getattr(adapter, "_kwargs", {})
    bundle = next((os.environ[v] for v in CA_BUNDLE_VARIABLES if os.environ.get(v)), None)
    if bundle and options.get("verify") in (True, None):
        options["verify"] = bundle
    session.trust_env = False
