"""Payloads shaped as Slack documents and sends them (App Home clicks, selects, Enterprise Grid), and signed
but malformed payloads: every click gets an answer where the person is, nothing ends in a 500 or a
traceback, and the handlers call one explicit service function per action."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.log import configure_logging
from bot.runbooks.models import RunStatus
from bot.slack import ids
from tests.slack_world import SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import block_actions_payload, event_callback_body
from tests.world import World, unique_name

REPO = Path(__file__).resolve().parent.parent


def home_view(user: str) -> dict[str, Any]:
    """The ``view`` Slack attaches to a click on the App Home tab (``type: home``, no callback id)."""
    return {
        "id": "V0HOMETAB1",
        "team_id": "T0STANDIN",
        "type": "home",
        "blocks": [],
        "private_metadata": "",
        "callback_id": "",
        "state": {"values": {}},
        "hash": "1700000000.home",
        "title": {"type": "plain_text", "text": "View Title", "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": None,
        "previous_view_id": None,
        "root_view_id": "V0HOMETAB1",
        "app_id": "A0STANDIN",
        "external_id": "",
        "app_installed_team_id": "T0STANDIN",
        "bot_id": "B0KEYBOT",
    }


def home_click(action_id: str, value: str, user: str, *, enterprise: bool = False) -> str:
    """A block_actions from the App Home tab: ``container.type == "view"``, no response_url, no channel.
    ``enterprise``: an org-wide (Enterprise Grid) install, where ``team`` is null."""
    payload = block_actions_payload(action_id, value, user_id=user, view=home_view(user))
    assert "response_url" not in payload and "channel" not in payload
    if enterprise:
        payload["team"] = None
        payload["is_enterprise_install"] = True
        payload["enterprise"] = {"id": "E0GRID0001", "name": "Grid Org"}
        payload["user"]["team_id"] = "E0GRID0001"
    return urlencode({"payload": json.dumps(payload)})


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream)
    yield stream


@pytest.fixture
def sw(world: World, slack_standin: SlackStandin, logs: io.StringIO) -> Iterator[SlackWorld]:
    with serving(world, slack_standin) as served:
        yield served


def notices(sw: SlackWorld, user: str) -> list[str]:
    """The notices keybot put on top of ``user``'s re-published Home tab."""
    found = []
    for call in sw.slack.calls_to("views.publish"):
        if call.args.get("user_id") != user:
            continue
        view = call.args["view"]
        view = json.loads(view) if isinstance(view, str) else view
        found += [b["text"]["text"] for b in view["blocks"] if b.get("block_id") == "home_notice"]
    return found


@pytest.mark.parametrize("enterprise", [False, True], ids=["workspace", "enterprise-grid"])
def test_rotate_now_on_the_home_tab_tells_the_clicker(sw: SlackWorld, enterprise: bool) -> None:
    """Finding 12: Rotate now on App Home started a rotation and told the clicker nothing."""
    name = unique_name()
    key_id = sw.world.add_key(name, "staging")
    ref = ids.ActionRef(kind="key", id=str(key_id)).encode()
    response = sw.post(home_click(ids.ROTATE_NOW, ref, "U0OWNER01", enterprise=enterprise))
    assert response.status == 200, response.text
    sw.wait(lambda: bool(notices(sw, "U0OWNER01")), what="home notice")
    assert f"Rotation of {name} started" in notices(sw, "U0OWNER01")[0]
    sw.wait(lambda: sw.run_status() is RunStatus.SUCCEEDED, what="rotation")


def test_a_refusal_on_the_home_tab_reaches_the_person_and_the_log(sw: SlackWorld, logs: io.StringIO) -> None:
    """Finding 12: the refusal of Rotate now on App Home vanished without a word or a log line."""
    key_id = sw.world.add_key(unique_name(), "staging")
    ref = ids.ActionRef(kind="key", id=str(key_id)).encode()
    assert sw.post(home_click(ids.ROTATE_NOW, ref, "U0STRANGER")).status == 200
    sw.wait(lambda: bool(notices(sw, "U0STRANGER")), what="refusal notice")
    assert "not started" in notices(sw, "U0STRANGER")[0]
    assert sw.run_status() is None
    refused = [json.loads(line) for line in logs.getvalue().splitlines() if "request refused" in line]
    assert refused and refused[0]["user"] == "U0STRANGER" and refused[0]["action"] == ids.ROTATE_NOW


def test_a_click_with_nowhere_to_answer_is_answered_by_dm(sw: SlackWorld) -> None:
    """A click in a modal (no response_url, no channel) that keybot refuses: the answer comes as a DM."""
    modal = {**home_view("U0ONCALL1"), "type": "modal", "callback_id": ids.REVOKE_MODAL}
    payload = block_actions_payload(ids.APPROVE, "not-a-ref", user_id="U0ONCALL1", view=modal)
    assert sw.post(urlencode({"payload": json.dumps(payload)})).status == 200
    sw.wait(lambda: bool(sw.slack.messages("U0ONCALL1")), what="DM")
    assert "older or unknown message" in json.dumps(sw.slack.messages("U0ONCALL1"))


def test_static_select_deselect_is_answered_not_raised(sw: SlackWorld, logs: io.StringIO) -> None:
    """Finding 12: a static_select deselect (``selected_option: null``) raised AttributeError."""
    payload = block_actions_payload(
        ids.APPROVE, action_type="static_select", response_url=sw.slack.response_url("deselect")
    )
    payload["actions"][0]["selected_option"] = None
    assert sw.post(urlencode({"payload": json.dumps(payload)})).status == 200
    sw.wait(lambda: bool(sw.slack.response_posts.get("deselect")), what="answer")
    assert "Traceback" not in logs.getvalue() and "AttributeError" not in logs.getvalue()


def test_home_opened_for_an_enterprise_install_is_published(sw: SlackWorld) -> None:
    sw.world.add_key(unique_name(), "staging")
    event = {"type": "app_home_opened", "user": "U0OWNER01", "tab": "home", "channel": "D0HOME"}
    body = json.loads(event_callback_body(event))
    body["enterprise_id"], body["is_ext_shared_channel"] = "E0GRID0001", False
    body["authorizations"][0].update(enterprise_id="E0GRID0001", is_enterprise_install=True, team_id=None)
    assert sw.post(json.dumps(body)).status == 200
    sw.slack.wait_for("views.publish", timeout=10)


def malformed_clicks() -> list[tuple[str, dict[str, Any]]]:
    base = block_actions_payload(ids.APPROVE, "x")
    cases: list[tuple[str, dict[str, Any]]] = []
    for field in ("user", "actions", "type"):
        cases.append((f"no {field}", {k: v for k, v in base.items() if k != field}))
    cases += [
        ("user is a string", {**base, "user": "U0ONCALL1"}),
        ("user id is a number", {**base, "user": {"id": 12}}),
        ("absurd user id", {**base, "user": {"id": "U" * 5000}}),
        ("actions is an object", {**base, "actions": {"action_id": ids.APPROVE}}),
        ("empty actions", {**base, "actions": []}),
        ("action is a list", {**base, "actions": [[ids.APPROVE]]}),
        ("value is a number", {**base, "actions": [{**base["actions"][0], "value": 7}]}),
        ("oversized value", {**base, "actions": [{**base["actions"][0], "value": "v" * 100_000}]}),
        ("channel is a string", {**base, "channel": "C0INCIDENT"}),
        ("response_url is a list", {**base, "response_url": ["x"]}),
        ("unknown type", {**base, "type": "block_suggestion_v9"}),
    ]
    submission = {"type": "view_submission", "user": {"id": "U0ONCALL1"}, "view": {"callback_id": 5}}
    cases.append(("view_submission with a numeric callback id", submission))
    cases.append(("view_submission without a view", {"type": "view_submission", "user": {"id": "U0X"}}))
    return cases


@pytest.mark.parametrize(("what", "payload"), malformed_clicks(), ids=[c[0] for c in malformed_clicks()])
def test_signed_malformed_interactions_get_a_400_without_a_traceback(
    sw: SlackWorld, logs: io.StringIO, what: str, payload: dict[str, Any]
) -> None:
    """Finding 11 / build 11: a 400, never a 500 or a traceback."""
    response = sw.post(urlencode({"payload": json.dumps(payload)}))
    assert response.status == 400, (what, response.status, response.text)
    assert "Traceback" not in logs.getvalue()


@pytest.mark.parametrize(
    "body",
    [
        "payload=%7Bnot-json",
        "payload=%5B1%2C2%5D",
        "payload=null",
        "payload=",
        urlencode({"payload": json.dumps({"type": "block_actions"})}),
    ],
)
def test_unreadable_payload_fields_are_400(sw: SlackWorld, logs: io.StringIO, body: str) -> None:
    response = sw.post(body, content_type="application/x-www-form-urlencoded")
    assert response.status == 400, (body, response.status, response.text)
    assert "Traceback" not in logs.getvalue()


@pytest.mark.parametrize(
    "event",
    [
        {"type": "message", "channel": "C0INCIDENT", "user": {"id": "U0X"}, "text": "hi", "ts": "1.2"},
        {"type": "message", "channel": "C0INCIDENT", "user": "U0X", "text": ["hi"], "ts": "1.2"},
        {"type": "message", "channel": "C" * 500, "user": "U0X", "text": "hi", "ts": "1.2"},
        {"type": "message", "channel": "C0INCIDENT", "user": "U0X", "files": "nope", "ts": "1.2"},
        {"type": "app_home_opened", "user": ["U0X"], "tab": "home"},
    ],
)
def test_malformed_events_are_400(sw: SlackWorld, logs: io.StringIO, event: dict[str, Any]) -> None:
    assert sw.post(event_callback_body(event)).status == 400
    assert "Traceback" not in logs.getvalue()


def test_slack_handlers_call_explicit_services() -> None:
    """Finding 12: no getattr dispatch, no domain writes and no runbook names inside the Slack handlers."""
    handlers = (REPO / "bot" / "slack" / "handlers").glob("*.py")
    source = "\n".join(path.read_text() for path in handlers)
    assert not re.search(r"getattr\(\s*(service|waits|lifecycle)", source)
    assert "open_incident" not in source and "append_event" not in source
    assert "KeyStatus.COMPROMISED" not in source
    assert '"rotate"' not in source and '"revoke-replace-audit-notify"' not in source
    assert "select(" not in source, "queries belong in services (the App Home overview, the leak watcher)"
    assert 'runbook="' not in source and "runbook='" not in source
