"""Calling keybot's WSGI app in-process and reading its Prometheus text, for the observability tests."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from slack_bolt import App

from bot.config import Settings
from bot.db.session import Database
from bot.observability.readiness import Readiness
from bot.slack.serve import KeybotWSGI

CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:9/keybot?connect_timeout=2"
"""Nothing listens on the discard port: a connection is refused at once."""


def wsgi(
    database: Database, settings: Settings | None = None, readiness: Readiness | None = None
) -> KeybotWSGI:
    app = App(token="xoxb-test", signing_secret="s" * 32, token_verification_enabled=False)
    return KeybotWSGI(app, database, settings=settings, readiness=readiness)


def get(app: Any, path: str, headers: dict[str, str] | None = None) -> tuple[str, dict[str, str], str]:
    """(status, response headers, body) of a GET."""
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "wsgi.input": None}
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    answer: dict[str, Any] = {}

    def start(status: str, response_headers: list[tuple[str, str]], *_: Any) -> None:
        answer["status"], answer["headers"] = status, dict(response_headers)

    body = b"".join(app(environ, start)).decode()
    return answer["status"], answer["headers"], body


def samples(text: str) -> dict[str, list[Sample]]:
    """Every family's samples by family name (parsed by prometheus_client, so the text must be valid)."""
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def value(found: dict[str, list[Sample]], family: str, sample: str, **labels: str) -> float:
    return sum(
        s.value
        for s in found[family]
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )
