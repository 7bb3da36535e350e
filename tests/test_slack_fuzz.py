"""Hostile command text and malformed interaction payloads over real HTTP: never a 5xx, never a traceback,
never an echoed secret, never a live mention."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.log import configure_logging
from bot.slack import ids
from tests.fakes import canary_key
from tests.slack_world import SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import block_actions_payload, event_callback_body, slash_command_body
from tests.world import World

CANARY = canary_key()
INJECTIONS = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U0FUZZED1>",
    "<https://evil.example|click>",
    "<#C0FUZZ>",
]
pieces = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [*INJECTIONS, CANARY, "--drill", "#1", "sk-...Xy9Q", "%", "' OR 1=1 --", "\x00", "`", "*"]
    ),
)


@pytest.fixture
def sw(world: World, slack_standin: SlackStandin) -> Iterator[SlackWorld]:
    world.add_key("fuzz-target", "staging")
    with serving(world, slack_standin) as served:
        yield served


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(pieces, max_size=6), command=st.sampled_from(["/revoke-key", "/key-owner", "/rotate-key"])
)
def test_fuzzed_commands(sw: SlackWorld, parts: list[str], command: str) -> None:
    text = " ".join(parts)
    response = sw.post(slash_command_body(command, text, response_url=sw.slack.response_url("fuzz")))
    assert response.status < 500


def test_fuzz_outgoing_is_clean(sw: SlackWorld) -> None:
    """After a burst of hostile commands, nothing keybot sent carries the secret or a live mention."""
    for command in ("/revoke-key", "/key-owner"):
        for injected in [*INJECTIONS, CANARY, f"fuzz-target {CANARY} <!channel>"]:
            response = sw.post(
                slash_command_body(command, injected, response_url=sw.slack.response_url("fuzz"))
            )
            assert response.status == 200
    sw.wait(lambda: len(sw.slack.calls_to("views.update")) >= 8, timeout=60, what="forms")
    outgoing = sw.outgoing_text() + json.dumps(sw.slack.response_posts, default=str)
    assert CANARY not in outgoing and CANARY[8:40] not in outgoing
    for injected in INJECTIONS:
        assert injected not in outgoing, injected


# --- signed but malformed interaction payloads ---------------------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.sampled_from(["U" * 5000, "x" * 70_000]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
PATHS = [
    ("user",), ("user", "id"), ("actions",), ("actions", 0), ("actions", 0, "action_id"),
    ("actions", 0, "value"), ("actions", 0, "selected_option"), ("channel",), ("channel", "id"),
    ("response_url",), ("trigger_id",), ("team",), ("enterprise",), ("container",), ("view",), ("type",),
]  # fmt: skip


def _mutate(payload: dict[str, Any], path: tuple[Any, ...], value: object, delete: bool) -> None:
    node: Any = payload
    for step in path[:-1]:
        found = (isinstance(node, dict) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and step < len(node)
        )
        if not found:
            return
        node = node[step]
    last = path[-1]
    if isinstance(node, dict) and delete:
        node.pop(last, None)
    elif isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int) and last < len(node)):
        node[last] = value


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream)
    yield stream


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    action=st.sampled_from(
        [ids.APPROVE, ids.ROTATE_NOW, ids.REVOKE_FROM_LEAK, ids.ABORT, ids.RESOLVE_INCIDENT]
    ),
    changes=st.lists(st.tuples(st.sampled_from(PATHS), json_values, st.booleans()), min_size=1, max_size=4),
    from_home=st.booleans(),
)
def test_fuzzed_interaction_payloads_never_500(
    sw: SlackWorld,
    logs: io.StringIO,
    action: str,
    changes: list[tuple[tuple[Any, ...], object, bool]],
    from_home: bool,
) -> None:
    """Build 11: a signed payload with missing fields, wrong types or absurd ids is a 400 (or answered), never
    a 500, never a traceback in the log."""
    view = {"id": "V0HOME", "type": "home"} if from_home else None
    ref = ids.ActionRef(kind="run", id="run_0", step="revoke_old", extra={"ver": "1"}).encode()
    payload = block_actions_payload(action, ref, view=view, response_url=sw.slack.response_url("fuzz"))
    for path, value, delete in changes:
        _mutate(payload, path, value, delete)
    response = sw.post(urlencode({"payload": json.dumps(payload)}))
    assert response.status < 500, response.text
    assert "Traceback" not in logs.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.one_of(st.text(max_size=80), st.sampled_from(["null", "[]", "{}", '{"type": 1}', '"x"', "1e999"]))
)
def test_fuzzed_raw_payload_strings_never_500(sw: SlackWorld, logs: io.StringIO, raw: str) -> None:
    response = sw.post(urlencode({"payload": raw}), content_type="application/x-www-form-urlencoded")
    assert response.status < 500, response.text
    assert "Traceback" not in logs.getvalue()


EVENT_FIELDS = [
    "channel",
    "user",
    "text",
    "ts",
    "thread_ts",
    "subtype",
    "bot_id",
    "files",
    "attachments",
    "blocks",
]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.dictionaries(
        st.sampled_from([*EVENT_FIELDS, "message", "previous_message"]), json_values, max_size=4
    )
)
def test_fuzzed_message_events_never_500(
    sw: SlackWorld, logs: io.StringIO, changes: dict[str, object]
) -> None:
    """A message event with fields of the wrong type or size is refused or ignored, never a 500."""
    event: dict[str, object] = {
        "type": "message",
        "channel": "C0FUZZ",
        "user": "U0FUZZ",
        "text": "hi",
        "ts": "1.1",
    }
    event.update(changes)
    response = sw.post(event_callback_body(event))
    assert response.status < 500, response.text
    assert "Traceback" not in logs.getvalue()
