"""Optional OAuth installation (bot/slack/oauth.py): /slack/install, /slack/oauth_redirect, per-workspace
tokens, Enterprise Grid org-wide installs, and the single-token mode left exactly as it was."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import yaml
from sqlalchemy import delete, func, inspect, select
from sqlalchemy.engine import Engine
from waitress.server import create_server

from bot.config import DEFAULT_SLACK_SCOPES, ConfigError, Settings, load_settings
from bot.db.session import Database
from bot.runtime import Runtime
from bot.slack.app import slack_app_from_runtime
from bot.slack.installations import (
    BOTS,
    INSTALLATIONS,
    OAUTH_STATES,
    TokenKeyMismatch,
    TokenSealer,
    WorkspaceTokens,
    installation_store,
    state_store,
)
from bot.slack.oauth import WorkspaceClient, background_api
from bot.slack.serve import KeybotWSGI
from tests.conftest import TEST_FINGERPRINT_KEY
from tests.standins.slack_api import SlackStandin, post_signed, slash_command_body
from tests.world import REPO

CLIENT_ID = "1111.2222"
CLIENT_SECRET = "oauth-client-secret-0123456789"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def _empty_stores(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (BOTS, INSTALLATIONS, OAUTH_STATES):
            conn.execute(delete(table))


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str


def _get(base: str, path: str, cookie: str | None = None, method: str = "GET") -> Reply:
    """A GET that does not follow redirects, like a browser's first hop."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request(method, path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read().decode())
    finally:
        conn.close()


@dataclass
class OAuthWorld:
    base: str
    slack: SlackStandin
    engine: Engine

    def install(self) -> tuple[str, str]:
        """GET /slack/install: the state Slack will echo and the browser cookie that binds it."""
        reply = _get(self.base, "/slack/install")
        assert reply.status == 302, reply.body
        state = parse_qs(urlsplit(reply.headers["Location"]).query)["state"][0]
        return state, reply.headers["Set-Cookie"].split(";")[0]

    def redirect(self, code: str, state: str, cookie: str | None) -> Reply:
        return _get(self.base, "/slack/oauth_redirect?" + urlencode({"code": code, "state": state}), cookie)

    def slash(self, **fields: str) -> None:
        body = parse_qs(slash_command_body("/revoke-key", ""), keep_blank_values=True)
        form = {k: v[0] for k, v in body.items()} | fields
        response = post_signed(self.base + "/slack/events", SIGNING_SECRET, urlencode(form))
        assert response.status == 200, response.body


def _settings(database: Database, slack: SlackStandin, **extra: Any) -> Settings:
    return Settings(
        database_url=database.url,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.base_url,
        fingerprint_key=TEST_FINGERPRINT_KEY,
        runbooks_dir=REPO / "runbooks",
        **extra,
    )


@contextmanager
def _serving(database: Database, slack: SlackStandin) -> Iterator[OAuthWorld]:
    settings = _settings(database, slack, slack_client_id=CLIENT_ID, slack_client_secret=CLIENT_SECRET)
    runtime = Runtime(settings)
    _empty_stores(runtime.database.engine)
    app, ctx = slack_app_from_runtime(runtime)
    server = create_server(KeybotWSGI(app, runtime.database), host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        port = server.effective_port  # type: ignore[union-attr]
        yield OAuthWorld(f"http://127.0.0.1:{port}", slack, runtime.database.engine)
    finally:
        server.close()
        ctx.settle()
        ctx.worker.shutdown()
        runtime.database.dispose()


@pytest.fixture
def oauth(database: Database, slack_standin: SlackStandin) -> Iterator[OAuthWorld]:
    with _serving(database, slack_standin) as world:
        yield world


def test_default_scopes_are_the_manifests_bot_scopes() -> None:
    manifest = yaml.safe_load((REPO / "slack-manifest.yaml").read_text())
    assert DEFAULT_SLACK_SCOPES.split(",") == manifest["oauth_config"]["scopes"]["bot"]


def test_bad_scopes_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SCOPES", "commands, DROP TABLE")
    with pytest.raises(ConfigError, match="SLACK_SCOPES: expected comma-separated Slack scopes"):
        load_settings()


def test_the_migration_makes_the_stores_own_tables(database: Database) -> None:
    seen = inspect(database.engine)
    store, states = (
        installation_store(CLIENT_ID, database.engine, TokenSealer(TEST_FINGERPRINT_KEY.encode())),
        state_store(database.engine),
    )
    for table in (store.bots, store.installations, states.oauth_states):
        assert {c["name"] for c in seen.get_columns(table.name)} == {c.name for c in table.columns}


def test_install_redirects_to_slack_with_client_id_scopes_and_a_stored_state(oauth: OAuthWorld) -> None:
    reply = _get(oauth.base, "/slack/install")

    assert reply.status == 302
    where = urlsplit(reply.headers["Location"])
    query = parse_qs(where.query)
    assert f"{where.netloc}{where.path}" == "slack.com/oauth/v2/authorize"
    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"] == [DEFAULT_SLACK_SCOPES]
    with oauth.engine.connect() as conn:
        stored = conn.execute(select(OAUTH_STATES.c.state)).scalars().all()
    assert stored == query["state"]
    assert _get(oauth.base, "/slack/install", method="POST").status == 405


def test_an_installed_team_is_answered_with_its_own_token(oauth: OAuthWorld) -> None:
    state, cookie = oauth.install()
    token = oauth.slack.grant("code-1", CLIENT_ID, CLIENT_SECRET, team_id="T0OTHER01")

    page = oauth.redirect("code-1", state, cookie)

    assert page.status == 200, page.body
    assert token not in page.body
    bot = BOTS
    with oauth.engine.connect() as conn:
        rows = conn.execute(select(bot.c.team_id, bot.c.enterprise_id, bot.c.bot_token)).all()
        stored = [
            str(v) for table in (BOTS, INSTALLATIONS) for row in conn.execute(select(table)) for v in row
        ]
    assert [(r[0], r[1]) for r in rows] == [("T0OTHER01", None)]
    assert rows[0][2].startswith("kbs1:") and not any(token in v or token[5:] in v for v in stored)
    sealer = TokenSealer(TEST_FINGERPRINT_KEY.encode())
    assert sealer.open(rows[0][2]) == token  # sealed at rest, opened with the shared key
    with pytest.raises(TokenKeyMismatch):
        TokenSealer(b"another keybot's fingerprint key").open(rows[0][2])
    assert _count(oauth.engine, OAUTH_STATES) == 0  # the state was used up

    later, cookie = oauth.install()  # a second workspace, installed after the first
    other = oauth.slack.grant("code-2", CLIENT_ID, CLIENT_SECRET, team_id="T0THIRD01")
    assert oauth.redirect("code-2", later, cookie).status == 200

    installing = len(oauth.slack.calls)  # installing calls auth.test with each new token
    oauth.slash(team_id="T0OTHER01")

    opened = oauth.slack.wait_for("views.open")
    filled = oauth.slack.wait_for("views.update")  # after the ack, on keybot's follow-up pool
    assert [c.token for c in opened + filled] == [token, token]
    assert {c.token for c in oauth.slack.calls[installing:]} == {token}
    assert other in {c.token for c in oauth.slack.calls_to("auth.test")}


def test_an_enterprise_grid_org_install_answers_every_workspace_of_the_org(oauth: OAuthWorld) -> None:
    state, cookie = oauth.install()
    token = oauth.slack.grant("code-org", CLIENT_ID, CLIENT_SECRET, team_id=None, enterprise_id="E0GRID01")

    assert oauth.redirect("code-org", state, cookie).status == 200

    bot = BOTS
    with oauth.engine.connect() as conn:
        row = conn.execute(select(bot.c.enterprise_id, bot.c.team_id, bot.c.is_enterprise_install)).one()
    assert tuple(row) == ("E0GRID01", None, True)
    oauth.slash(team_id="T0WORKSP1", enterprise_id="E0GRID01", is_enterprise_install="true")
    answered = oauth.slack.wait_for("views.open") + oauth.slack.wait_for("views.update")
    assert [c.token for c in answered] == [token, token]
    tokens = WorkspaceTokens(
        installation_store(CLIENT_ID, oauth.engine, TokenSealer(TEST_FINGERPRINT_KEY.encode()))
    )
    assert tokens.for_team("E0GRID01", "T0WORKSP1") == token
    assert tokens.for_team(None, "T0UNKNOWN") is None
    assert tokens.latest() == token


@pytest.mark.parametrize("case", ["forged state", "no cookie", "reused state"])
def test_a_bad_or_reused_state_is_refused_and_nothing_is_stored(oauth: OAuthWorld, case: str) -> None:
    state, cookie = oauth.install()
    oauth.slack.grant("code-1", CLIENT_ID, CLIENT_SECRET, team_id="T0OTHER01")
    oauth.slack.grant("code-2", CLIENT_ID, CLIENT_SECRET, team_id="T0THIRD01")
    installed = 0
    if case == "reused state":
        assert oauth.redirect("code-1", state, cookie).status == 200
        installed = 1

    code = "code-2" if case == "reused state" else "code-1"
    page = oauth.redirect(
        code,
        "forged-state" if case == "forged state" else state,
        None if case == "no cookie" else cookie,
    )

    assert page.status in (400, 401)
    assert "reason: invalid_" in page.body, page.body
    assert _count(oauth.engine, BOTS) == installed
    assert _count(oauth.engine, INSTALLATIONS) == installed
    assert not oauth.slack.calls_to("oauth.v2.access")[installed:]  # no code was exchanged


def test_without_oauth_settings_the_single_bot_token_is_used(
    database: Database, slack_standin: SlackStandin
) -> None:
    runtime = Runtime(_settings(database, slack_standin, slack_bot_token=slack_standin.bot_token))
    try:
        app, ctx = slack_app_from_runtime(runtime)
    finally:
        runtime.database.dispose()
    assert app.oauth_flow is None
    assert not isinstance(ctx.api.client, WorkspaceClient)
    assert ctx.api.client.token == slack_standin.bot_token
    assert [c.token for c in slack_standin.calls_to("auth.test")] == [slack_standin.bot_token]
    routes = KeybotWSGI(app, database).routes
    assert (
        "/slack/events" in routes and "/slack/install" not in routes and "/slack/oauth_redirect" not in routes
    )


def test_the_clock_speaks_with_the_newest_installation_or_the_bot_token(
    oauth: OAuthWorld, database: Database
) -> None:
    slack = oauth.slack
    assert background_api(_settings(database, slack), oauth.engine) is None
    plain = background_api(_settings(database, slack, slack_bot_token=slack.bot_token), oauth.engine)
    assert plain is not None and plain.client.token == slack.bot_token

    oauth_settings = _settings(database, slack, slack_client_id=CLIENT_ID, slack_client_secret=CLIENT_SECRET)
    clock = background_api(oauth_settings, oauth.engine)
    assert clock is not None and clock.client.token is None  # nothing installed yet
    state, cookie = oauth.install()
    token = slack.grant("code-1", CLIENT_ID, CLIENT_SECRET, team_id="T0OTHER01")
    assert oauth.redirect("code-1", state, cookie).status == 200

    assert clock.post_message("C0SECURITY", "digest").ts
    assert slack.calls_to("chat.postMessage")[-1].token == token
