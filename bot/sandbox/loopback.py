"""A tiny threaded HTTP server on 127.0.0.1:<free port>: the sandbox's, and the test stand-ins' too.

An app is ``handle(request) -> Reply``; this module owns sockets and threads, so the sandbox users drill on
and the fakes tests use speak HTTP through the same code.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class HttpRequest:
    method: str  # upper case: GET, POST, DELETE
    path: str  # no query string, e.g. "/v1/models"
    query: list[tuple[str, str]]  # in order, repeated keys kept
    headers: dict[str, str]  # keys lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, json.dumps(payload).encode(), hdrs)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: Callable[[HttpRequest], Reply]
    on_crash: Callable[[HttpRequest, str], None] | None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = HttpRequest(
            method=self.command.upper(),
            path=parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            reply = self.server.app(req)
        except Exception as exc:  # a bug in a fake must be loud, not a hung client
            if self.server.on_crash is not None:
                self.server.on_crash(req, traceback.format_exc())
            reply = Reply.json(  # the type only: an exception's text could quote a request's secret
                {
                    "error": {
                        "message": f"the server failed ({type(exc).__name__})",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
                status=500,
            )
        self.send_response(reply.status)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # request lines could carry ids; stay quiet
        return


class BackgroundServer:
    """Serves ``app`` on 127.0.0.1 (port 0 = a free port) from a daemon thread."""

    def __init__(
        self,
        app: Callable[[HttpRequest], Reply],
        port: int = 0,
        on_crash: Callable[[HttpRequest, str], None] | None = None,
    ) -> None:
        self._app = app
        self._on_crash = on_crash
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.app = self._app
        server.on_crash = self._on_crash
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="loopback-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
