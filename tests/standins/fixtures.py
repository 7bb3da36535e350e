"""Pytest fixtures for the stand-ins; import them into conftest.py::

    from tests.standins.fixtures import *  # noqa: F403

Scopes: each HTTP stand-in is ONE server per test session (stable URL, so apps built once can point
at it) and the function-scoped fixture ``reset()``s its state before every test. ``openbao`` is one
real dev server per session (use a unique KV path per test: ``openbao_kv_prefix``);
``openbao_isolated`` is a fresh server per test for destructive fault tests (seal/unseal).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import openai
import pytest
from slack_sdk import WebClient

from .openai_api import OpenAIStandin
from .openbao import OpenBaoServer
from .slack_api import SlackStandin

__all__ = [
    "openai_admin_client",
    "openai_standin",
    "openai_standin_server",
    "openbao",
    "openbao_isolated",
    "openbao_kv_prefix",
    "slack_client",
    "slack_standin",
    "slack_standin_server",
]


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    """A real ``bao server -dev`` for the whole session; ``.addr``, ``.token``, ``.client()``."""
    server = OpenBaoServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def openbao_kv_prefix() -> str:
    """A KV v2 path prefix (under mount ``secret``) no other test uses."""
    return f"keybot-tests/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def openbao_isolated() -> Iterator[OpenBaoServer]:
    """A fresh dev server for this test only (about 0.3 s to start)."""
    server = OpenBaoServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def openai_standin_server() -> Iterator[OpenAIStandin]:
    standin = OpenAIStandin().start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def openai_standin(openai_standin_server: OpenAIStandin) -> Iterator[OpenAIStandin]:
    """The session's OpenAI stand-in, reset for this test. At teardown it fails the test if any
    request/response violated the spec; tests that provoke violations on purpose call
    ``take_validation_errors()``."""
    openai_standin_server.reset()
    yield openai_standin_server
    try:
        openai_standin_server.assert_no_validation_errors()
    finally:
        openai_standin_server.reset()


@pytest.fixture
def openai_admin_client(openai_standin: OpenAIStandin) -> openai.OpenAI:
    """The official SDK pointed at the stand-in (admin key and inference key set; fast retries)."""
    return openai.OpenAI(
        api_key=openai_standin.api_key,
        admin_api_key=openai_standin.admin_key,
        base_url=openai_standin.base_url,
        max_retries=2,
        timeout=10,
    )


@pytest.fixture(scope="session")
def slack_standin_server() -> Iterator[SlackStandin]:
    standin = SlackStandin().start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def slack_standin(slack_standin_server: SlackStandin) -> Iterator[SlackStandin]:
    """The session's Slack Web API stand-in, reset for this test; fails it if the stand-in crashed."""
    slack_standin_server.reset()
    yield slack_standin_server
    crashes = list(slack_standin_server.crashes)
    slack_standin_server.reset()
    assert not crashes, "Slack stand-in crashed:\n" + "\n".join(crashes)


@pytest.fixture
def slack_client(slack_standin: SlackStandin) -> WebClient:
    return WebClient(token=slack_standin.bot_token, base_url=slack_standin.base_url)
