"""The shell adapter: a real Bolt app, driven line by line and end to end through a pseudo-terminal.

The demo app below is a small but real slack_bolt ``App`` whose Web API client points at ``LocalSlack``; it
exercises what keybot's handlers do (ack then open a modal, validate a submission, post buttons, update a
message from a background thread, reply in a thread), so the adapter is tested against Bolt itself.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import select
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.sandbox.openai_server import new_key_value
from bot.secrets import contains_secret, redact, redacted_form
from bot.shell import MAX_LINE, Change, LocalSlack, ShellChat
from bot.shell._payloads import FORM, sign
from bot.slack.api import PermanentSlackError, SlackAPI

SECRET = "shell-test-signing-secret"
CHANNEL = "C0SHELL"
ME = "U0SHELL01"
ROOT = Path(__file__).resolve().parents[1]


def _opt(value: str, text: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text, "emoji": True}, "value": value}


RED, BLUE = _opt("red", "Red"), _opt("blue", "Blue")
SMALL, LARGE = _opt("small", "Small"), _opt("large", "Large")


def plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def demo_modal(channel: str, *, notify_on_close: bool = False) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "demo_modal",
        "title": plain("Demo"),
        "submit": plain("Start"),
        "close": plain("Cancel"),
        "private_metadata": channel,
        "notify_on_close": notify_on_close,
        "blocks": [
            {"type": "section", "block_id": "intro", "text": {"type": "mrkdwn", "text": "*Pick* things"}},
            {
                "type": "input",
                "block_id": "color",
                "label": plain("Color"),
                "element": {
                    "type": "radio_buttons",
                    "action_id": "color.choice",
                    "options": [RED, BLUE],
                    "initial_option": RED,
                },
            },
            {
                "type": "input",
                "block_id": "size",
                "label": plain("Size"),
                "element": {"type": "static_select", "action_id": "size.choice", "options": [SMALL, LARGE]},
            },
            {
                "type": "input",
                "block_id": "note",
                "label": plain("Note"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "note.text",
                    "multiline": True,
                    "max_length": 200,
                },
            },
            {
                "type": "input",
                "block_id": "extra",
                "optional": True,
                "label": plain("Extra"),
                "element": {"type": "plain_text_input", "action_id": "extra.text"},
            },
        ],
    }


def result_blocks(color: str, size: str) -> list[dict[str, Any]]:
    delete = {
        "type": "button",
        "action_id": "demo.delete",
        "text": {"type": "plain_text", "text": "Delete"},
        "value": "delete",
        "style": "danger",
        "confirm": {
            "title": {"type": "plain_text", "text": "Delete the result?"},
            "text": {"type": "mrkdwn", "text": "It is gone for *everyone*."},
            "confirm": {"type": "plain_text", "text": "Delete"},
            "deny": {"type": "plain_text", "text": "Keep"},
        },
    }
    start = {"type": "button", "action_id": "demo.start", "text": {"type": "plain_text", "text": "Start"}}
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Demo result"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Color*\n{color}"},
                {"type": "mrkdwn", "text": f"*Size*\n{size}"},
            ],
        },
        {"type": "actions", "elements": [{**start, "value": "run-1"}, delete]},
    ]


def build_demo_app(emulator: LocalSlack, seen: list[dict[str, Any]] | None = None) -> App:
    """A real Bolt app over the emulator; ``seen`` collects the payload bodies its handlers got."""
    client = WebClient(base_url=emulator.base_url, token=emulator.bot_token)
    app = App(signing_secret=SECRET, client=client)  # the client carries the token
    log = seen if seen is not None else []

    @app.command("/demo")
    def demo(ack: Any, body: dict[str, Any], client: WebClient, respond: Any) -> None:
        log.append(body)
        arg = body.get("text", "")
        if arg == "ping":
            ack("pong")
            return
        ack()
        if arg == "say":
            respond("said in channel", response_type="in_channel")
        elif arg == "eph":
            dismiss = {"type": "button", "action_id": "demo.dismiss", "text": plain("Dismiss"), "value": "d"}
            section = {"type": "section", "text": {"type": "mrkdwn", "text": "Just for you"}}
            respond(text="just for you", blocks=[{**section, "accessory": dismiss}])
        elif arg == "slow":
            time.sleep(0.5)  # longer than the test emulator's trigger_ttl: views.open must fail
            client.views_open(trigger_id=body["trigger_id"], view=demo_modal(body["channel_id"]))
        else:
            notify = arg == "notify"
            client.views_open(
                trigger_id=body["trigger_id"], view=demo_modal(body["channel_id"], notify_on_close=notify)
            )

    @app.view("demo_modal")
    def submit(ack: Any, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        log.append(body)
        values = view["state"]["values"]
        if (values["note"]["note.text"]["value"] or "").strip() == "bad":
            ack(response_action="errors", errors={"note": "*bad* is not a good note"})
            return
        if values["note"]["note.text"]["value"] == "push":
            ack(response_action="push", view=step_two("Step 2"))
            return
        ack()
        color = values["color"]["color.choice"]["selected_option"]["value"]
        size = values["size"]["size.choice"]["selected_option"]["value"]
        client.chat_postMessage(
            channel=view["private_metadata"], text="Demo result", blocks=result_blocks(color, size)
        )

    @app.view("demo_step2")
    def step2(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        log.append(body)
        if view["state"]["values"]["why"]["why.text"]["value"] == "again":
            ack(response_action="update", view=step_two("Step 2, again"))
        else:
            ack(response_action="clear")

    @app.action("demo.dismiss")
    def dismiss(ack: Any, body: dict[str, Any], respond: Any) -> None:
        log.append(body)
        ack()
        respond(text="dismissed", replace_original=True)

    @app.view_closed("demo_modal")
    def closed(ack: Any, body: dict[str, Any]) -> None:
        log.append(body)
        ack()

    @app.action("demo.start")
    def start(ack: Any, body: dict[str, Any], client: WebClient) -> None:
        log.append(body)
        ack()
        channel, ts, user = body["channel"]["id"], body["message"]["ts"], body["user"]["id"]
        blocks = body["message"]["blocks"]

        def later() -> None:  # like a live progress message: updated after the ack, from another thread
            time.sleep(0.1)
            started = {"type": "section", "text": {"type": "mrkdwn", "text": f"✅ Started by <@{user}>"}}
            client.chat_update(channel=channel, ts=ts, text="started", blocks=[blocks[0], started, blocks[2]])

        threading.Thread(target=later, daemon=True).start()

    @app.action("demo.delete")
    def delete(ack: Any, body: dict[str, Any], respond: Any) -> None:
        log.append(body)
        ack()
        respond(delete_original=True)

    @app.action("demo.refresh")
    def refresh(ack: Any, body: dict[str, Any], client: WebClient) -> None:
        ack()
        client.views_publish(user_id=body["user"]["id"], view=home_view("Refreshed"))

    @app.event("message")
    def on_message(event: dict[str, Any], say: Any, client: WebClient) -> None:
        log.append(event)
        text = event.get("text", "")
        if contains_secret(text):
            client.reactions_add(channel=event["channel"], timestamp=event["ts"], name="rotating_light")
            say(text=f"🚨 That looks like a secret: {redact(text)}", thread_ts=event["ts"])
        else:
            say(text=f"Got your message ({len(text)} characters)", thread_ts=event["ts"])

    @app.event("app_mention")
    def mention(event: dict[str, Any], say: Any) -> None:
        say(text=f"hi <@{event['user']}>")

    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: WebClient) -> None:
        client.views_publish(user_id=event["user"], view=home_view("Welcome"))

    return app


def step_two(title: str) -> dict[str, Any]:
    why = {"type": "plain_text_input", "action_id": "why.text", "min_length": 2}
    return {
        "type": "modal",
        "callback_id": "demo_step2",
        "title": plain(title),
        "submit": plain("Done"),
        "blocks": [{"type": "input", "block_id": "why", "label": plain("Why"), "element": why}],
    }


def home_view(title: str) -> dict[str, Any]:
    refresh = {
        "type": "button",
        "action_id": "demo.refresh",
        "text": {"type": "plain_text", "text": "Refresh"},
    }
    return {
        "type": "home",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}},
            {"type": "actions", "elements": [refresh]},
        ],
    }


def run_demo_shell() -> None:
    """Entry point of the end-to-end tests' subprocess: the demo app in a shell on this process's stdio."""
    logging.basicConfig(level=logging.CRITICAL)
    with LocalSlack() as emulator:
        app = build_demo_app(emulator)
        ShellChat(app, emulator, signing_secret=SECRET, commands=[("/demo", "a demo modal")]).run()


# ---- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def emulator() -> Iterator[LocalSlack]:
    with LocalSlack() as emu:
        yield emu


@pytest.fixture
def seen() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def app(emulator: LocalSlack, seen: list[dict[str, Any]]) -> App:
    return build_demo_app(emulator, seen)


Chat = tuple[ShellChat, io.StringIO]


@pytest.fixture
def make_chat(app: App, emulator: LocalSlack) -> Iterator[Callable[..., Chat]]:
    chats: list[ShellChat] = []

    def make(typed: str = "", **kwargs: Any) -> Chat:
        out = io.StringIO()
        kwargs.setdefault("signing_secret", SECRET)
        chat = ShellChat(app, emulator, stdin=io.StringIO(typed), stdout=out, settle=0.25, **kwargs)
        chats.append(chat)
        return chat, out

    yield make
    for chat in chats:
        chat.close()


def wait_for(out: io.StringIO, text: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in out.getvalue():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared in:\n{out.getvalue()}")
        time.sleep(0.02)
    return out.getvalue()


# ---- driven with handle_line -------------------------------------------------------------------------
def test_modal_walk_validation_buttons_update_and_confirm(
    make_chat: Callable[..., Chat], emulator: LocalSlack, seen: list[dict[str, Any]]
) -> None:
    typed = [
        "",  # Color: Enter keeps the initial option (Red)
        "",  # Size: no default, required -> asked again
        "9",  # out of range -> asked again
        "large",  # an option's value works too
        "bad",  # Note (multi-line) ...
        "",  # ... ends with an empty line -> the app answers response_action=errors
        "",  # Extra (optional): left empty
        "all good",  # Note, asked again alone
        "",
        "n",  # first Delete: the confirm dialog says no
        "y",  # second Delete: yes
    ]
    chat, out = make_chat("\n".join(typed) + "\n")

    chat.handle_line("/demo")
    text = wait_for(out, "(type 1-2 to press a button")
    assert "[modal]" in text and "[modal: Demo]" in text and "callback_id: demo_modal" in text
    assert "Fill in the form" in text
    assert "• Color" in text and "1) Red" in text and "Color [1-2, Enter = 1]:" in text
    assert (
        "Size [1-2]:" in text and "This field is required." in text and "Type a number from 1 to 2." in text
    )
    assert "Note (at most 200 chars; end with an empty line):" in text
    assert "• Extra (optional)" in text
    assert "keybot found problems:" in text and "✗ Note: bad is not a good note" in text
    assert text.count("• Note") == 2 and text.count("• Color") == 1  # only the field in error is asked again
    assert "[modal] closed: Demo" in text
    assert "#shell · keybot" in text and "DEMO RESULT" in text
    assert "Color: red" in text and "Size: large" in text
    assert "[1] Start  [2] Delete (!)" in text and "(type 1-2 to press a button; later: m1 N)" in text

    submissions = [b for b in seen if b.get("type") == "view_submission"]
    assert len(submissions) == 2
    assert submissions[-1]["view"]["state"]["values"] == {
        "color": {"color.choice": {"type": "radio_buttons", "selected_option": RED}},
        "size": {"size.choice": {"type": "static_select", "selected_option": LARGE}},
        "note": {"note.text": {"type": "plain_text_input", "value": "all good"}},
        "extra": {"extra.text": {"type": "plain_text_input", "value": None}},
    }
    view = submissions[-1]["view"]
    assert view["id"].startswith("V") and view["hash"] and view["private_metadata"] == CHANNEL
    assert submissions[-1]["user"]["id"] == ME and submissions[-1]["trigger_id"]

    chat.handle_line("1")  # Start: the app updates the message from a background thread
    text = wait_for(out, "(updated)")
    assert "✅ Started by @U0SHELL01" in text
    click = next(b for b in seen if b.get("type") == "block_actions")
    assert click["actions"][0]["action_id"] == "demo.start" and click["actions"][0]["value"] == "run-1"
    assert click["actions"][0]["type"] == "button" and click["actions"][0]["block_id"]
    assert click["container"]["type"] == "message" and click["container"]["channel_id"] == CHANNEL
    assert click["message"]["ts"] == click["container"]["message_ts"] and click["message"]["blocks"]
    assert click["response_url"].startswith(emulator.origin)

    chat.handle_line("2")  # Delete (now button 2 of the updated message, same numbering): "n" cancels
    text = out.getvalue()
    assert "Delete the result?" in text and "It is gone for everyone." in text
    assert "Are you sure? [y/N] (y = Delete, n = Keep)" in text and "(cancelled)" in text
    assert len(emulator.messages(CHANNEL)) == 1

    chat.handle_line("m1 2")  # the same button by the message's ref; "y" confirms; respond(delete_original)
    wait_for(out, "a keybot message was deleted")
    assert emulator.messages(CHANNEL) == []
    chat.handle_line("1")
    assert out.getvalue().rstrip().endswith("(no buttons to press yet)")


def test_slash_command_ack_text_and_in_channel_response(make_chat: Callable[..., Chat]) -> None:
    chat, out = make_chat()
    chat.handle_line("/demo ping")
    assert "#shell (only visible to you) · keybot\n  pong\n" in out.getvalue()
    chat.handle_line("/demo say")
    assert "#shell · keybot\n  said in channel\n" in wait_for(out, "said in channel")


def test_response_actions_push_update_and_clear(
    make_chat: Callable[..., Chat], emulator: LocalSlack, seen: list[dict[str, Any]]
) -> None:
    typed = ["", "1", "push", "", "", "x", "again", "fine"]  # "x" is shorter than min_length 2
    chat, out = make_chat("\n".join(typed) + "\n")
    chat.handle_line("/demo")
    text = out.getvalue()
    assert "[modal: Step 2]" in text and "At least 2 characters." in text
    assert "[modal] (updated)" in text and "[modal: Step 2, again]" in text
    assert text.count("[modal] closed") == 2 and emulator.modals() == []
    steps = [b for b in seen if b.get("type") == "view_submission"]
    assert [b["view"]["callback_id"] for b in steps] == ["demo_modal", "demo_step2", "demo_step2"]
    assert steps[1]["view"]["previous_view_id"] == steps[0]["view"]["id"]
    assert emulator.messages(CHANNEL) == []  # the first modal was pushed over, never submitted for real


def test_ephemeral_buttons_reply_through_response_url(
    make_chat: Callable[..., Chat], emulator: LocalSlack, seen: list[dict[str, Any]]
) -> None:
    chat, out = make_chat()
    chat.handle_line("/demo eph")
    assert "#shell (only visible to you) · keybot\n  Just for you\n    [1] Dismiss" in out.getvalue()
    chat.handle_line("1")
    assert "(only visible to you) · keybot (updated)\n  dismissed" in wait_for(out, "dismissed")
    click = seen[-1]
    assert click["container"]["is_ephemeral"] is True and "message" not in click
    assert emulator.ephemerals()[-1]["text"] == "dismissed"


def test_slash_command_payload_is_slack_shaped(
    make_chat: Callable[..., Chat], seen: list[dict[str, Any]]
) -> None:
    chat, _ = make_chat()
    chat.handle_line("/demo ping <b> & co")
    body = seen[-1]
    assert body["command"] == "/demo" and body["text"] == "ping &lt;b&gt; &amp; co"
    assert body["user_id"] == ME and body["user_name"] == "you" and body["channel_id"] == CHANNEL
    assert body["team_id"] == "T0SHELL" and body["trigger_id"] and body["response_url"]


def test_channel_message_thread_reply_and_secrets_never_printed(
    make_chat: Callable[..., Chat], emulator: LocalSlack, seen: list[dict[str, Any]]
) -> None:
    chat, out = make_chat()
    chat.handle_line("hello there")
    assert "#shell · keybot (in thread)\n  Got your message (11 characters)\n" in wait_for(out, "Got your")
    event = seen[-1]
    assert event["type"] == "message" and event["channel_type"] == "channel" and event["user"] == ME
    assert event["ts"] == emulator.messages(CHANNEL)[0]["ts"]

    secret = new_key_value()
    chat.handle_line(f"oops {secret}")
    text = wait_for(out, "That looks like a secret")
    assert secret not in text and secret[-12:] not in text
    assert "keybot reacted :rotating_light: to your message" in text
    assert f"That looks like a secret: {redact(f'oops {secret}')}" in text
    assert redacted_form(secret) in text

    chat.handle_line("hey @keybot")
    wait_for(out, "hi @U0SHELL01")


def test_modal_cancel_sends_view_closed_when_the_app_asks(
    make_chat: Callable[..., Chat], emulator: LocalSlack, seen: list[dict[str, Any]]
) -> None:
    chat, out = make_chat("cancel\n")
    chat.handle_line("/demo notify")
    assert "[modal] closed: Demo" in out.getvalue() and emulator.modals() == []
    closed = seen[-1]
    assert closed["type"] == "view_closed" and closed["view"]["callback_id"] == "demo_modal"
    assert closed["is_cleared"] is False

    chat, out = make_chat("")  # input ends inside the form: the modal stays open, nothing submitted
    chat.handle_line("/demo")
    assert "(input ended; the form was not submitted)" in out.getvalue() and len(emulator.modals()) == 1
    chat.handle_line("cancel")  # notify_on_close is off: closed without a request, like Slack
    assert emulator.modals() == [] and seen[-1].get("command") == "/demo"  # no view_closed sent


def test_expired_trigger_id_is_reported(app: App) -> None:
    with LocalSlack(trigger_ttl=0.2) as emulator:
        slow_app = build_demo_app(emulator)
        out = io.StringIO()
        chat = ShellChat(
            slow_app, emulator, signing_secret=SECRET, stdin=io.StringIO(), stdout=out, settle=0.15
        )
        chat.handle_line("/demo slow")
        wait_for(out, "(Slack API: keybot called views.open → expired_trigger_id)")
        assert emulator.modals() == []


def test_unknown_numbers_and_malformed_input_are_friendly(make_chat: Callable[..., Chat]) -> None:
    chat, out = make_chat()
    chat.handle_line("1")
    assert "(no buttons to press yet)" in out.getvalue()
    chat.handle_line("home")
    text = wait_for(out, "[home]")
    assert "Welcome" in text and "[1] Refresh" in text
    chat.handle_line("7")
    assert "(there is no button 7 on m1: its buttons are 1)" in out.getvalue()
    chat.handle_line("m9 1")
    assert "(nothing to press: no message m9 with buttons)" in out.getvalue()
    chat.handle_line("1")
    assert "[home] (updated)" in wait_for(out, "Refreshed")
    for line in ("/", "/nope", "   ", "\x00\x1b[2J", "cancel", "m", "99999999999999999999"):
        chat.handle_line(line)
    text = out.getvalue()
    assert "keybot has no handler for this command / (HTTP 404" in text
    assert "(no window is open)" in text and not chat.closed
    chat.handle_line("help")
    assert "press button N" in out.getvalue()
    chat.handle_line("quit")
    assert chat.closed


def test_long_lines_are_refused(make_chat: Callable[..., Chat], emulator: LocalSlack) -> None:
    chat, out = make_chat()
    before = list(emulator.calls)
    chat.handle_line("x" * (MAX_LINE + 1))
    assert "⚠ That line is longer than 40,000 characters (Slack's limit); nothing was sent." in out.getvalue()
    assert emulator.calls == before and emulator.messages(CHANNEL) == []

    chat, out = make_chat("y" * 50_000 + "\nhelp\n")  # through run(): refused, the rest of the line drained
    chat.run()
    text = out.getvalue()
    assert (
        "That line is longer than 40,000 characters" in text
        and "press button N" in text
        and "yyyy" not in text
    )


def test_wrong_signing_secret_is_rejected_by_the_app(
    make_chat: Callable[..., Chat], emulator: LocalSlack, app: App
) -> None:
    chat, out = make_chat(signing_secret="not-the-app-secret")
    chat.handle_line("/demo")
    assert "keybot rejected the command /demo (HTTP 401)" in out.getvalue()
    assert "views.open" not in emulator.calls

    body = "token=x&team_id=T0SHELL&user_id=U0SHELL01&command=%2Fdemo&text=ping&trigger_id=1.2.3"
    good = sign(SECRET, body, FORM)
    assert app.dispatch(BoltRequest(body=body, headers=dict(good))).status == 200
    tampered = body.replace("ping", "pong")
    assert app.dispatch(BoltRequest(body=tampered, headers=dict(good))).status == 401
    wrong = sign("wrong", body, FORM)
    assert app.dispatch(BoltRequest(body=body, headers=dict(wrong))).status == 401
    stale = sign(SECRET, body, FORM, timestamp=int(time.time()) - 3600)
    assert app.dispatch(BoltRequest(body=body, headers=dict(stale))).status == 401


def test_dispatch_errors_are_one_line(
    make_chat: Callable[..., Chat], app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_key_value()

    def boom(request: BoltRequest) -> Any:
        raise RuntimeError(f"boom {secret}")

    monkeypatch.setattr(app, "dispatch", boom)
    chat, out = make_chat()
    chat.handle_line("/demo")
    assert out.getvalue() == f"⚠ RuntimeError: {redact(f'boom {secret}')}\n"
    assert secret not in out.getvalue()


# ---- end to end: the REPL in a subprocess -------------------------------------------------------------
SCRIPT = "from tests.test_shell import run_demo_shell; run_demo_shell()"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "KEYBOT_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


class Terminal:
    """The shell in a subprocess on a pseudo-terminal; ``expect`` consumes output up to a text."""

    def __init__(self) -> None:
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=_env()
        )
        os.close(slave)
        self.master, self.seen, self.pos = master, "", 0

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def expect(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while (found := self.seen.find(text, self.pos)) < 0:
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]):
                raise AssertionError(f"{text!r} not in terminal output:\n{self.seen[self.pos :]}")
            if select.select([self.master], [], [], min(left, 0.2))[0]:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                self.seen += chunk.decode(errors="replace").replace("\r\n", "\n")
        start, self.pos = self.pos, found + len(text)
        return self.seen[start : self.pos]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self.master)


@pytest.mark.slow
def test_end_to_end_through_a_pseudo_terminal() -> None:
    term = Terminal()
    try:
        term.expect("keybot shell: you are @you in #shell. Type help.")
        term.expect("you> ")
        term.send("help")
        assert "press button N" in term.expect("a demo modal")
        term.send("/demo")
        screen = term.expect("Color [1-2, Enter = 1]: ")
        assert "[modal: Demo]" in screen and "radio buttons: Red (default) | Blue" in screen
        term.send("")
        term.expect("Size [1-2]: ")
        term.send("2")
        term.expect("  | ")
        term.send("bad")
        term.expect("  | ")
        term.send("")
        term.expect("Extra: ")
        term.send("")
        assert "✗ Note: bad is not a good note" in term.expect("  | ")
        term.send("looks fine")
        term.expect("  | ")
        term.send("")
        screen = term.expect("you> ")
        assert "DEMO RESULT" in screen and "Size: large" in screen and "[1] Start  [2] Delete (!)" in screen
        term.send("1")
        assert "✅ Started by @U0SHELL01" in term.expect("(updated)") + term.expect("[2] Delete (!)")
        term.send("2")
        term.expect("Are you sure? [y/N]")
        term.send("y")
        term.expect("a keybot message was deleted")
        term.send("hello")
        term.expect("Got your message (5 characters)")
        term.send("42")
        term.expect("(no buttons to press yet)")
        term.send("quit")
        assert term.proc.wait(timeout=10) == 0
    finally:
        term.close()


@pytest.mark.slow
def test_end_to_end_through_a_stdin_pipe() -> None:
    secret = new_key_value()
    lines = ["/demo ping", "/demo", "", "1", "note", "", "", "1", "z" * 50_000, f"my key is {secret}", "7"]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=60,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "(only visible to you) · keybot\n  pong" in out
    assert "Size: small" in out and "(updated)" in out and "✅ Started by @U0SHELL01" in out
    assert "That line is longer than 40,000 characters" in out and "zzzz" not in out
    assert secret not in out and redacted_form(secret) in out
    assert "(there is no button 7 on m1: its buttons are 1-2)" in out


# ---- the emulator on its own, through the real WebClient -------------------------------------------------
def _post(url: str, body: bytes, content_type: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_emulator_messages_dms_views_and_errors(emulator: LocalSlack) -> None:
    changes: list[Change] = []
    emulator.subscribe(changes.append)
    client = WebClient(base_url=emulator.base_url, token=emulator.bot_token)

    assert client.auth_test()["user_id"] == emulator.bot_user_id
    posted = client.chat_postMessage(channel="U0ALICE", text="hi *Alice*")
    assert posted["channel"] == "D0ALICE" and posted["ts"]
    assert client.conversations_open(users=["U0ALICE"])["channel"]["id"] == "D0ALICE"
    client.chat_update(channel="D0ALICE", ts=posted["ts"], text="hi again")
    assert emulator.messages("U0ALICE")[0]["text"] == "hi again"
    link = client.chat_getPermalink(channel="D0ALICE", message_ts=posted["ts"])["permalink"]
    assert "D0ALICE" in link
    client.reactions_add(channel="D0ALICE", timestamp=posted["ts"], name="eyes")
    assert client.chat_postEphemeral(channel=CHANNEL, user=ME, text="psst")["message_ts"]
    client.chat_delete(channel="D0ALICE", ts=posted["ts"])
    assert client.users_info(user="U0BOB")["user"]["id"] == "U0BOB"  # auto_users: any U... id is known
    emulator.add_usergroup("S0ONCALL", ["U0ALICE", "U0BOB"])
    assert client.usergroups_users_list(usergroup="S0ONCALL")["users"] == ["U0ALICE", "U0BOB"]

    user_ts = emulator.post_user_message(CHANNEL, ME, "typed by a person")
    failing: list[tuple[Callable[[], object], str]] = [
        (lambda: client.api_call("chat.unfurl"), "unknown_method"),
        (lambda: client.chat_update(channel=CHANNEL, ts=user_ts, text="x"), "cant_update_message"),
        (lambda: client.chat_delete(channel=CHANNEL, ts="1.2"), "message_not_found"),
        (lambda: client.chat_postMessage(channel="#nowhere", text="x"), "channel_not_found"),
        (lambda: client.api_call("chat.postMessage", json={"channel": CHANNEL}), "no_text"),
        (lambda: client.chat_postMessage(channel=CHANNEL, text="x" * 40_001), "msg_too_long"),
        (
            lambda: client.chat_postMessage(channel=CHANNEL, text="x", blocks=[{"type": "divider"}] * 51),
            "invalid_blocks",
        ),
        (lambda: client.views_open(trigger_id="1.2.3", view=demo_modal(CHANNEL)), "invalid_trigger_id"),
        (lambda: client.usergroups_users_list(usergroup="S0NONE"), "no_such_subteam"),
        (lambda: WebClient(base_url=emulator.base_url, token="xoxb-other").auth_test(), "invalid_auth"),
    ]
    for call, code in failing:
        with pytest.raises(SlackApiError) as err:
            call()
        assert err.value.response["error"] == code

    trigger = emulator.new_trigger_id()
    opened = client.views_open(trigger_id=trigger, view=demo_modal(CHANNEL))["view"]
    assert opened["id"].startswith("V") and opened["hash"] and opened["blocks"][0]["block_id"] == "intro"
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id=trigger, view=demo_modal(CHANNEL))
    assert err.value.response["error"] == "exchanged_trigger_id"
    pushed = client.views_push(trigger_id=emulator.new_trigger_id(), view=demo_modal("C0OTHER"))["view"]
    assert [v["id"] for v in emulator.modals()] == [opened["id"], pushed["id"]]
    assert pushed["previous_view_id"] == opened["id"] and pushed["root_view_id"] == opened["id"]
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=demo_modal("C0NEW"))["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    with pytest.raises(SlackApiError) as err:
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=demo_modal("C0NEW"))
    assert err.value.response["error"] == "hash_conflict"
    assert client.views_publish(user_id=ME, view=home_view("Hi"))["view"]["type"] == "home"
    emulator.close_modal(clear=True)
    assert emulator.modals() == []

    emulator.settle()
    kinds = [(c.kind, c.updated) for c in changes if c.kind != "api_error"]
    assert kinds[:5] == [
        ("message", False),
        ("message", True),
        ("reaction", False),
        ("ephemeral", False),
        ("deleted", False),
    ]
    assert ("view", True) in kinds and ("home", False) in kinds and kinds.count(("view_closed", False)) == 2
    errors = [(c.name, c.text) for c in changes if c.kind == "api_error"]
    assert ("chat.unfurl", "unknown_method") in errors and ("views.update", "hash_conflict") in errors


def test_emulator_accepts_form_bodies_with_json_strings(emulator: LocalSlack) -> None:
    blocks = json.dumps([{"type": "section", "text": {"type": "mrkdwn", "text": "from a form"}}])
    body = urllib.parse.urlencode(
        {"token": emulator.bot_token, "channel": CHANNEL, "blocks": blocks, "text": "t"}
    )
    status, answer = _post(emulator.base_url + "chat.postMessage", body.encode(), FORM)
    assert status == 200 and json.loads(answer)["ok"] is True
    assert emulator.messages(CHANNEL)[0]["blocks"][0]["text"]["text"] == "from a form"
    status, answer = _post(emulator.base_url + "auth.test", b"{}", "application/json")
    assert json.loads(answer) == {"ok": False, "error": "not_authed"}


def test_response_urls_answer_replace_delete_and_wear_out(emulator: LocalSlack) -> None:
    client = WebClient(base_url=emulator.base_url, token=emulator.bot_token)
    ts = client.chat_postMessage(channel=CHANNEL, text="original")["ts"]
    url = emulator.response_url(channel=CHANNEL, user=ME, message_ts=ts)

    def send(payload: dict[str, Any]) -> tuple[int, str]:
        return _post(url, json.dumps(payload).encode(), "application/json")

    assert send({"text": "only for you"}) == (200, "ok")
    assert emulator.ephemerals()[-1]["text"] == "only for you" and emulator.ephemerals()[-1]["user"] == ME
    assert send({"text": "for all", "response_type": "in_channel"}) == (200, "ok")
    assert send({"text": "replaced", "replace_original": True}) == (200, "ok")
    assert [m["text"] for m in emulator.messages(CHANNEL)] == ["replaced", "for all"]
    assert send({"delete_original": True}) == (200, "ok")
    assert [m["text"] for m in emulator.messages(CHANNEL)] == ["for all"]
    assert send({"text": "fifth"}) == (200, "ok")
    assert send({"text": "sixth"}) == (404, "used_url")  # five uses, like Slack
    assert _post(emulator.origin + "/hooks/nope", b"{}", "application/json") == (404, "no_service")


def test_keybots_own_slack_wrapper_works_against_the_emulator(emulator: LocalSlack) -> None:
    api = SlackAPI(emulator.bot_token, base_url=emulator.base_url)
    assert api.auth_test()["user_id"] == emulator.bot_user_id
    posted = api.post_message("U0OWNER1", "your key was rotated")
    assert posted.channel == "D0OWNER1" and api.open_dm("U0OWNER1") == "D0OWNER1"
    assert api.update_message(posted.channel, posted.ts, "updated").ts == posted.ts
    assert api.permalink(posted.channel, posted.ts) and api.permalink(posted.channel, "1.1") is None
    assert api.post_ephemeral(CHANNEL, ME, "psst")
    opened = api.open_view(emulator.new_trigger_id(), demo_modal(CHANNEL))
    assert api.update_view(opened.id, demo_modal("C0X"), hash=opened.hash).id == opened.id
    with pytest.raises(PermanentSlackError) as err:
        api.update_view(opened.id, demo_modal("C0Y"), hash=opened.hash)
    assert err.value.code == "hash_conflict"
    assert api.publish_home(ME, home_view("Hi")).id
    emulator.add_usergroup("S0REVOKERS", [ME])
    assert api.usergroup_members("S0REVOKERS") == [ME]
    api.respond(emulator.response_url(channel=CHANNEL, user=ME), "answer", ephemeral=False)
    assert emulator.messages(CHANNEL)[-1]["text"] == "answer"
