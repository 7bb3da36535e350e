"""`POST /ingest/usage` through keybot's real WSGI app, in-process: auth, limits, per-line errors."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt import App

from bot.db.session import Database
from bot.slack.serve import KeybotWSGI
from bot.usage.http import sign
from bot.usage.service import series
from tests.usage_helpers import NOW, add_key

TOKEN = "ingest-token-for-tests-0001"
HMAC_SECRET = "hmac-secret-for-tests-0002"
LIVE_SECRET = (
    "sk-proj-"
    + "Qx7vR2mK9pL4wN8sT3yB6hJ1dF5gZ0cA" * 2
    + "T3BlbkFJ"
    + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4y5Z6a7B8c9D0e1F2g3H4i5J6k7L8"
)


@pytest.fixture
def wsgi(database: Database, monkeypatch: pytest.MonkeyPatch) -> KeybotWSGI:
    monkeypatch.setenv("KEYBOT_INGEST_TOKEN", TOKEN)
    monkeypatch.setenv("KEYBOT_INGEST_HMAC_SECRET", HMAC_SECRET)
    monkeypatch.setenv("KEYBOT_INGEST_MAX_BYTES", "200000")
    app = App(token="xoxb-test", signing_secret="s" * 32, token_verification_enabled=False)
    return KeybotWSGI(app, database)


def call(
    wsgi: Any,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    length: int | None = None,
) -> tuple[int, dict[str, Any]]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/ingest/usage",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body) if length is None else length),
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    got: list[str] = []
    data = b"".join(wsgi(environ, lambda status, _headers: got.append(status)))
    return int(got[0].split()[0]), json.loads(data)


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jl(*objs: Any) -> bytes:
    return "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs).encode()


def line(key: Any = "checkout", **fields: Any) -> dict[str, Any]:
    return {"key": key, "ts": NOW.isoformat(), "requests": 1, **fields}


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("bot.db.base.utcnow", lambda: NOW)
    yield


def _requests(database: Database, key_id: int) -> float:
    with database.session() as session:
        return float(
            series(session, [key_id], NOW, NOW + (NOW - NOW).__class__(minutes=1)).values["requests"].sum()
        )


def test_disabled_without_credentials(database: Database) -> None:
    app = App(token="xoxb-test", signing_secret="s" * 32, token_verification_enabled=False)
    status, body = call(KeybotWSGI(app, database), jl(line()), bearer())
    assert status == 404 and "disabled" in body["error"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing credentials"),
        (bearer("wrong-token"), "wrong bearer token"),
        (
            {"X-Keybot-Timestamp": str(int(time.time())), "X-Keybot-Signature": "sha256=" + "0" * 64},
            "bad signature",
        ),
        (
            {"X-Keybot-Timestamp": str(int(time.time()) - 3600), "X-Keybot-Signature": "sha256=00"},
            "from the server's clock",
        ),
        ({"X-Keybot-Timestamp": "yesterday", "X-Keybot-Signature": "sha256=00"}, "unix seconds"),
    ],
)
def test_auth_failures_write_nothing(
    wsgi: KeybotWSGI, database: Database, now: None, headers: dict[str, str], reason: str
) -> None:
    key = add_key(database, "checkout")
    status, body = call(wsgi, jl(line()), headers)
    assert status == 401 and reason in body["error"]
    assert TOKEN not in json.dumps(body)
    assert _requests(database, key) == 0


def test_a_stale_but_correctly_signed_request_is_a_replay(
    wsgi: KeybotWSGI, database: Database, now: None
) -> None:
    add_key(database, "checkout")
    payload = jl(line())
    stale = int(time.time()) - 301
    status, body = call(
        wsgi,
        payload,
        {"X-Keybot-Timestamp": str(stale), "X-Keybot-Signature": sign(HMAC_SECRET, stale, payload)},
    )
    assert status == 401 and "from the server's clock" in body["error"]


def test_bearer_and_hmac_both_work(wsgi: KeybotWSGI, database: Database, now: None) -> None:
    key = add_key(database, "checkout")
    assert call(wsgi, jl(line()), bearer()) == (200, {"accepted": 1, "rejected": 0, "errors": []})
    payload = jl(line(requests=2))
    stamp = int(time.time())
    status, body = call(
        wsgi,
        payload,
        {"X-Keybot-Timestamp": str(stamp), "X-Keybot-Signature": sign(HMAC_SECRET, stamp, payload)},
    )
    assert (status, body["accepted"]) == (200, 1)
    assert _requests(database, key) == 3


def test_mixed_good_and_bad_lines(wsgi: KeybotWSGI, database: Database, now: None) -> None:
    key = add_key(database, "checkout", provider_key_id="key_abc123", last4="Xy9Q", fingerprint="ab" * 32)
    add_key(database, "drill-copy", drill=True)
    good = [
        line(key, requests=1),
        line(f"#{key}", requests=1),
        line("CHECKOUT", requests=1, status={"200": 3, "401": 2}, source_ip="2001:db8::1", model="gpt-4o"),
        line("key_abc123", requests=1, ts=NOW.timestamp(), tokens=50, cost=0.25),
        line("sk-proj-...Xy9Q", requests=1, ts=int(NOW.timestamp() * 1000)),
        line("ab" * 32, requests=1, ts="2026-12-10T12:00:30Z"),
    ]
    bad = [
        "{not json",
        "[1, 2]",
        json.dumps(line("nobody")),
        json.dumps(line("drill-copy")),
        json.dumps(line(requests=-1)),
        '{"key": "checkout", "ts": "2026-12-10T12:00:00Z", "cost": NaN}',
        json.dumps(line(requests="7")),
        json.dumps(line(requests=True)),
        json.dumps(line(LIVE_SECRET)),
        json.dumps(line(source_ip="300.1.1.1")),
        json.dumps(line(ts="2099-01-01T00:00:00Z")),
        json.dumps(line(model="x" * 65)),
        json.dumps(line(status={"abc": 1})),
        json.dumps(line(tokens=1, input_tokens=1)),
        json.dumps(line(requestz=1)),
        json.dumps({"ts": NOW.isoformat()}),
    ]
    status, body = call(wsgi, jl(*good, "", *bad), bearer())
    assert status == 200 and body["accepted"] == len(good) and body["rejected"] == len(bad)
    errors = {e["line"]: e["error"] for e in body["errors"]}
    first_bad = len(good) + 2
    assert list(errors) == list(range(first_bad, first_bad + len(bad)))
    assert "not valid JSON" in errors[first_bad] and "JSON object" in errors[first_bad + 1]
    assert errors[first_bad + 2] == "unknown key 'nobody'" and "unknown key" in errors[first_bad + 3]
    assert "whole number" in errors[first_bad + 4] and "JSON allows" in errors[first_bad + 5]
    assert "looks like a secret" in errors[first_bad + 8]
    assert LIVE_SECRET[-30:] not in json.dumps(body) and LIVE_SECRET[8:30] not in json.dumps(body)
    assert "future" in errors[first_bad + 10] and "unknown field(s): requestz" in errors[first_bad + 14]
    assert _requests(database, key) == len(good)
    with database.session() as session:
        block = series(session, [key], NOW, NOW + (NOW - NOW).__class__(minutes=1))
    assert block.values["status_401"].tolist() == [[2.0]] and block.values["tokens"].tolist() == [[50.0]]


def test_oversized_bodies_are_refused_and_nothing_is_written(
    wsgi: KeybotWSGI, database: Database, now: None
) -> None:
    key = add_key(database, "checkout")
    body = jl(*[line() for _ in range(5000)])
    assert len(body) > 200_000
    status, answer = call(wsgi, body, bearer())
    assert status == 413 and "200000 bytes" in answer["error"] and "nothing was recorded" in answer["error"]
    status, answer = call(wsgi, body, bearer(), length=30)  # a lying Content-Length: only 30 bytes are read
    assert status == 200 and answer["accepted"] == 0 and answer["rejected"] == 1
    status, answer = call(wsgi, body, bearer(), length=-1)  # no length: reading stops at the cap
    assert status == 413
    assert _requests(database, key) == 0


def test_wrong_method(wsgi: KeybotWSGI) -> None:
    assert call(wsgi, b"", bearer(), method="GET")[0] == 405


def test_a_million_lines_in_chunks_total_exactly(
    wsgi: KeybotWSGI,
    database: Database,
    now: None,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "[postgresql" in request.node.nodeid:
        pytest.skip("one database is enough for the volume; the statements are the same as above")
    monkeypatch.setenv("KEYBOT_INGEST_MAX_BYTES", "1000000")
    keys = [add_key(database, f"svc-{i}") for i in range(50)]
    base = int(NOW.timestamp()) - 4 * 3600  # a gateway streaming: 5,000 lines a minute for 200 minutes
    total, chunk = 1_000_000, 10_000
    for start in range(0, total, chunk):
        body = "\n".join(
            f'{{"key":"svc-{i % 50}","ts":{base + (i // 5000) * 60},"requests":{1 + i % 3}}}'
            for i in range(start, start + chunk)
        ).encode()
        status, answer = call(wsgi, body, bearer())
        assert (status, answer.get("accepted"), answer.get("rejected")) == (200, chunk, 0), answer
    expected = [0] * 50
    for i in range(total):
        expected[i % 50] += 1 + i % 3
    with database.session() as session:
        block = series(session, keys, NOW - (NOW - NOW).__class__(hours=4), NOW)
    assert block.values["requests"].sum(axis=1).tolist() == expected
