"""Builds the one Bolt app behind every transport: HTTP, Socket Mode and the shell adapter."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError
from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.error import BoltError, BoltUnhandledRequestError
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk.errors import SlackApiError

from bot.log import get_logger
from bot.runtime import Runtime
from bot.slack.api import SlackAPI
from bot.slack.blocks.messages import notification_blocks
from bot.slack.context import SlackContext
from bot.slack.handlers import alerts, commands, events, interactions, postmortems, reminders, views
from bot.slack.oauth import (
    ContextExecutor,
    bind_request_token,
    forget_request_token,
    oauth_enabled,
    oauth_settings,
    tokens_for,
    workspace_api,
)
from bot.slack.payloads import BadPayload, validate_body
from bot.slack.permissions import Permissions
from bot.slack.postmortems import PostmortemSender
from bot.slack.progress import ProgressPublisher
from bot.slack.worker import RunWorker

log = get_logger(__name__)
LISTENER_THREADS = 32
"""Bolt runs each listener, ack() included, on this pool; a button's listener then holds its thread for a
views.open round-trip (~100-300 ms to the real Slack). Bolt's default of 5 queued acks behind Slack calls;
/revoke-key opens its modal from a pool of its own (docs/reliability.md)."""


def build_context(
    runtime: Runtime, api: SlackAPI, *, min_interval: float = 1.0, workers: int = 4
) -> SlackContext:
    publisher = ProgressPublisher(runtime.database, api, runtime.settings.security_channel, min_interval)
    sender = PostmortemSender(
        api, runtime.database, render=notification_blocks, fallback_channel=runtime.settings.security_channel
    )
    worker = RunWorker(runtime, publisher, sender, max_workers=workers)
    return SlackContext(runtime, api, Permissions(runtime.policy, api), publisher, worker)


def build_app(
    ctx: SlackContext,
    signing_secret: str,
    *,
    token_verification: bool = True,
    oauth: OAuthSettings | None = None,
) -> App:
    """The Bolt app; it shares the wrapper's WebClient so Bolt's own calls get the same retries. With
    ``oauth`` (bot/slack/oauth.py) each request speaks with its own workspace's installation."""
    if oauth is None:
        app = App(
            client=ctx.api.client,
            signing_secret=signing_secret,
            token_verification_enabled=token_verification,
            listener_executor=ThreadPoolExecutor(LISTENER_THREADS, thread_name_prefix="keybot-listener"),
            raise_error_for_unhandled_request=True,
        )
    else:
        app = App(
            client=ctx.api.client,
            signing_secret=signing_secret,
            oauth_settings=oauth,
            before_authorize=forget_request_token,
            listener_executor=ContextExecutor(
                max_workers=LISTENER_THREADS, thread_name_prefix="keybot-listener"
            ),
            raise_error_for_unhandled_request=True,
        )
        app.middleware(bind_request_token)
        app.enable_token_revocation_listeners()  # app_uninstalled, tokens_revoked: delete the installation

    @app.middleware
    def validate_payload(
        req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        """Malformed payloads stop here with a 400 naming the bad fields, before any listener reads them."""
        try:
            validate_body(req.body)
        except BadPayload as bad:
            log.warning("malformed Slack payload refused", why=str(bad))
            return BoltResponse(status=400, body=str(bad))
        return next()

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
        if isinstance(error, BoltUnhandledRequestError):
            return BoltResponse(status=404, body="keybot does not handle that request")
        if isinstance(error, BadPayload | ValidationError):
            # A payload shape the edge models did not foresee: the client's fault, told in one line.
            log.warning("unreadable Slack payload", error_type=type(error).__name__)
            return BoltResponse(status=400, body="malformed Slack payload")
        log.exception("listener failed", error_type=type(error).__name__)
        return BoltResponse(status=500, body="keybot hit an internal error; nothing was changed")

    commands.register(app, ctx)
    interactions.register(app, ctx)
    views.register(app, ctx)
    events.register(app, ctx)
    reminders.register(app, ctx)
    alerts.register(app, ctx)
    postmortems.register(app, ctx)
    return app


def slack_app_from_runtime(runtime: Runtime) -> tuple[App, SlackContext]:
    settings = runtime.settings
    if oauth_enabled(settings):
        return _oauth_app(runtime)
    if settings.slack_bot_token is None or settings.slack_signing_secret is None:
        from bot.config import ConfigError

        raise ConfigError("SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are required to serve Slack")
    api = SlackAPI(settings.slack_bot_token, base_url=settings.slack_api_url)
    ctx = build_context(runtime, api)
    try:
        app = build_app(ctx, settings.slack_signing_secret.get_secret_value())
    except (OSError, BoltError, SlackApiError) as error:  # Bolt checks the token with auth.test at start
        from bot.config import ConfigError
        from bot.secrets import redact

        reason = redact(str(getattr(error, "reason", None) or error).splitlines()[0])[:200]
        where = settings.slack_api_url or "slack.com"
        raise ConfigError(
            f"cannot check SLACK_BOT_TOKEN with Slack's auth.test at {where}: {reason}; "
            "check the token, the network and SLACK_API_URL"
        ) from None
    return app, ctx


def _oauth_app(runtime: Runtime) -> tuple[App, SlackContext]:
    """Several workspaces: tokens come from OAuth installations, not SLACK_BOT_TOKEN."""
    settings, engine = runtime.settings, runtime.database.engine
    if settings.slack_signing_secret is None:
        from bot.config import ConfigError

        raise ConfigError("SLACK_SIGNING_SECRET is required to serve Slack")
    ctx = build_context(runtime, workspace_api(settings, tokens_for(settings, engine)))
    app = build_app(
        ctx, settings.slack_signing_secret.get_secret_value(), oauth=oauth_settings(settings, engine)
    )
    return app, ctx
