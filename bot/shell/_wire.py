"""HTTP plumbing of the Slack emulator: request parsing, the reply type and a loopback server."""

from __future__ import annotations

import contextlib
import json
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from bot.shell._model import Json

_JSON_ARGS = ("blocks", "attachments", "view", "metadata", "users", "unfurls", "files")


class Endpoint(Protocol):
    """What the server calls: the emulator's request handler and its crash report."""

    def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Reply: ...

    def crashed(self, method: str, path: str, trace: str) -> None: ...


@dataclass
class Reply:
    """One HTTP answer; ``payload`` is the JSON it carries, if any."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    payload: Json | None = None

    @classmethod
    def json(cls, payload: Json, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(payload).encode(), headers=dict(headers or {}), payload=payload)

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain") -> Reply:
        return cls(status, text.encode(), content_type)


def parse_args(query: str, content_type: str, body: bytes) -> Json:
    """Query + form or JSON body; ``blocks``/``view``... sent as JSON strings are decoded like Slack does."""
    args: Json = dict(parse_qsl(query, keep_blank_values=True))
    text = body.decode("utf-8", "replace")
    if text.strip().startswith("{") and ("json" in content_type or not content_type):
        with contextlib.suppress(ValueError):
            data = json.loads(text)
            if isinstance(data, dict):
                args.update(data)
    elif text:
        args.update(parse_qsl(text, keep_blank_values=True))
    for key in _JSON_ARGS:
        value = args.get(key)
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                args[key] = json.loads(value)
    return args


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, slack: Endpoint) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.slack = slack


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            reply = self.server.slack.handle(self.command, parts.path, parts.query, headers, body)
        except Exception:  # an emulator bug must answer, not hang the client
            self.server.slack.crashed(self.command, parts.path, traceback.format_exc())
            reply = Reply.json({"ok": False, "error": "internal_error"}, 500)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # request lines carry tokens and hook ids
        return
