"""`keybot serve`: the HTTP process (Slack events + interactivity + commands, health, metrics).

A small WSGI router in front of Bolt's WSGI adapter; waitress serves it with a thread pool. Bodies are
capped before Bolt sees them, and anything Bolt cannot parse is a 400, never a 500 with a traceback.
Every request gets a request id (the caller's ``X-Request-Id`` when sane), bound to its log lines and
echoed in the response. ``/healthz`` is liveness (no database call: a database outage must not make the
orchestrator restart every replica); ``/readyz`` names each dependency; see docs/operations.md.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.config import Settings
from bot.db.session import Database
from bot.log import get_logger
from bot.observability.logcontext import REQUEST_ID_HEADER, bound, request_id
from bot.observability.metrics import exposition_registry, render
from bot.observability.readiness import Readiness
from bot.usage.http import PATH as INGEST_PATH
from bot.usage.http import IngestEndpoint
from bot.usage.settings import usage_settings

log = get_logger(__name__)
MAX_BODY = 1_000_000
StartResponse = Callable[..., Any]
Handler = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


def _reply(start: StartResponse, status: str, body: str, content_type: str = "text/plain") -> list[bytes]:
    return _reply_bytes(start, status, body.encode(), f"{content_type}; charset=utf-8")


def _reply_bytes(start: StartResponse, status: str, data: bytes, content_type: str) -> list[bytes]:
    start(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


def _get_only(handler: Callable[[StartResponse], list[bytes]]) -> Handler:
    def route(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        if environ.get("REQUEST_METHOD", "") not in ("GET", "HEAD"):
            return _reply(start, "405 Method Not Allowed", "GET only")
        return handler(start)

    return route


class KeybotWSGI:
    def __init__(
        self,
        app: App,
        database: Database,
        *,
        settings: Settings | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        """`settings` names the Vault and Slack that `/readyz` checks (without it: the database only)."""
        self.slack = SlackRequestHandler(app)
        self.database = database
        self.ingest = IngestEndpoint(database)
        self.readiness = readiness or Readiness.for_settings(database, settings)
        self.registry = exposition_registry(database)
        self.routes: dict[str, Handler] = {
            "/healthz": _get_only(self.health),
            "/readyz": _get_only(self.ready),
            "/metrics": _get_only(self.metrics),
            INGEST_PATH: self.ingest,
            "/slack/events": self.slack_events,
        }
        """path -> handler: another surface (OAuth installation, say) adds its lines here."""
        if app.oauth_flow is not None:  # OAuth installation (bot/slack/oauth.py)
            self.routes[app.oauth_flow.install_path] = self.slack_oauth
            self.routes[app.oauth_flow.redirect_uri_path] = self.slack_oauth

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))

        def start_with_id(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            return start(status, [*headers, (REQUEST_ID_HEADER, rid)], *args)

        with bound(request_id=rid):
            handler = self.routes.get(environ.get("PATH_INFO", ""))
            if handler is None:
                return _reply(start_with_id, "404 Not Found", "not found")
            return handler(environ, start_with_id)

    def slack_events(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "") != "POST":
            return _reply(start, "405 Method Not Allowed", "POST only")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _reply(start, "400 Bad Request", "bad Content-Length")
        if length > MAX_BODY:
            return _reply(start, "413 Payload Too Large", f"request bodies are limited to {MAX_BODY} bytes")
        try:
            return self.slack(environ, start)
        except Exception as error:
            log.warning("unparseable Slack request", error_type=type(error).__name__)
            return _reply(start, "400 Bad Request", "malformed request")

    def slack_oauth(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        """`/slack/install` and `/slack/oauth_redirect`: Bolt's OAuth flow, for browsers, GET only."""
        if environ.get("REQUEST_METHOD", "") != "GET":
            return _reply(start, "405 Method Not Allowed", "GET only")
        return self.slack(environ, start)

    def health(self, start: StartResponse) -> list[bytes]:
        """Liveness: the process answers. Nothing outside it is consulted."""
        return _reply(start, "200 OK", "ok")

    def ready(self, start: StartResponse) -> list[bytes]:
        ready, checks = self.readiness.check()
        if not ready:
            failed = sorted(name for name, c in checks.items() if c["status"] == "fail")
            log.warning("not ready", failed=failed)
        body = json.dumps({"ready": ready, "checks": checks}, sort_keys=True)
        status = "200 OK" if ready else "503 Service Unavailable"
        return _reply(start, status, body, "application/json")

    def metrics(self, start: StartResponse) -> list[bytes]:
        return _reply_bytes(start, "200 OK", render(self.registry), f"{PROMETHEUS_TEXT}; charset=utf-8")


def freeze_startup_heap() -> None:
    """Move everything alive after start-up out of the garbage collector's sight (``gc.freeze``).

    The modules, the app and the pools live as long as the process, yet every full collection scanned
    them again, stopping all threads for tens of milliseconds: that was the p99 of the acks. At 200
    commands/s on one process, ack p99 went from ~100-120 ms to ~30-36 ms (docs/reliability.md)."""
    gc.collect()
    gc.freeze()


def serve(wsgi: KeybotWSGI, host: str, port: int, threads: int = 16) -> None:
    from waitress import serve as waitress_serve

    freeze_startup_heap()
    waitress_serve(
        wsgi,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=max(MAX_BODY, usage_settings().ingest_max_bytes + 1),
        ident="keybot",
    )
