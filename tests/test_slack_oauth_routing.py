"""Background work in OAuth mode speaks with the workspace it belongs to (docs/multi-workspace.md): runs
and outbox rows remember the requesting workspace, the clock sends each with that installation's token,
rows of no workspace use SLACK_DEFAULT_TEAM_ID, an uninstalled workspace's rows fail at once, and /readyz
reports the installations."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import copy_context
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest
from alembic import command
from pydantic import SecretStr
from slack_bolt import BoltContext, BoltResponse
from sqlalchemy import func, inspect, select, text

from bot.config import Settings
from bot.db.migrate import alembic_config, upgrade
from bot.db.session import Database, make_engine
from bot.notifications.models import Notification, NotificationStatus
from bot.notifications.service import Message, deliver_pending, enqueue, for_run
from bot.observability.readiness import Readiness
from bot.runbooks.models import RunStatus
from bot.runtime import Runtime
from bot.slack import ids
from bot.slack.app import slack_app_from_runtime
from bot.slack.blocks.messages import notification_blocks
from bot.slack.installations import BOTS
from bot.slack.oauth import background_api, bind_request_token
from bot.slack.postmortems import PostmortemSender
from bot.slack.progress import ProgressPublisher
from bot.slack.serve import KeybotWSGI
from bot.workspace import Workspace, bound
from tests.slack_world import SlackWorld, make_settings
from tests.standins.slack_api import SlackStandin, event_callback_body, view_submission_body
from tests.test_slack_oauth import CLIENT_ID, CLIENT_SECRET, OAuthWorld, _empty_stores
from tests.world import World, unique_name

TEAM_A, TEAM_B = "T0AAAAAA1", "T0BBBBBB1"
OWNER = "U0OWNER01"


@dataclass
class Routed:
    oauth: OAuthWorld
    sw: SlackWorld
    runtime: Runtime

    def install(self, team: str) -> str:
        """One workspace installs keybot through /slack/install; returns its bot token."""
        state, cookie = self.oauth.install()
        code = f"code-{team}-{uuid4().hex[:6]}"
        token = self.oauth.slack.grant(code, CLIENT_ID, CLIENT_SECRET, team_id=team)
        assert self.oauth.redirect(code, state, cookie).status == 200
        return token

    def clock(self, **settings: object) -> tuple[PostmortemSender, ProgressPublisher]:
        """The outbox sender and progress publisher `keybot clock` builds: no request behind them."""
        configured = self.runtime.settings.model_copy(update=settings)
        api = background_api(configured, self.runtime.database.engine)
        assert api is not None
        database = self.runtime.database
        channel = configured.security_channel
        sender = PostmortemSender(api, database, render=notification_blocks, fallback_channel=channel)
        return sender, ProgressPublisher(database, api, channel, min_interval=0.0)

    def submit_revoke(self, key_id: int, team: str) -> None:
        state = {
            ids.MODE_BLOCK: {
                ids.MODE_ACTION: {"type": "radio_buttons", "selected_option": {"value": "emergency"}}
            },
            ids.REASON_BLOCK: {ids.REASON_ACTION: {"type": "plain_text_input", "value": "leaked in a gist"}},
            ids.SEVERITY_BLOCK: {
                ids.SEVERITY_ACTION: {"type": "static_select", "selected_option": {"value": "sev1"}}
            },
        }
        meta = ids.ActionRef(kind="key", id=str(key_id)).encode()
        body = view_submission_body(
            ids.REVOKE_MODAL, state, private_metadata=meta, user_id="U0ONCALL1", team_id=team
        )
        response = self.sw.post(body)
        assert response.status == 200, response.text


def oauth_settings(world: World, slack: SlackStandin) -> Settings:
    return make_settings(world, slack).model_copy(
        update={
            "slack_bot_token": None,
            "slack_client_id": CLIENT_ID,
            "slack_client_secret": SecretStr(CLIENT_SECRET),
        }
    )


@contextmanager
def serving(world: World, slack: SlackStandin, monkeypatch: pytest.MonkeyPatch) -> Iterator[Routed]:
    runtime = Runtime(oauth_settings(world, slack))
    _empty_stores(runtime.database.engine)
    app, ctx = slack_app_from_runtime(runtime)
    # The web replica leaves its outbox to the clock, so delivery happens with no request behind it.
    monkeypatch.setattr(ctx.worker, "deliver", lambda: None)
    server = create_server(KeybotWSGI(app, runtime.database))
    threading.Thread(target=server.run, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
        yield Routed(
            OAuthWorld(base, slack, runtime.database.engine),
            SlackWorld(world, slack, ctx, base + "/slack/events"),
            runtime,
        )
    finally:
        server.close()
        ctx.settle()
        ctx.worker.shutdown()
        runtime.database.dispose()


def create_server(wsgi: KeybotWSGI) -> object:
    from waitress.server import create_server as waitress_server

    return waitress_server(wsgi, host="127.0.0.1", port=0, threads=4)


@pytest.fixture
def routed(world: World, slack_standin: SlackStandin, monkeypatch: pytest.MonkeyPatch) -> Iterator[Routed]:
    with serving(world, slack_standin, monkeypatch) as served:
        yield served


def _enqueue(database: Database, where: Workspace | None) -> int:
    with database.session() as session, bound(where):
        prefix = f"test:{uuid4().hex}"
        message = Message("owner_dm", OWNER, "subject", "body")
        enqueue(session, [message], dedupe_prefix=prefix, incident_id=None, run_id=None)
        found = session.scalar(select(Notification.id).where(Notification.dedupe_key.startswith(prefix)))
        assert found is not None
        return found


@pytest.mark.parametrize("first,second", [(TEAM_A, TEAM_B), (TEAM_B, TEAM_A)], ids=["A", "B"])
def test_a_run_is_followed_up_with_its_own_workspaces_token(routed: Routed, first: str, second: str) -> None:
    tokens = {first: routed.install(first), second: routed.install(second)}  # `second` is the newest
    slack, database = routed.oauth.slack, routed.runtime.database
    key_id = routed.sw.world.add_key(unique_name(), "staging")

    routed.submit_revoke(key_id, first)
    routed.sw.wait(lambda: routed.sw.run_status() is RunStatus.SUCCEEDED, what="the run to finish")
    routed.sw.ctx.settle()

    run = routed.sw.latest_run()
    assert (run.slack_team_id, run.slack_enterprise_id) == (first, None)
    with database.session() as session:
        rows = for_run(session, run.id)
    assert {r.kind for r in rows} >= {"owner_dm", "manager_summary"}
    assert {r.slack_team_id for r in rows} == {first}
    progress = [c for c in slack.calls if c.method in ("chat.postMessage", "chat.update")]
    assert progress and {c.token for c in progress} == {tokens[first]}

    sender, publisher = routed.clock()
    before = len(slack.calls)
    assert deliver_pending(database, sender) == (len(rows), 0)
    publisher.flush(run.id)  # the clock edits the progress message too (a run it resumed)

    later = slack.calls[before:]
    assert any(c.args.get("channel") == OWNER for c in later), "the owner DM went out"
    assert "chat.update" in {c.method for c in later}
    assert {c.token for c in later} == {tokens[first]}


def test_a_row_of_no_workspace_uses_the_default_team_else_the_newest(routed: Routed) -> None:
    token_a, token_b = routed.install(TEAM_A), routed.install(TEAM_B)
    slack, database = routed.oauth.slack, routed.runtime.database
    row = _enqueue(database, None)  # e.g. queued by the CLI, or before migration 0011
    with database.session() as session:
        assert session.get(Notification, row).slack_team_id is None  # type: ignore[union-attr]

    sender, _ = routed.clock(slack_default_team_id=TEAM_A)
    assert deliver_pending(database, sender) == (1, 0)
    assert slack.calls_to("chat.postMessage")[-1].token == token_a

    _enqueue(database, None)
    newest, _ = routed.clock()
    assert deliver_pending(database, newest) == (1, 0)
    assert slack.calls_to("chat.postMessage")[-1].token == token_b


def test_an_uninstalled_workspaces_rows_fail_at_once_and_others_are_sent(routed: Routed) -> None:
    token_a, token_b = routed.install(TEAM_A), routed.install(TEAM_B)
    slack, database, engine = routed.oauth.slack, routed.runtime.database, routed.oauth.engine
    row_a = _enqueue(database, Workspace(None, TEAM_A))
    row_b = _enqueue(database, Workspace(None, TEAM_B))

    uninstalled = routed.sw.post(event_callback_body({"type": "app_uninstalled"}, team_id=TEAM_A))
    assert uninstalled.status == 200, uninstalled.text

    def installed(team: str) -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(BOTS.c.team_id == team)).scalar_one())

    routed.sw.wait(lambda: installed(TEAM_A) == 0, what="A's installation to be deleted")
    assert installed(TEAM_B) == 1
    before = len(slack.calls)
    sender, _ = routed.clock()

    assert deliver_pending(database, sender) == (1, 1)
    with database.session() as session:
        failed, sent = session.get(Notification, row_a), session.get(Notification, row_b)
        assert failed is not None and sent is not None
        assert (failed.status, failed.attempts) == (NotificationStatus.FAILED, 1)  # not retried
        assert failed.last_error is not None and TEAM_A in failed.last_error
        assert "no keybot installation" in failed.last_error
        assert sent.status is NotificationStatus.SENT
    assert [c.token for c in slack.calls[before:]] == [token_b]
    assert token_a not in {c.token for c in slack.calls[before:]}


def test_readyz_reports_the_installations_in_oauth_mode(routed: Routed) -> None:
    settings, database = routed.runtime.settings, routed.runtime.database

    ready, checks = Readiness.for_settings(database, settings).check()
    assert not ready and checks["slack"]["status"] == "fail"
    assert "/slack/install" in checks["slack"]["reason"]

    routed.install(TEAM_A)
    routed.install(TEAM_B)
    ready, checks = Readiness.for_settings(database, settings).check()
    assert checks["slack"] == {"status": "ok", "reason": "OAuth: 2 workspace installations"}


def test_token_mode_rows_name_no_workspace_and_readyz_still_calls_auth_test(
    database: Database, slack_standin: SlackStandin
) -> None:
    row = _enqueue(database, None)
    with database.session() as session:
        found = session.get(Notification, row)
        assert found is not None and (found.slack_team_id, found.slack_enterprise_id) == (None, None)
    settings = Settings(
        database_url=database.url,
        slack_bot_token=slack_standin.bot_token,
        slack_api_url=slack_standin.base_url,
    )
    _, checks = Readiness.for_settings(database, settings).check()
    assert checks["slack"]["status"] == "ok" and "authenticated as team" in checks["slack"]["reason"]
    assert [c.token for c in slack_standin.calls_to("auth.test")] == [slack_standin.bot_token]


def test_migration_0011_keeps_older_rows_as_no_workspace_and_downgrades(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    upgrade(engine, "0010_slack_installations")
    with engine.begin() as conn:
        columns = (
            "dedupe_key, kind, recipient, subject, body, facts, status, attempts, created_at, next_attempt_at"
        )
        values = "'old', 'owner_dm', 'U0OWNER01', 's', 'b', '{}', 'pending', 0, '2026-11-01', '2026-11-01'"
        conn.execute(text(f"INSERT INTO notifications ({columns}) VALUES ({values})"))

    upgrade(engine)

    with engine.connect() as conn:
        old = conn.execute(text("SELECT slack_team_id, slack_enterprise_id FROM notifications")).one()
        assert tuple(old) == (None, None)
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0010_slack_installations")
    assert {c["name"] for c in inspect(engine).get_columns("runs")}.isdisjoint({"slack_team_id"})
    engine.dispose()


def test_a_request_delivering_the_outbox_sends_other_workspaces_rows_with_their_tokens(
    routed: Routed,
) -> None:
    """The web worker delivers the whole outbox after a run pass, inside the request that started it."""
    token_a, token_b = routed.install(TEAM_A), routed.install(TEAM_B)
    slack, database = routed.oauth.slack, routed.runtime.database
    _enqueue(database, Workspace(None, TEAM_B))
    sender, _ = routed.clock()
    request = BoltContext({"bot_token": token_a, "team_id": TEAM_A, "enterprise_id": None})

    def deliver() -> BoltResponse:
        assert deliver_pending(database, sender) == (1, 0)
        return BoltResponse(status=200)

    copy_context().run(bind_request_token, request, deliver)

    assert slack.calls_to("chat.postMessage")[-1].token == token_b
