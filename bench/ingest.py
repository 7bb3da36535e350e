"""Usage ingest: `POST /ingest/usage` end to end over loopback HTTP, and `record_lines` on its own.

Figures per database: lines per second through keybot's WSGI app served by waitress (bodies of 10,000
JSON lines, one Content-Length request and one chunked request per body, one client), and lines per
second of `record_lines` for UsageLine batches (fold + upsert). The traffic is a gateway streaming
5,000 lines a minute over 200 keys with status codes, source addresses and models.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from bench.common import database_targets, figure

LINES = int(os.environ.get("BENCH_INGEST_LINES", "200000"))
KEYS = 200
CHUNK = 10_000
TOKEN = "bench-ingest-token-0123456789"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def _bodies(total: int) -> Iterator[bytes]:
    base = int((NOW - timedelta(hours=6)).timestamp())
    for start in range(0, total, CHUNK):
        yield "\n".join(
            json.dumps(
                {
                    "key": f"bench-{i % KEYS}",
                    "ts": base + (i // 5000) * 60,
                    "requests": 1,
                    "input_tokens": 120,
                    "output_tokens": 40,
                    "cost": 0.0004,
                    "status": {"200": 1} if i % 50 else {"429": 1},
                    "source_ip": f"10.0.{i % KEYS}.{i % 3}",
                    "model": "gpt-4o-mini",
                }
            )
            for i in range(start, min(total, start + CHUNK))
        ).encode()


def _seed(url: str) -> None:
    from sqlalchemy import insert

    from bot.db.migrate import ensure_schema
    from bot.db.session import Database
    from bot.registry.models import Key

    database = Database(url)
    ensure_schema(database.engine)
    with database.engine.begin() as conn:
        conn.execute(insert(Key), [{"name": f"bench-{i}", "provider": "openai"} for i in range(KEYS)])
    database.dispose()


def _post(port: int, body: bytes, *, chunked: bool) -> int:
    """The number of lines the endpoint accepted."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    if chunked:
        pieces = (body[i : i + 65536] for i in range(0, len(body), 65536))
        conn.request("POST", "/ingest/usage", body=pieces, headers=headers, encode_chunked=True)
    else:
        conn.request("POST", "/ingest/usage", body=body, headers=headers)
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return int(answer["accepted"])


def _http(url: str, label: str) -> None:
    from slack_bolt import App
    from waitress.server import create_server

    from bot.db.session import Database
    from bot.slack.serve import KeybotWSGI

    os.environ["KEYBOT_INGEST_TOKEN"] = TOKEN
    os.environ["KEYBOT_INGEST_MAX_BYTES"] = "8000000"
    database = Database(url)
    app = App(token="xoxb-bench", signing_secret="s" * 32, token_verification_enabled=False)
    server = create_server(
        KeybotWSGI(app, database), host="127.0.0.1", port=0, threads=4, max_request_body_size=8_000_001
    )
    port = server.effective_port  # type: ignore[union-attr]
    threading.Thread(target=server.run, daemon=True).start()
    bodies = list(_bodies(LINES))
    try:
        for chunked in (False, True):
            start = time.perf_counter()
            accepted = sum(_post(port, body, chunked=chunked) for body in bodies)
            elapsed = time.perf_counter() - start
            assert accepted == LINES, accepted
            kind = "chunked" if chunked else "content_length"
            figure(f"ingest_http_{kind}_lines_per_s[{label}]", LINES / elapsed, "lines/s")
    finally:
        server.task_dispatcher.shutdown()
        server.close()
        database.dispose()


def _record(url: str, label: str) -> None:
    from bot.db.session import Database
    from bot.usage.service import record_lines
    from bot.usage.types import UsageLine

    database = Database(url)
    with database.session() as session:
        from sqlalchemy import select

        from bot.registry.models import Key

        ids = list(session.scalars(select(Key.id).order_by(Key.id)))
    base = NOW - timedelta(hours=12)
    lines = [
        UsageLine(
            ids[i % len(ids)],
            base + timedelta(minutes=i // 5000),
            requests=1,
            input_tokens=120,
            output_tokens=40,
            status={"200": 1},
            source_ip=f"10.1.{i % 200}.1",
            model="gpt-4o-mini",
        )
        for i in range(LINES)
    ]
    start = time.perf_counter()
    for i in range(0, LINES, CHUNK):
        record_lines(database, lines[i : i + CHUNK], source="bench")
    elapsed = time.perf_counter() - start
    figure(f"record_lines_per_s[{label}]", LINES / elapsed, "lines/s")
    database.dispose()


def run() -> None:
    from bot.log import configure_logging

    configure_logging("console", "WARNING")
    print(f"# ingest: {LINES} lines, {KEYS} keys, bodies of {CHUNK} lines")
    for label, url in database_targets("ingest"):
        _seed(url)
        _http(url, label)
        _record(url, label)
