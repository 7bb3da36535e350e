from __future__ import annotations

import io
import json
import logging
import subprocess
from pathlib import Path

import pytest

from bot.log import configure_logging, get_logger
from tests.fakes import canary_key
from tests.test_crash_recovery import KEYBOT, keybot_env
from tests.world import World, unique_name


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


def test_the_log_file_gets_every_line_redacted_and_is_created_only_when_written(tmp_path: Path) -> None:
    stream, log_file = io.StringIO(), tmp_path / "state" / "keybot.log"
    configure_logging("console", "INFO", stream, file=log_file)
    assert not log_file.exists()
    canary = canary_key()
    get_logger("t").warning("step failed", error=f"echo {canary}")
    logging.getLogger("httpx").warning("request with %s failed", canary)
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [line["event"] for line in lines] == [
        "step failed",
        f"request with [REDACTED sk-proj-...{canary[-4:]}] failed",
    ]
    assert "step failed" in stream.getvalue()
    assert canary[8:60] not in log_file.read_text() + stream.getvalue()


@pytest.mark.cli_surface
def test_a_failed_run_reaches_the_log_file_without_its_secret(world: World, tmp_path: Path) -> None:
    """`keybot revoke` whose revocation fails: keybot.log under KEYBOT_STATE_DIR has the failure line."""
    name = unique_name("log")
    world.add_key(name, "staging")
    secret = world.keys[name]["value"]
    world.openai.inject(r"/api_keys/key_", 400, method="DELETE", times=None, message="echo " + secret)
    state = tmp_path / "state"
    env = {**keybot_env(world), "KEYBOT_STATE_DIR": str(state)}
    revoke = [*KEYBOT, "revoke", name, "--reason", "leaked", "--yes", "--mode", "emergency"]
    failed = subprocess.run(revoke, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert failed.returncode == 3, failed.stderr
    written = (state / "keybot.log").read_text()
    events = [json.loads(line) for line in written.splitlines()]
    assert any(e["event"] == "step needs attention" and e["level"] == "warning" for e in events), written
    assert secret not in written and secret[8:40] not in written
