"""`POST /ingest/usage`: usage lines from API gateways and proxies, mounted by `keybot serve`.

Authenticated by `Authorization: Bearer <KEYBOT_INGEST_TOKEN>`, or by `X-Keybot-Signature: sha256=<hex>`,
the HMAC-SHA256 with `KEYBOT_INGEST_HMAC_SECRET` of `<X-Keybot-Timestamp>.<body>`, whose timestamp (unix
seconds) must be within `KEYBOT_INGEST_HMAC_WINDOW` of now (a captured request cannot be replayed
later). Both compared in constant time. With neither configured the endpoint is off (404, saying so).

The body is read up to `KEYBOT_INGEST_MAX_BYTES` and no further, whatever Content-Length claims; a larger
body is a 413 and nothing is written. Accepted lines are written in one transaction: the answer's
`accepted` count is what was stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from bot.db.session import Database
from bot.log import get_logger
from bot.usage.ingest import parse_json_lines, split_lines
from bot.usage.resolve import KeyResolver
from bot.usage.service import record_lines
from bot.usage.settings import UsageSettings, usage_settings

log = get_logger(__name__)
PATH = "/ingest/usage"
SOURCE = "ingest"
READ_PIECE = 1 << 16
StartResponse = Callable[..., Any]


class TooLarge(Exception):
    pass


def _json(
    start: StartResponse, status: str, payload: dict[str, Any], extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    data = json.dumps(payload).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *(extra or [])]
    start(status, headers)
    return [data]


def read_capped(environ: dict[str, Any], cap: int) -> bytes:
    """The request body, never more than `cap` bytes read (raises TooLarge beyond)."""
    try:
        declared = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        declared = -1
    if declared > cap:
        raise TooLarge
    stream = environ["wsgi.input"]
    want = declared if declared >= 0 else cap + 1
    pieces: list[bytes] = []
    size = 0
    while size < want:
        piece = stream.read(min(READ_PIECE, want - size))
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
        if size > cap:
            raise TooLarge
    return b"".join(pieces)


def _bearer_ok(environ: dict[str, Any], settings: UsageSettings) -> bool | None:
    """True/False when a bearer token was sent and one is configured; None when not applicable."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    if settings.ingest_token is None or not header.lower().startswith("bearer "):
        return None
    given = header[7:].strip().encode()
    return hmac.compare_digest(given, settings.ingest_token.get_secret_value().encode())


def _signature_error(environ: dict[str, Any], body: bytes, settings: UsageSettings, now: float) -> str | None:
    """None when the HMAC signature is good, else why not."""
    if settings.ingest_hmac_secret is None:
        return "missing or wrong credentials"
    stamp = str(environ.get("HTTP_X_KEYBOT_TIMESTAMP", "")).strip()
    given = str(environ.get("HTTP_X_KEYBOT_SIGNATURE", "")).strip().removeprefix("sha256=")
    if not stamp or not given:
        return "missing credentials: send a bearer token or X-Keybot-Timestamp and X-Keybot-Signature"
    if not stamp.isdigit() or len(stamp) > 12:
        return "X-Keybot-Timestamp must be unix seconds"
    if abs(now - int(stamp)) > settings.hmac_window_seconds:
        return f"X-Keybot-Timestamp is more than {settings.hmac_window_seconds} s from the server's clock"
    expected = sign(settings.ingest_hmac_secret.get_secret_value(), int(stamp), body)
    if not hmac.compare_digest(given.encode(), expected.removeprefix("sha256=").encode()):
        return "bad signature"
    return None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Keybot-Signature` value for a body sent at `timestamp` (what a gateway computes)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class IngestEndpoint:
    """The WSGI handler for `POST /ingest/usage`; `clock` is injectable for the replay window's tests."""

    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        settings = usage_settings()
        if not settings.ingest_enabled:
            return _json(
                start,
                "404 Not Found",
                {"error": "usage ingest is disabled: set KEYBOT_INGEST_TOKEN or KEYBOT_INGEST_HMAC_SECRET"},
            )
        if environ.get("REQUEST_METHOD") != "POST":
            return _json(
                start, "405 Method Not Allowed", {"error": "POST JSON lines here"}, [("Allow", "POST")]
            )
        bearer = _bearer_ok(environ, settings)
        if bearer is False:
            return self._unauthorized(start, "wrong bearer token")
        try:
            body = read_capped(environ, settings.ingest_max_bytes)
        except TooLarge:
            limit = settings.ingest_max_bytes
            tell = f"bodies are limited to {limit} bytes (KEYBOT_INGEST_MAX_BYTES); send smaller chunks"
            return _json(start, "413 Payload Too Large", {"error": f"{tell}; nothing was recorded"})
        if (
            bearer is None
            and (problem := _signature_error(environ, body, settings, self.clock())) is not None
        ):
            return self._unauthorized(start, problem)
        return self._ingest(start, body)

    def _unauthorized(self, start: StartResponse, reason: str) -> list[bytes]:
        log.info("usage ingest refused", reason=reason)
        return _json(
            start,
            "401 Unauthorized",
            {"error": reason},
            [("WWW-Authenticate", 'Bearer realm="keybot ingest"')],
        )

    def _ingest(self, start: StartResponse, body: bytes) -> list[bytes]:
        from bot.db.base import utcnow

        try:
            with self.database.session() as session:
                report = parse_json_lines(split_lines(body), KeyResolver(session), utcnow())
            record_lines(self.database, report.lines, source=SOURCE)
        except Exception as error:
            log.warning("usage ingest failed", error_type=type(error).__name__)
            return _json(
                start,
                "503 Service Unavailable",
                {"error": "the usage store is unavailable; nothing was recorded, retry later"},
            )
        log.info("usage ingested", accepted=len(report.lines), rejected=report.rejected)
        return _json(start, "200 OK", report.as_json())
