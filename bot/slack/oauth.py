"""Optional OAuth installation (``/slack/install``, ``/slack/oauth_redirect``) for several workspaces or an
Enterprise Grid organisation, through Bolt's own OAuth flow and slack_sdk's SQLAlchemy stores.

It is on only when SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set; otherwise keybot runs on the single
SLACK_BOT_TOKEN exactly as before. With OAuth, Bolt's authorize finds the installing workspace's bot
token for every request; :func:`bind_request_token` hands it to the one :class:`~bot.slack.api.SlackAPI`
the handlers share, through a context variable that follows the work onto Bolt's listener threads and
keybot's follow-up pool (:class:`ContextExecutor`). The request's workspace is also set as the current
one (bot/workspace.py), so the runs and outbox rows it writes remember it. Work that belongs to a workspace
but no request (an outbox row, a run the clock continues, a deferred progress edit) binds that workspace,
and :class:`WorkspaceClient` then speaks with its installation (``WorkspaceTokens.for_team``). Work of no
workspace uses SLACK_DEFAULT_TEAM_ID's installation, else the newest. See docs/multi-workspace.md.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar, copy_context
from typing import Any, ParamSpec, TypeVar

from slack_bolt import BoltContext, BoltResponse
from slack_bolt.oauth.oauth_settings import OAuthSettings
from sqlalchemy.engine import Engine

from bot import workspace
from bot.config import Settings
from bot.log import get_logger
from bot.notifications.service import Undeliverable
from bot.slack.api import SlackAPI
from bot.slack.installations import TokenSealer, WorkspaceTokens, installation_store, state_store
from bot.slack.transport import KeepAliveWebClient
from bot.workspace import Workspace

P = ParamSpec("P")
T = TypeVar("T")
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"

log = get_logger(__name__)
_request: ContextVar[tuple[Workspace | None, str] | None] = ContextVar("keybot_slack_request", default=None)
"""The current request's workspace and the bot token Bolt's authorize found for it."""


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


class WorkspaceUninstalled(Undeliverable):
    """The work belongs to a workspace that has no installation any more (keybot was uninstalled)."""

    def __init__(self, where: Workspace) -> None:
        name = where.team_id or where.enterprise_id
        super().__init__(
            f"Slack workspace {name} has no keybot installation (uninstalled, or tokens revoked): not sent; "
            "an admin of that workspace can reinstall through /slack/install"
        )
        self.workspace = where


class WorkspaceClient(KeepAliveWebClient):
    """A WebClient whose token is that of the workspace the current work belongs to (see the module)."""

    def __init__(self, tokens: WorkspaceTokens, default_team: str | None = None, **kwargs: Any) -> None:
        self._tokens = tokens
        self._default_team = default_team
        super().__init__(**kwargs)

    def workspace_token(self) -> str | None:
        """The request's token when the work is the request's; else the bound workspace's installation;
        else SLACK_DEFAULT_TEAM_ID's, else the newest. Raises WorkspaceUninstalled for a named workspace
        with no installation: its messages must not go out with another workspace's token."""
        bound, request = workspace.current(), _request.get()
        if request is not None and (bound is None or bound == request[0]):
            return request[1]
        if bound is not None and bound.team_id is None and bound.enterprise_id is None:
            bound = None  # a row of no workspace in particular (written by the CLI, or before 0011)
        if bound is None and self._default_team is not None:
            bound = Workspace(None, self._default_team)
        if bound is None:
            return self._tokens.latest()
        token = self._tokens.for_team(bound.enterprise_id, bound.team_id)
        if token is None:
            raise WorkspaceUninstalled(bound)
        return token

    @property
    def token(self) -> str | None:
        """Read by every Web API call: one that belongs to an uninstalled workspace raises before it is
        sent (the outbox then fails the row with the reason; see WorkspaceUninstalled)."""
        try:
            return self.workspace_token()
        except WorkspaceUninstalled as gone:
            log.warning("no Slack installation for this work's workspace", why=str(gone))
            raise

    @token.setter
    def token(self, value: str | None) -> None:
        """WebClient's constructor assigns its token; a workspace client has none of its own."""


def workspace_api(settings: Settings, tokens: WorkspaceTokens) -> SlackAPI:
    """The shared SlackAPI wrapper, speaking with whichever workspace the current work belongs to."""
    api = SlackAPI("", base_url=settings.slack_api_url)
    api.client = WorkspaceClient(
        tokens,
        settings.slack_default_team_id,
        base_url=api.base_url,
        timeout=api.timeout,
        retry_handlers=api.client.retry_handlers,
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
    where = Workspace.of(context.enterprise_id, context.team_id)
    _request.set((where, context.bot_token) if context.bot_token else None)
    workspace.set_current(where)
    return next()


def forget_request_token(next: Callable[[], BoltResponse]) -> BoltResponse:
    """Bolt's before_authorize: no request inherits the token of the one this thread served before."""
    _request.set(None)
    workspace.set_current(None)
    return next()


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context (so they keep its token)."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(copy_context().run, fn, *args, **kwargs)  # type: ignore[arg-type]


def background_api(settings: Settings, engine: Engine) -> SlackAPI | None:
    """The SlackAPI for the clock (outbox, pages, digests): with OAuth, each piece of work's workspace
    installation (SLACK_DEFAULT_TEAM_ID's or the newest for work of none); SLACK_BOT_TOKEN without; None
    when Slack is not configured at all."""
    if oauth_enabled(settings):
        return workspace_api(settings, tokens_for(settings, engine))
    if settings.slack_bot_token is None:
        return None
    return SlackAPI.from_settings(settings)
