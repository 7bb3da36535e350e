"""Serve a real ``slack_bolt.App`` over HTTP on 127.0.0.1:<free port> (wsgiref in a thread), so tests can
drive it with signed requests (:func:`tests.standins.slack_payloads.post_signed`) like Slack does."""

from __future__ import annotations

import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class _ThreadingWSGIServer(WSGIServer):
    """One thread per request: a slow listener must not block Slack's next request."""

    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        threading.Thread(target=self._serve, args=(request, client_address), daemon=True).start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


class BoltHTTPServer:
    """``with BoltHTTPServer(app) as url: post_signed(url, secret, body)``; ``url`` ends in ``path``."""

    def __init__(self, app: App, path: str = "/slack/events") -> None:
        self.path = path
        self._wsgi = SlackRequestHandler(app, path=path)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_port}{self.path}"

    def start(self) -> str:
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="bolt-http", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
