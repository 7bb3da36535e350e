"""Keep-alive HTTP connections to Slack's Web API, under slack_sdk's own WebClient.

slack_sdk's sync ``WebClient`` opens a new connection (DNS, TCP and a TLS handshake) for every call, so each
``views.open`` or ``chat.update`` pays two or three extra round trips to Slack before the request is even
sent. Every thread here keeps one connection per Slack host instead and reuses it. Only the transport is
replaced: the request, the retry handlers and the response parsing stay slack_sdk's, and the answer has the
shape ``urlopen`` gives (HTTP errors are raised as ``HTTPError``, which slack_sdk turns into responses).

A kept connection is checked before reuse: one the server has closed while it sat idle (readable at EOF)
is replaced before anything is sent, so no request goes out on a dead socket. A failure after sending is
raised as usual and left to slack_sdk's connection-error retry handler, exactly as with ``urlopen``.
"""

from __future__ import annotations

import http.client
import io
import select
import ssl
import threading
import time
import urllib.parse
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request

from slack_sdk import WebClient

IDLE_SECONDS = 50.0
"""A connection idle longer than this is closed rather than reused (load balancers drop idle ones)."""

_Key = tuple[str, str, int]


class _Kept(threading.local):
    def __init__(self) -> None:
        self.connections: dict[_Key, tuple[http.client.HTTPConnection, float]] = {}


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle HTTP connection has nothing to read: readable means the server closed it (or broke it)."""
    sock = connection.sock
    if sock is None:
        return True
    if not hasattr(select, "poll"):  # Windows; select() is fine for one descriptor
        readable, _, broken = select.select([sock], [], [sock], 0)
        return bool(readable or broken)
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class KeepAliveWebClient(WebClient):
    """``WebClient`` whose calls reuse one connection per thread and host (a proxy keeps urllib's path)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept = _Kept()

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        parts = urllib.parse.urlsplit(url)
        if self.proxy is not None or parts.scheme not in ("http", "https") or not parts.hostname:
            return super()._perform_urllib_http_request_internal(url, req)
        key = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        connection = self._connection(key)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(req.get_method(), path or "/", body=req.data, headers=dict(req.header_items()))
            response = connection.getresponse()
            body = response.read()
        except BaseException:
            self._forget(key)
            raise
        if response.will_close:
            self._forget(key)
        if response.status >= 300:
            raise HTTPError(url, response.status, response.reason, response.headers, io.BytesIO(body))
        if response.headers.get_content_type() == "application/gzip":
            return {"status": response.status, "headers": response.headers, "body": body}
        charset = response.headers.get_content_charset() or "utf-8"
        return {"status": response.status, "headers": response.headers, "body": body.decode(charset)}

    def _connection(self, key: _Key) -> http.client.HTTPConnection:
        kept = self._kept.connections.get(key)
        now = time.monotonic()
        if kept is not None:
            connection, last_used = kept
            if now - last_used < IDLE_SECONDS and not _dropped(connection):
                self._kept.connections[key] = (connection, now)
                return connection
            connection.close()
        scheme, host, port = key
        fresh: http.client.HTTPConnection
        if scheme == "https":
            context = self.ssl or ssl.create_default_context()
            fresh = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=context)
        else:
            fresh = http.client.HTTPConnection(host, port, timeout=self.timeout)
        self._kept.connections[key] = (fresh, now)
        return fresh

    def _forget(self, key: _Key) -> None:
        kept = self._kept.connections.pop(key, None)
        if kept is not None:
            kept[0].close()
