"""The shell adapter: chat with the real Bolt app from a terminal (like Hubot's shell or Errbot's text mode).

One code path: every line becomes the request Slack would send (signed, so Bolt's verification stays on)
and goes through ``app.dispatch``; the app's Web API calls go to :class:`~bot.shell.emulator.LocalSlack`,
whose changes are printed as text as they happen. Only the transport differs from production.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.secrets import redact
from bot.shell import _forms, _payloads, _press
from bot.shell._render import pressables
from bot.shell._terminal import MAX_LINE, Terminal
from bot.shell.emulator import LocalSlack
from bot.slack.blocks.text import mrkdwn_to_text

__all__ = ["MAX_LINE", "ShellChat", "commands_from_manifest"]

_AS = re.compile(r"as\s+(\S+)", re.IGNORECASE)
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
_PRESS = re.compile(r"(?:(m\d+)\s+)?(\d+)")


def commands_from_manifest(path: str | Path) -> list[tuple[str, str]]:
    """``(command, description)`` pairs from a Slack app manifest, for ``help``; [] if it is unreadable."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        commands = data.get("features", {}).get("slash_commands") or []
        return [(str(c["command"]), str(c.get("description") or "")) for c in commands if "command" in c]
    except (OSError, yaml.YAMLError, AttributeError, TypeError, KeyError):
        return []


class ShellChat:
    """A terminal chat with ``app``: ``run()`` is the REPL, ``handle_line()`` one line of it (for tests).

    ``settle``/``settle_timeout``: after each request, how long the workspace must stay quiet (and at most
    how long to wait) before the prompt returns; later changes are still printed when they happen.
    ``waiting``: one line per run waiting for a person or for time (shown at start, and before quitting,
    which then asks first); ``people``: the user ids ``as`` accepts (any well-formed id when None).
    """

    def __init__(
        self,
        app: App,
        emulator: LocalSlack,
        *,
        signing_secret: str,
        user_id: str = "U0SHELL01",
        user_name: str = "you",
        channel_id: str = "C0SHELL",
        channel_name: str = "shell",
        team_id: str = "T0SHELL",
        team_domain: str = "shell",
        bot_name: str = "keybot",
        commands: Sequence[tuple[str, str]] = (),
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
        prompt: str = "you> ",
        settle: float = 0.25,
        settle_timeout: float = 5.0,
        waiting: Callable[[], Sequence[str]] | None = None,
        people: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.app, self.emulator = app, emulator
        self._secret = signing_secret
        self._who = _payloads.Who(
            user_id,
            user_name,
            team_id,
            team_domain,
            channel_id,
            channel_name,
            emulator.app_id,
            emulator.bot_user_id,
        )
        self._bot_name = bot_name
        self._commands = list(commands)
        self._term = Terminal(stdin, stdout, prompt, user_id, emulator.channel_name)
        self._settle, self._settle_timeout = settle, settle_timeout
        self._walked: set[tuple[str, str]] = set()  # (view id, hash) of forms already asked
        self._waiting, self._people = waiting, people
        self.closed = False
        emulator.add_user(user_id, user_name)
        emulator.add_channel(channel_id, channel_name)
        self._unsubscribe = emulator.subscribe(self._term.show)

    # ---- REPL --------------------------------------------------------------------------------
    def run(self) -> None:
        """Read lines until ``quit`` or EOF (Ctrl-D); Ctrl-C cancels the prompt, never the app."""
        self._say(f"keybot shell: you are @{self._who.user_name} in #{self._who.channel_name}. Type help.")
        waiting = self._waiting_runs()
        if waiting:
            self._say(_listing("Runs waiting since the last time (type home to see yours):", waiting))
        try:
            while not self.closed:
                try:
                    line = self._term.read(self._term.prompt)
                    if line is None:
                        if self._may_leave(input_ended=True):
                            break
                        continue
                    self.handle_line(line)
                except KeyboardInterrupt:
                    self._say("\n(Ctrl-C cancels what you were typing; type quit or press Ctrl-D to leave)")
        finally:
            self.emulator.settle(self._settle, self._settle_timeout)
            self.close()

    def _waiting_runs(self) -> list[str]:
        if self._waiting is None:
            return []
        try:
            return list(self._waiting())
        except Exception as exc:  # the list is advice; a database hiccup must not keep anyone in
            self._say(f"⚠ could not list waiting runs ({type(exc).__name__})")
            return []

    def _may_leave(self, *, input_ended: bool = False) -> bool:
        """True unless runs are waiting and the person, asked, would rather stay."""
        waiting = self._waiting_runs()
        if not waiting:
            return True
        self._say(_listing("These runs are still waiting:", waiting))
        try:
            answer = self._term.ask("Quit anyway? They stay waiting and are listed at the next start [y/N] ")
        except KeyboardInterrupt:
            answer = "n"
        if answer is None:  # no more input (a pipe ended): nobody is there to answer
            return True
        if answer.strip().lower() in ("y", "yes"):
            return True
        self._say("(staying)" + ("; press Ctrl-D again or type quit to leave" if input_ended else ""))
        return False

    def close(self) -> None:
        """Stop printing the workspace's changes (``run()`` does this when it ends)."""
        self.closed = True
        self._unsubscribe()

    def _say(self, text: str) -> None:
        self._term.say(text)

    def handle_line(self, line: str) -> None:
        """One line typed at the prompt; never raises (problems are printed as one line)."""
        try:
            self._handle(line)
        except (_forms.InputEnded, EOFError):
            self._say("(input ended)")
        except Exception as exc:
            detail = " ".join(redact(str(exc)).split())[:300]
            self._say(f"⚠ {type(exc).__name__}: {detail}")

    def _handle(self, raw: str) -> None:
        line = raw.rstrip("\r\n")
        if len(line) > MAX_LINE:
            self._say(
                f"⚠ That line is longer than {MAX_LINE:,} characters (Slack's limit); nothing was sent."
            )
            return
        text = line.strip()
        command = text.lower()
        if command in ("quit", "exit"):
            self.closed = self._may_leave()
        elif command in ("help", "?"):
            self._help()
        elif not text:
            self._after(force_form=True)
        elif command in ("cancel", "close"):
            self._cancel()
        elif command == "home":
            self._home()
        elif match := _AS.fullmatch(text):
            self._become(match.group(1).upper())
        elif match := _PRESS.fullmatch(text):
            self._press(int(match.group(2)), match.group(1))
        elif text.startswith("/"):
            self._slash(text)
        else:
            self._message(line)

    # ---- requests ----------------------------------------------------------------------------
    def _dispatch(self, body: str, content_type: str, what: str) -> BoltResponse | None:
        """Sign ``body`` like Slack and hand it to the app in-process; None (and a line) when it failed."""
        headers = _payloads.sign(self._secret, body, content_type)
        response = self.app.dispatch(BoltRequest(body=body, headers=dict(headers)))
        if response.status == 200:
            return response
        if response.status == 401:
            self._say(f"⚠ keybot rejected the {what} (HTTP 401): the signing secret is not the app's")
        elif response.status == 404:
            self._say(f"⚠ keybot has no handler for this {what} (HTTP 404; Slack shows dispatch_failed)")
        else:
            self._say(f"⚠ keybot answered the {what} with HTTP {response.status}")
        return None

    def _after(self, *, force_form: bool = False) -> None:
        """Let background work land, then ask for the open modal's inputs if it shows a new form."""
        for _ in range(10):  # a submission may update or push another form
            self.emulator.settle(self._settle, self._settle_timeout)
            top = self.emulator.top_modal()
            if top is None or not _forms.has_form(top):
                return
            seen = (str(top["id"]), str(top["hash"]))
            if seen in self._walked and not force_form:
                return
            self._walked.add(seen)
            force_form = False
            self._fill_and_submit(top)

    def _slash(self, text: str) -> None:
        command, _, args = text.partition(" ")
        who = self._who
        url = self.emulator.response_url(channel=who.channel_id, user=who.user_id)
        trigger = self.emulator.new_trigger_id()
        body = _payloads.slash_command(
            who, command, _payloads.escape(args.strip()), response_url=url, trigger_id=trigger
        )
        response = self._dispatch(body, _payloads.FORM, f"command {command}")
        if response is not None and response.body:
            self.emulator.apply_response(_ack_body(response), channel=who.channel_id, user=who.user_id)
        self._after()

    def _message(self, line: str) -> None:
        who = self._who
        text = _payloads.escape(line)
        mention = re.compile(rf"(?<![\w<])@{re.escape(self._bot_name)}\b")
        text = mention.sub(f"<@{who.bot_user_id}>", text)
        ts = self.emulator.post_user_message(who.channel_id, who.user_id, text)
        self._dispatch(
            _payloads.event_callback(who, _payloads.message_event(who, text, ts)), _payloads.JSON, "message"
        )
        if f"<@{who.bot_user_id}>" in text:
            body = _payloads.event_callback(who, _payloads.app_mention_event(who, text, ts))
            self._dispatch(body, _payloads.JSON, "mention")
        self._after()

    def _home(self) -> None:
        who = self._who
        event = _payloads.app_home_opened_event(
            who, self.emulator.dm_channel_id(who.user_id), self.emulator.home_view(who.user_id)
        )
        self._dispatch(_payloads.event_callback(who, event), _payloads.JSON, "App Home event")
        self._after()

    def _cancel(self, *, after: bool = True) -> None:
        view = self.emulator.close_modal()
        if view is None:
            self._say("(no window is open)")
            return
        if view.get("notify_on_close"):
            payload = _payloads.view_closed(self._who, view)
            self._dispatch(_payloads.form_payload(payload), _payloads.FORM, "closed window")
        if after:
            self._after()

    # ---- buttons -----------------------------------------------------------------------------
    def _press(self, number: int, ref: str | None) -> None:
        target = self._term.target(ref)
        if target is None:
            self._say(
                f"(nothing to press: no message {ref} with buttons)" if ref else "(no buttons to press yet)"
            )
            return
        button = next((b for b in target.buttons if b.number == number), None)
        if button is None:
            span = f"1-{len(target.buttons)}" if len(target.buttons) > 1 else "1"
            self._say(f"(there is no button {number} on {target.ref}: its buttons are {span})")
            return
        located = _press.locate(self.emulator, target)
        if located is None:
            self._say(f"({target.ref} is gone: the message was deleted or the window closed)")
            return
        elements = pressables(located[2])
        if number > len(elements):
            self._say(f"({target.ref} changed; look at its latest version)")
            return
        block_id, element = elements[number - 1]
        if not _press.confirmed(self._term, element):
            self._say("(cancelled)")
            return
        action = _payloads.button_action(element, block_id, button.label)
        payload = _press.click_payload(self.emulator, self._who, target, located, action)
        self._dispatch(_payloads.form_payload(payload), _payloads.FORM, "button click")
        self._after()

    # ---- modals ------------------------------------------------------------------------------
    def _fill_and_submit(self, view: dict[str, Any]) -> None:
        self._say("Fill in the form (type cancel to close the window):")
        try:
            values = _forms.fill(self._term, view)
            while True:
                current = self.emulator.view(str(view["id"])) or view
                payload = _payloads.view_submission(
                    self._who, current, values, trigger_id=self.emulator.new_trigger_id()
                )
                response = self._dispatch(_payloads.form_payload(payload), _payloads.FORM, "form")
                if response is None:
                    self._say("(the window stays open: press Enter to try again, or type cancel)")
                    return
                answer = _ack_body(response) if response.body else {}
                action = answer.get("response_action")
                if action == "errors" and isinstance(answer.get("errors"), Mapping):
                    errors = {str(k): str(v) for k, v in answer["errors"].items()}
                    problems = [
                        f"  ✗ {_forms.label_of(current, k)}: {mrkdwn_to_text(v)}" for k, v in errors.items()
                    ]
                    self._say("keybot found problems:\n" + "\n".join(problems))
                    values = _forms.fill(self._term, current, values, errors)
                    continue
                if action == "update" and isinstance(answer.get("view"), Mapping):
                    self.emulator.replace_top_modal(answer["view"])
                elif action == "push" and isinstance(answer.get("view"), Mapping):
                    self.emulator.push_modal(answer["view"])
                else:
                    self.emulator.close_modal(clear=action == "clear")
                return
        except _forms.Cancelled as cancelled:
            self._cancel(after=False)
            if isinstance(cancelled, _forms.Interrupted):
                self._say("(Ctrl-C: the form was cancelled and its window closed)")
        except _forms.InputEnded:
            self._say("(input ended; the form was not submitted)")

    def _become(self, user_id: str) -> None:
        """Act as another person, e.g. the second on-call who approves a production revocation."""
        known = sorted(set(self._people()) | {self._who.user_id}) if self._people is not None else None
        if not _USER_ID.fullmatch(user_id) or (known is not None and user_id not in known):
            listed = ", ".join(known) if known else "a Slack user id such as U0BOB00001"
            self._say(f"(no such person: {_CONTROL.sub('', user_id)[:40]}; `as` takes one of: {listed})")
            return
        self._who = dataclasses.replace(self._who, user_id=user_id, user_name=user_id.lower())
        self.emulator.add_user(user_id, user_id.lower())
        self._say(f"(you are now <@{user_id}>)")

    def _help(self) -> None:
        lines = [
            f"You are @{self._who.user_name} in #{self._who.channel_name}; lines go through the real bot.",
            "  /command text   run a slash command (it sees the text exactly as typed)",
            "  N               press button N of the last message or window that showed buttons",
            "  mK N            press button N of an earlier message (each shows its ref, e.g. m3)",
            "  home            open keybot's App Home tab",
            "  as U0BOB00001   act as another person (e.g. the second on-call who approves)",
            "  cancel          close the open window",
            "  (empty line)    fill in the open window's form again",
            "  anything else   post it in the channel (keybot's leak watcher reads it)",
            "  help, quit      this text; leave (Ctrl-D works too)",
            "In a form: pick options by number (Enter keeps the default); end multi-line text with an",
            "empty line; type cancel to close the window. Buttons that ask for confirmation ask y/N.",
        ]
        if self._commands:
            lines.append("Slash commands:")
            lines += [f"  {name:<16}{desc}" for name, desc in self._commands]
        self._say("\n".join(lines))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _listing(title: str, lines: Sequence[str]) -> str:
    return "\n".join([title, *(f"  • {line}" for line in lines)])


def _ack_body(response: BoltResponse) -> dict[str, Any]:
    """What an ack() carried: JSON (``{"text": ...}``, ``{"response_action": ...}``) or plain text."""
    body = response.body or ""
    if body.lstrip().startswith("{"):
        try:
            data = json.loads(body)
        except ValueError:
            return {"text": body}
        return data if isinstance(data, dict) else {"text": body}
    return {"text": body}
