"""A fresh clone gets the pinned OpenAI spec by itself: downloaded once into the cache, checked by its digest.

This machine has no internet, so the "download" is served from a local HTTP server: the code path is the
one a user's first `make test` takes, only the URL differs (`KEYBOT_OPENAI_SPEC_URL`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.standins import _openai_spec
from tests.standins._openai_spec import SPEC_ENV, SPEC_SHA256, SPEC_URL_ENV, spec_path


class _Served:
    """One file's bytes on loopback, with a count of how often they were fetched."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.fetches = 0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.fetches += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(served.body)))
                self.end_headers()
                self.wfile.write(served.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/openapi.yaml"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def pinned_bytes() -> bytes:
    body = spec_path().read_bytes()
    assert hashlib.sha256(body).hexdigest() == SPEC_SHA256
    return body


@pytest.fixture
def fresh_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with no `KEYBOT_OPENAI_SPEC` and an empty cache."""
    monkeypatch.delenv(SPEC_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "keybot"


@pytest.fixture
def serve() -> Iterator[Callable[[bytes], _Served]]:
    started: list[_Served] = []

    def start(body: bytes) -> _Served:
        server = _Served(body)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def test_downloads_once_into_the_cache_and_checks_the_digest(
    fresh_user: Path, serve: Callable[[bytes], _Served], pinned_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = serve(pinned_bytes)
    monkeypatch.setenv(SPEC_URL_ENV, mirror.url)
    first = spec_path()
    assert first.parent == fresh_user
    assert hashlib.sha256(first.read_bytes()).hexdigest() == SPEC_SHA256
    assert spec_path() == first
    assert mirror.fetches == 1, "the spec is fetched once, then read from the cache"
    assert not list(fresh_user.glob("*.part")), "no partial download is left behind"


def test_a_tampered_download_is_refused_and_not_cached(
    fresh_user: Path, serve: Callable[[bytes], _Served], pinned_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    tampered = serve(pinned_bytes.replace(b"openapi:", b"openapi: ", 1) + b"\n# tampered\n")
    monkeypatch.setenv(SPEC_URL_ENV, tampered.url)
    with pytest.raises(FileNotFoundError, match="did not match the pinned sha256"):
        spec_path()
    assert not fresh_user.exists() or not list(fresh_user.iterdir())


def test_no_network_says_what_to_do(fresh_user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SPEC_URL_ENV, "http://127.0.0.1:9/openapi.yaml")
    with pytest.raises(FileNotFoundError, match=f"set {SPEC_ENV} to a copy"):
        spec_path()


def test_the_override_wins_without_any_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "spec.yaml"
    copy.write_text("openapi: 3.1.0\n")
    monkeypatch.setenv(SPEC_ENV, str(copy))
    monkeypatch.setenv(SPEC_URL_ENV, "http://127.0.0.1:9/never-fetched")
    assert _openai_spec.spec_path() == copy
