"""`keybot serve`: the HTTP process (Slack events + interactivity + commands, health, metrics).

A small WSGI router in front of Bolt's WSGI adapter; waitress serves it with a thread pool. Bodies are
capped before Bolt sees them, and anything Bolt cannot parse is a 400, never a 500 with a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import func, select, text

from bot.db.session import Database
from bot.log import get_logger
from bot.runbooks.models import Run
from bot.usage.http import PATH as INGEST_PATH
from bot.usage.http import IngestEndpoint
from bot.usage.settings import usage_settings

log = get_logger(__name__)
MAX_BODY = 1_000_000
StartResponse = Callable[..., Any]


def _reply(start: StartResponse, status: str, body: str, content_type: str = "text/plain") -> list[bytes]:
    data = body.encode()
    start(status, [("Content-Type", f"{content_type}; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]


class KeybotWSGI:
    def __init__(self, app: App, database: Database) -> None:
        self.slack = SlackRequestHandler(app)
        self.database = database
        self.ingest = IngestEndpoint(database)

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/healthz" and method == "GET":
            return self.health(start)
        if path == "/metrics" and method == "GET":
            return self.metrics(start)
        if path == INGEST_PATH:
            return self.ingest(environ, start)
        if path != "/slack/events":
            return _reply(start, "404 Not Found", "not found")
        if method != "POST":
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

    def health(self, start: StartResponse) -> list[bytes]:
        try:
            with self.database.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as error:
            log.warning("health check failed", error_type=type(error).__name__)
            return _reply(start, "503 Service Unavailable", "database unreachable")
        return _reply(start, "200 OK", "ok")

    def metrics(self, start: StartResponse) -> list[bytes]:
        lines = ["# HELP keybot_runs Runs by status.", "# TYPE keybot_runs gauge"]
        with self.database.session() as session:
            for status, count in session.execute(select(Run.status, func.count()).group_by(Run.status)):
                lines.append(f'keybot_runs{{status="{status.value}"}} {count}')
        return _reply(start, "200 OK", "\n".join(lines) + "\n", "text/plain; version=0.0.4")


def serve(wsgi: KeybotWSGI, host: str, port: int, threads: int = 16) -> None:
    from waitress import serve as waitress_serve

    waitress_serve(
        wsgi,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=max(MAX_BODY, usage_settings().ingest_max_bytes + 1),
        ident="keybot",
    )
