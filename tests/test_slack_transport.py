"""Slack Web API calls reuse a kept connection, never send on one the server closed, and keep slack_sdk's
error handling (HTTP errors, rate limits, retries) exactly as with urllib."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.slack.api import SlackAPI, SlackError
from bot.slack.transport import KeepAliveWebClient
from tests.standins.slack_api import SlackStandin


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection opened in this test, by address."""
    opened: list[tuple[str, int]] = []
    real = socket.create_connection

    def counting(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        opened.append(address)
        return real(address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "create_connection", counting)
    return opened


def test_calls_from_one_thread_share_one_connection(
    slack_standin: SlackStandin, connects: list[tuple[str, int]]
) -> None:
    api = SlackAPI(slack_standin.bot_token, base_url=slack_standin.base_url)
    assert isinstance(api.client, KeepAliveWebClient)
    for n in range(5):
        api.post_message("C0KEYS", f"message {n}")
    assert [m["text"] for m in slack_standin.messages("C0KEYS")] == [f"message {n}" for n in range(5)]
    assert len(connects) == 1


def test_each_thread_keeps_its_own_connection(
    slack_standin: SlackStandin, connects: list[tuple[str, int]]
) -> None:
    api = SlackAPI(slack_standin.bot_token, base_url=slack_standin.base_url)

    def post_twice(n: int) -> None:
        api.post_message("C0KEYS", f"a{n}")
        api.post_message("C0KEYS", f"b{n}")

    threads = [threading.Thread(target=post_twice, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(slack_standin.messages("C0KEYS")) == 6
    assert len(connects) == 3


def test_rate_limits_and_server_errors_keep_slack_sdks_handling(slack_standin: SlackStandin) -> None:
    api = SlackAPI(slack_standin.bot_token, base_url=slack_standin.base_url, backoff=0.01)
    slack_standin.inject_rate_limit("chat.postMessage", retry_after=0, times=1)
    slack_standin.inject_http_error("chat.postMessage", 503, times=1)
    api.post_message("C0KEYS", "after a 429 and a 503")
    assert [c.status for c in slack_standin.calls_to("chat.postMessage")] == [429, 503, 200]
    slack_standin.inject("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackError) as error:
        api.post_message("C0NOPE", "x")
    assert error.value.code == "channel_not_found"


class _ClosingServer(ThreadingHTTPServer):
    """Answers like Slack, then closes the connection without saying so (an idle timeout, a restart)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ClosingHandler)
        self.requests = 0


class _ClosingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ClosingServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.requests += 1
        body = b'{"ok": true, "channel": "C0KEYS", "ts": "1.000001", "message": {}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def closing_server() -> Iterator[_ClosingServer]:
    server = _ClosingServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("poll", [True, False], ids=["poll", "select"])
def test_a_connection_the_server_closed_is_replaced_before_sending(
    closing_server: _ClosingServer,
    connects: list[tuple[str, int]],
    poll: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not poll:
        monkeypatch.delattr(select, "poll")  # as on Windows
    host, port = closing_server.server_address[:2]
    api = SlackAPI("xoxb-test", base_url=f"http://{host}:{port}/api/", server_retries=0)
    for n in range(3):
        api.post_message("C0KEYS", f"message {n}")
        time.sleep(0.2)  # idle: the server's close reaches this end, as a load balancer's idle timeout does
    # each request reached the server once: none was lost on a dead socket and none was sent twice
    assert closing_server.requests == 3
    assert len(connects) == 3
