"""Filling in a modal at the terminal: one prompt per input block, answers shaped like Slack's view state.

Slack's client enforces required inputs, max/min lengths and option choices before it submits; so does
this walk, so the app's own validation (``response_action: errors``) is what remains to test. What the person
typed is never printed back: a reason may contain the very secret being reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from bot.slack.blocks.text import mrkdwn_to_text

Json = dict[str, Any]
Values = dict[str, dict[str, Json]]

CANCEL = "cancel"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SINGLE = {"radio_buttons", "static_select"}
_MULTI = {"checkboxes", "multi_static_select"}
_TEXT = {"plain_text_input", "number_input", "email_text_input", "url_text_input"}
_PICKED = {  # element type -> (state key, pattern, what to type)
    "users_select": ("selected_user", r"[UW][A-Z0-9]{2,}", "a user id like U0123ABCD"),
    "conversations_select": (
        "selected_conversation",
        r"[CGD][A-Z0-9]{2,}",
        "a conversation id like C0123ABCD",
    ),
    "channels_select": ("selected_channel", r"C[A-Z0-9]{2,}", "a channel id like C0123ABCD"),
    "datepicker": ("selected_date", r"\d{4}-\d{2}-\d{2}", "a date like 2024-05-31"),
    "timepicker": ("selected_time", r"\d{2}:\d{2}", "a time like 14:30"),
}
_INITIAL = {
    "users_select": "initial_user",
    "conversations_select": "initial_conversation",
    "channels_select": "initial_channel",
    "datepicker": "initial_date",
    "timepicker": "initial_time",
}


class FormIO(Protocol):
    def ask(self, prompt: str) -> str | None:
        """One line from the person (without the newline); None at end of input."""

    def say(self, text: str) -> None:
        """Print ``text`` (a newline is added)."""


class Cancelled(Exception):
    """The person typed ``cancel``."""


class Interrupted(Cancelled):
    """The person pressed Ctrl-C at a form prompt: the form is cancelled, not the app."""


class InputEnded(Exception):
    """Input ended (EOF) in the middle of a form."""


def _text(obj: Any) -> str:
    """A text object for the terminal; control characters from app text cannot reach the screen."""
    if isinstance(obj, Mapping):
        raw = str(obj.get("text", ""))
        return mrkdwn_to_text(raw) if obj.get("type") == "mrkdwn" else _CONTROL.sub("", raw)
    return _CONTROL.sub("", str(obj or ""))


def input_blocks(view: Mapping[str, Any]) -> list[Json]:
    """The view's input blocks that hold an element with an ``action_id`` (what a submission carries)."""
    return [
        dict(b)
        for b in view.get("blocks") or []
        if isinstance(b, Mapping)
        and b.get("type") == "input"
        and isinstance(b.get("element"), Mapping)
        and b["element"].get("action_id")
    ]


def label_of(view: Mapping[str, Any], block_id: str) -> str:
    """An input's label, for error messages keyed by ``block_id``."""
    block = next((b for b in input_blocks(view) if b.get("block_id") == block_id), None)
    return _text(block.get("label")) if block else block_id


def has_form(view: Mapping[str, Any] | None) -> bool:
    return bool(view and view.get("type") == "modal" and view.get("submit") and input_blocks(view))


def options(element: Mapping[str, Any]) -> list[Json]:
    found = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        found += list(group.get("options") or [])
    return [dict(o) for o in found if isinstance(o, Mapping)]


def initial_entry(element: Mapping[str, Any]) -> Json:
    """The state Slack reports for an untouched element: its initial value, or null."""
    kind = str(element.get("type"))
    entry: Json = {"type": kind}
    if kind in _SINGLE:
        entry["selected_option"] = element.get("initial_option")
    elif kind in _MULTI:
        entry["selected_options"] = list(element.get("initial_options") or [])
    elif kind in _TEXT:
        entry["value"] = element.get("initial_value")
    elif kind in _PICKED:
        entry[_PICKED[kind][0]] = element.get(_INITIAL[kind])
    return entry


def _ask(io: FormIO, prompt: str) -> str:
    try:
        line = io.ask(prompt)
    except KeyboardInterrupt:
        io.say("")
        raise Interrupted from None
    if line is None:
        raise InputEnded
    if line.strip().lower() == CANCEL:
        raise Cancelled
    return line


def _choose(io: FormIO, block: Json, element: Json, current: Json, label: str) -> Json:
    kind = str(element["type"])
    opts = options(element)
    for number, option in enumerate(opts, 1):
        extra = f" — {_text(option['description'])}" if option.get("description") else ""
        io.say(f"    {number}) {_text(option.get('text'))}{extra}")
    multi = kind in _MULTI
    key = "selected_options" if multi else "selected_option"
    chosen = current.get(key)
    if multi:
        keep = ", ".join(str(opts.index(o) + 1) for o in chosen or [] if o in opts) or "none"
        prompt = f"  {label} [numbers separated by commas, Enter = {keep}, '-' = none]: "
    else:
        keep = str(opts.index(chosen) + 1) if chosen in opts else ""
        enter = f", Enter = {keep}" if keep else ""
        prompt = f"  {label} [1-{len(opts)}{enter}]: "
    while True:
        answer = _ask(io, prompt).strip()
        if not answer:
            picked = chosen if multi else ([chosen] if chosen else [])
        elif multi and answer == "-":
            picked = []
        else:
            picked = _pick(answer, opts, multi)
            if picked is None:
                io.say(f"  Type {'numbers' if multi else 'a number'} from 1 to {len(opts)}.")
                continue
        if not picked and not block.get("optional"):
            io.say("  This field is required.")
            continue
        return {"type": kind, key: picked if multi else (picked[0] if picked else None)}


def _pick(answer: str, opts: Sequence[Json], multi: bool) -> list[Json] | None:
    parts = [p.strip() for p in answer.split(",")] if multi else [answer]
    picked: list[Json] = []
    for part in parts:
        match = None
        if part.isdigit() and 1 <= int(part) <= len(opts):
            match = opts[int(part) - 1]
        else:
            match = next((o for o in opts if o.get("value") == part), None)
        if match is None:
            return None
        picked.append(match)
    return picked


def _type_text(io: FormIO, block: Json, element: Json, current: Json, label: str) -> Json:
    kind = str(element["type"])
    multiline = bool(element.get("multiline"))
    had = current.get("value") not in (None, "")
    limits = []
    if element.get("min_length"):
        limits.append(f"at least {element['min_length']} chars")
    if element.get("max_length"):
        limits.append(f"at most {element['max_length']} chars")
    if multiline:
        limits.append("end with an empty line")
    if had:
        limits.append("Enter keeps the current text")
    note = f" ({'; '.join(limits)})" if limits else ""
    while True:
        if multiline:
            io.say(f"  {label}{note}:")
            lines: list[str] = []
            while (line := _ask(io, "  | ")) != "":
                lines.append(line)
            value = "\n".join(lines)
        else:
            value = _ask(io, f"  {label}{note}: ")
        if not value.strip():
            value = str(current.get("value") or "") if had else ""
        problem = _text_problem(kind, element, value, optional=bool(block.get("optional")))
        if problem:
            io.say(f"  {problem}")
            continue
        return {"type": kind, "value": value or None}


def _text_problem(kind: str, element: Json, value: str, *, optional: bool) -> str | None:
    if not value.strip():
        return None if optional else "This field is required."
    if element.get("max_length") and len(value) > int(element["max_length"]):
        return f"At most {element['max_length']} characters (you typed {len(value)})."
    if element.get("min_length") and len(value) < int(element["min_length"]):
        return f"At least {element['min_length']} characters."
    if kind == "number_input":
        pattern = r"-?\d+(\.\d+)?" if element.get("is_decimal_allowed") else r"-?\d+"
        if not re.fullmatch(pattern, value.strip()):
            return "Type a number."
    if kind == "email_text_input" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value.strip()):
        return "Type an email address."
    if kind == "url_text_input" and not re.match(r"https?://\S+$", value.strip()):
        return "Type a URL starting with http:// or https://."
    return None


def _type_pick(io: FormIO, block: Json, element: Json, current: Json, label: str) -> Json:
    kind = str(element["type"])
    key, pattern, what = _PICKED[kind]
    had = current.get(key)
    while True:
        keep = " (Enter keeps the current choice)" if had else ""
        answer = _ask(io, f"  {label} — {what}{keep}: ").strip() or (str(had) if had else "")
        if not answer and block.get("optional"):
            return {"type": kind, key: None}
        if re.fullmatch(pattern, answer):
            return {"type": kind, key: answer}
        io.say("  This field is required." if not answer else f"  Type {what}.")


def ask_field(io: FormIO, block: Json, current: Json, error: str | None = None) -> Json:
    """Ask for one input block's value; ``current`` is its state so far (initial value or last answer)."""
    element = dict(block["element"])
    kind = str(element.get("type"))
    label = _text(block.get("label")) or str(block.get("block_id"))
    optional = " (optional)" if block.get("optional") else ""
    io.say(f"• {label}{optional}")
    if block.get("hint"):
        io.say(f"  {_text(block['hint'])}")
    if error:
        io.say(f"  ✗ {mrkdwn_to_text(error)}")
    if kind in _SINGLE or kind in _MULTI:
        return _choose(io, block, element, current, label)
    if kind in _TEXT:
        return _type_text(io, block, element, current, label)
    if kind in _PICKED:
        return _type_pick(io, block, element, current, label)
    io.say(f"  ({kind} inputs are not supported in the shell; left empty)")
    return dict(current)


def fill(
    io: FormIO,
    view: Mapping[str, Any],
    previous: Values | None = None,
    errors: Mapping[str, str] | None = None,
) -> Values:
    """Ask every input (or, with ``errors``, only the blocks that have one) and return the state values."""
    values: Values = {}
    for block in input_blocks(view):
        block_id = str(block.get("block_id"))
        action_id = str(block["element"]["action_id"])
        current = (previous or {}).get(block_id, {}).get(action_id) or initial_entry(block["element"])
        if errors is None or block_id in errors:
            current = ask_field(io, block, current, (errors or {}).get(block_id))
        values[block_id] = {action_id: current}
    return values
