from __future__ import annotations

import io
import json
import logging

from bot.log import configure_logging, get_logger
from tests.fakes import canary_key


def test_json_logs_redact_secrets_everywhere_in_the_event() -> None:
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream)
    canary = canary_key()
    get_logger("t").info(f"pasted {canary}", query=canary, nested={"list": [canary]})
    line = stream.getvalue().strip()
    event = json.loads(line)
    assert canary[8:60] not in line
    assert event["query"] == f"[REDACTED sk-proj-...{canary[-4:]}]"
    assert event["level"] == "info" and "timestamp" in event


def test_library_logs_through_stdlib_are_redacted() -> None:
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream)
    canary = canary_key()
    logging.getLogger("httpx").warning("request with Authorization: Bearer %s failed", canary)
    assert "failed" in stream.getvalue() and canary[8:60] not in stream.getvalue()


def test_exception_tracebacks_are_redacted() -> None:
    stream = io.StringIO()
    configure_logging("console", "DEBUG", stream)
    canary = canary_key()
    try:
        raise ValueError(f"bad key {canary}")
    except ValueError:
        get_logger("t").exception("boom")
    assert "boom" in stream.getvalue() and "ValueError" in stream.getvalue()
    assert canary[8:60] not in stream.getvalue()


def test_level_filter() -> None:
    stream = io.StringIO()
    configure_logging("json", "WARNING", stream)
    get_logger("t").info("quiet")
    get_logger("t").warning("loud")
    assert "quiet" not in stream.getvalue() and "loud" in stream.getvalue()
