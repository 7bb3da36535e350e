"""Optional OAuth installation (``/slack/install``, ``/slack/oauth_redirect``) for several workspaces or an
Enterprise Grid organisation, through Bolt's own OAuth flow and slack_sdk's SQLAlchemy stores.

It is on only when SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set; otherwise keybot runs on the single
SLACK_BOT_TOKEN exactly as before. With OAuth, Bolt's authorize finds the installing workspace's bot
token for every request; :func:`bind_request_token` hands it to the one :class:`~bot.slack.api.SlackAPI`
the handlers share, through a context variable that follows the work onto Bolt's listener threads and
keybot's follow-up pool (:class:`ContextExecutor`). Work that no request started (the outbox, the clock,
runs continued by the worker) falls back to the newest installation. See docs/multi-workspace.md.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar, copy_context
from typing import Any, ParamSpec, TypeVar

from slack_bolt import BoltContext, BoltResponse
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from bot.config import Settings
from bot.slack.api import SlackAPI
from bot.slack.installations import TokenSealer, WorkspaceTokens, installation_store, state_store

P = ParamSpec("P")
T = TypeVar("T")
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"

_request_token: ContextVar[str | None] = ContextVar("keybot_slack_request_token", default=None)


def oauth_enabled(settings: Settings) -> bool:
    return settings.slack_client_id is not None and settings.slack_client_secret is not None


def sealer_for(settings: Settings) -> TokenSealer:
    """Seals installation tokens with a key derived from the fingerprint key all processes share."""
    from bot.registry.fingerprint import load_or_create_key

    configured = settings.fingerprint_key.get_secret_value() if settings.fingerprint_key else None
    return TokenSealer(load_or_create_key(configured, settings.state_dir))


def oauth_settings(settings: Settings, engine: Engine) -> OAuthSettings:
    """Bolt's OAuth flow on keybot's database; ``/slack/install`` redirects straight to Slack."""
    assert settings.slack_client_id is not None and settings.slack_client_secret is not None
    client_id = settings.slack_client_id
    return OAuthSettings(
        client_id=client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        scopes=settings.scopes(),
        redirect_uri=settings.oauth_redirect_url,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        install_page_rendering_enabled=False,
        installation_store=installation_store(client_id, engine, sealer_for(settings)),
        state_store=state_store(engine),
    )


class WorkspaceClient(WebClient):
    """A WebClient whose token is the current request's workspace token, else the newest installation's."""

    def __init__(self, tokens: WorkspaceTokens, **kwargs: Any) -> None:
        self._tokens = tokens
        super().__init__(**kwargs)

    @property
    def token(self) -> str | None:
        return _request_token.get() or self._tokens.latest()

    @token.setter
    def token(self, value: str | None) -> None:
        """WebClient's constructor assigns its token; a workspace client has none of its own."""


def workspace_api(settings: Settings, tokens: WorkspaceTokens) -> SlackAPI:
    """The shared SlackAPI wrapper, speaking with whichever workspace the current work belongs to."""
    api = SlackAPI("", base_url=settings.slack_api_url)
    api.client = WorkspaceClient(
        tokens, base_url=api.base_url, timeout=api.timeout, retry_handlers=api.client.retry_handlers
    )
    return api


def tokens_for(settings: Settings, engine: Engine) -> WorkspaceTokens:
    assert settings.slack_client_id is not None
    return WorkspaceTokens(installation_store(settings.slack_client_id, engine, sealer_for(settings)))


def bind_request_token(context: BoltContext, next: Callable[[], BoltResponse]) -> BoltResponse:
    """Bolt middleware, after authorize: the rest of this request, including the listener Bolt then
    submits to a :class:`ContextExecutor`, speaks with the token found for the request's workspace.

    Bolt calls middleware one after the other, not nested, so the value is not reset on the way out:
    :func:`forget_request_token` clears it before the next request on this thread is authorized."""
    _request_token.set(context.bot_token)
    return next()


def forget_request_token(next: Callable[[], BoltResponse]) -> BoltResponse:
    """Bolt's before_authorize: no request inherits the token of the one this thread served before."""
    _request_token.set(None)
    return next()


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context (so they keep its token)."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(copy_context().run, fn, *args, **kwargs)  # type: ignore[arg-type]


def background_api(settings: Settings, engine: Engine) -> SlackAPI | None:
    """The SlackAPI for the clock (outbox, pages, digests): the newest installation's token with OAuth,
    SLACK_BOT_TOKEN without, None when Slack is not configured at all."""
    if oauth_enabled(settings):
        return workspace_api(settings, tokens_for(settings, engine))
    if settings.slack_bot_token is None:
        return None
    return SlackAPI.from_settings(settings)
