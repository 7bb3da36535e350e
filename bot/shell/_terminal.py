"""The terminal side of the shell: prompts, output from background threads, and what numbers press.

Changes arrive from the emulator's delivery thread while the REPL may be blocked on input, so every write
goes through one lock and re-shows the pending prompt; numbering stays tied to the message it was printed
with (``m3``), and a bare number presses the most recently printed message or window with buttons.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from bot.shell import _forms
from bot.shell._model import Change
from bot.shell._render import Key, Rendered, render
from bot.slack.blocks.text import TextButton

MAX_LINE = 40_000  # Slack's message limit; longer input is refused, not truncated


@dataclass
class Target:
    """Something with buttons that was printed: what a number typed later presses."""

    ref: str
    key: Key
    channel: str | None = None
    ts: str | None = None
    view_id: str | None = None
    buttons: list[TextButton] = field(default_factory=list)


class Terminal:
    """Reads lines and prints changes for the person ``me``; also the :class:`~bot.shell._forms.FormIO`."""

    def __init__(
        self, stdin: TextIO, stdout: TextIO, prompt: str, me: str, channel_name: Callable[[str], str]
    ) -> None:
        self._stdin, self._stdout, self.prompt = stdin, stdout, prompt
        self._me, self._channel_name = me, channel_name
        self._lock = threading.RLock()
        self._waiting: str | None = None  # the prompt shown while blocked on input
        self._shown: dict[Key, str] = {}  # last text printed per message/view (to coalesce repeats)
        self._targets: dict[Key, Target] = {}
        self._order: list[Key] = []  # live targets, most recently printed last

    # ---- I/O -------------------------------------------------------------------------------
    def write(self, text: str) -> None:
        with self._lock:
            if self._waiting is not None:
                self._stdout.write("\n")
            self._stdout.write(text)
            if self._waiting is not None:
                self._stdout.write(self._waiting)
            self._stdout.flush()

    def say(self, text: str) -> None:
        self.write(text + "\n")

    def read(self, prompt: str) -> str | None:
        """One line without its newline, None at EOF; an over-long line is drained, returned long."""
        with self._lock:
            self._stdout.write(prompt)
            self._stdout.flush()
            self._waiting = prompt
        try:
            line = self._stdin.readline(MAX_LINE + 2)
            if len(line) > MAX_LINE and not line.endswith("\n"):
                while (rest := self._stdin.readline(65536)) and not rest.endswith("\n"):
                    pass
        finally:
            with self._lock:
                self._waiting = None
        return None if line == "" else line.rstrip("\r\n")

    def ask(self, prompt: str) -> str | None:
        """A line for a form field or a confirm dialog; over-long answers are refused and asked again."""
        while (line := self.read(prompt)) is not None and len(line) > MAX_LINE:
            self.say(f"⚠ At most {MAX_LINE:,} characters; try again.")
        return line

    # ---- changes ---------------------------------------------------------------------------
    def show(self, change: Change) -> None:
        """Print ``change`` (an update that changes nothing visible is skipped)."""
        rendered = render(change, self._me, self._channel_name)
        if rendered is None:
            return
        with self._lock:
            if rendered.key is not None:
                if change.updated and self._shown.get(rendered.key) == rendered.body:
                    return
                self._shown[rendered.key] = rendered.body
            if change.kind in ("view_closed", "deleted"):
                self._forget(change)
            footer = self._track(change, rendered) if rendered.buttons else ""
            lines = rendered.body.rstrip("\n").split("\n") if rendered.body.strip() else []
            body = "".join(f"  {line}\n" if line else "\n" for line in lines)
            self.write(f"\n{rendered.title}\n{body}{footer}")
            if change.kind == "view" and self._waiting == self.prompt and _forms.has_form(change.view):
                self.say("  (press Enter to fill in this form, or type cancel)")

    def _track(self, change: Change, rendered: Rendered) -> str:
        assert rendered.key is not None
        target = self._targets.get(rendered.key)
        if target is None:
            view_id = str(change.view.get("id")) if change.view else None
            target = Target(f"m{len(self._targets) + 1}", rendered.key, change.channel, change.ts, view_id)
            self._targets[rendered.key] = target
        target.buttons = rendered.buttons
        if rendered.key in self._order:
            self._order.remove(rendered.key)
        self._order.append(rendered.key)
        count = len(rendered.buttons)
        return f"  (type {'1' if count == 1 else f'1-{count}'} to press a button; later: {target.ref} N)\n"

    def _forget(self, change: Change) -> None:
        if change.kind == "view_closed" and change.view:
            key: Key = ("view", str(change.view.get("id")))
        elif change.user:
            key = ("ephemeral", str(change.ts))
        else:
            key = ("message", f"{change.channel}/{change.ts}")
        if key in self._order:
            self._order.remove(key)

    def target(self, ref: str | None) -> Target | None:
        """The target named ``ref`` (``m3``), or the most recently printed live one."""
        with self._lock:
            if ref is not None:
                return next((t for t in self._targets.values() if t.ref == ref), None)
            return self._targets[self._order[-1]] if self._order else None
