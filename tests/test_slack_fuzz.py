"""Hostile command text over real HTTP: never a 5xx, never an echoed secret, never a live mention."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import canary_key
from tests.slack_world import SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import slash_command_body
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
