"""The real keybot Slack app served over HTTP (waitress), talking to the Slack and OpenAI stand-ins."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from waitress.server import create_server

from bot.config import Settings
from bot.runbooks.models import Run, RunStatus
from bot.runtime import Runtime
from bot.slack.api import SlackAPI
from bot.slack.app import build_app, build_context
from bot.slack.context import SlackContext
from bot.slack.serve import KeybotWSGI
from tests.conftest import TEST_FINGERPRINT_KEY
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import post_signed
from tests.world import ADMIN, REPO, REVOKERS, World

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass
class SlackWorld:
    world: World
    slack: SlackStandin
    ctx: SlackContext
    url: str

    def post(self, body: str, *, content_type: str | None = None, **kwargs: Any) -> Any:
        return post_signed(self.url, SIGNING_SECRET, body, content_type=content_type, **kwargs)

    def wait(self, predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def run_status(self) -> RunStatus | None:
        with self.world.database.session() as session:
            run = session.query(Run).order_by(Run.created_at.desc()).first()
            return run.status if run else None

    def latest_run(self) -> Run:
        with self.world.database.session() as session:
            run = session.query(Run).order_by(Run.created_at.desc()).first()
            assert run is not None
            return run

    def outgoing_text(self) -> str:
        """Everything keybot sent to Slack, for leak and injection checks."""
        return json.dumps([c.args for c in self.slack.calls], default=str)


def make_settings(world: World, slack: SlackStandin, **extra: Any) -> Settings:
    return Settings(
        database_url=world.database.url,
        slack_bot_token=slack.bot_token,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.base_url,
        openai_admin_key=world.openai.admin_key,
        openai_admin_base_url=world.openai.base_url,
        vault_addr=world.bao.addr,
        vault_token=world.bao.token,
        fingerprint_key=TEST_FINGERPRINT_KEY,
        runbooks_dir=REPO / "runbooks",
        backoff_scale=0.01,
        **{"admins": ADMIN, "revokers": ",".join(REVOKERS), "quiet_minutes": 0.0, **extra},
    )


@contextmanager
def serving(world: World, slack: SlackStandin, **settings: Any) -> Iterator[SlackWorld]:
    runtime = Runtime(make_settings(world, slack, **settings))
    api = SlackAPI(slack.bot_token, base_url=slack.base_url, rate_limit_retries=2)
    ctx = build_context(runtime, api, min_interval=0.05, workers=2)
    app = build_app(ctx, SIGNING_SECRET)
    server = create_server(KeybotWSGI(app, runtime.database), host="127.0.0.1", port=0, threads=8)
    port = server.effective_port  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield SlackWorld(world, slack, ctx, f"http://127.0.0.1:{port}/slack/events")
    finally:
        server.close()
        ctx.settle()
        ctx.worker.shutdown()
        runtime.database.dispose()
