"""Block Kit as terminal text, for the shell adapter: the same messages, and buttons pressed by number.

Text is un-escaped for display (``&lt;`` → ``<``) but terminal control characters are stripped, so user
text cannot move the cursor or recolour the screen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

RULE = "─" * 60
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINK = re.compile(r"<([^<>|]+)\|([^<>]+)>")
_SPECIAL = re.compile(r"<([@#!])([^<>|]+)>")
_BARE_URL = re.compile(r"<(https?://[^<>|]+|mailto:[^<>|]+)>")
_FIELD = re.compile(r"^\*([^*\n]+)\*\n(.*)$", re.DOTALL)
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")


class TextButton(NamedTuple):
    """A pressable element: what the user types (``number``) and what the adapter dispatches."""

    number: int
    action_id: str
    value: str
    label: str


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.buttons: list[TextButton] = []

    def press(self, element: Mapping[str, Any]) -> str:
        label = _plain(element.get("text"))
        number = len(self.buttons) + 1
        self.buttons.append(
            TextButton(number, str(element.get("action_id", "")), str(element.get("value", "")), label)
        )
        marker = " (!)" if element.get("style") == "danger" else ""
        return f"[{number}] {label}{marker}"


def _clean(text: str) -> str:
    return _CONTROL.sub("", text.replace("\r\n", "\n")).replace("\t", " ")


def mrkdwn_to_text(text: str) -> str:
    """Slack markup as terminal text: ``<@U1>`` → ``@U1``, ``<u|l>`` → ``l (u)``, ``&lt;`` → ``<``.

    Used by the shell adapter only; the result must never be sent back to Slack (it is no longer escaped).
    """
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
    text = _SPECIAL.sub(lambda m: ("@" if m.group(1) == "!" else m.group(1)) + m.group(2), text)
    text = _BARE_URL.sub(lambda m: m.group(1), text)
    text = _BOLD.sub(lambda m: m.group(1), text)
    return _clean(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def _plain(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return _clean(str(obj)) if obj else ""
    text = str(obj.get("text", ""))
    return mrkdwn_to_text(text) if obj.get("type") == "mrkdwn" else _clean(text)


def _field(obj: Any) -> str:
    raw = str(obj.get("text", "")) if isinstance(obj, Mapping) else str(obj)
    match = _FIELD.match(raw)
    if match:
        label, value = match.group(1), match.group(2)
        return f"{mrkdwn_to_text(label)}: {mrkdwn_to_text(value).replace(chr(10), ' ')}"
    return _plain(obj).replace("\n", " ")


def _option_label(option: Mapping[str, Any]) -> str:
    return _plain(option.get("text"))


def _describe_element(element: Mapping[str, Any], out: _Out) -> str:
    kind = element.get("type")
    if kind == "button":
        return out.press(element)
    if kind in ("static_select", "radio_buttons", "checkboxes", "overflow"):
        initial = element.get("initial_option") or {}
        labels = []
        for option in element.get("options", []):
            mark = " (default)" if initial and option.get("value") == initial.get("value") else ""
            labels.append(f"{_option_label(option)}{mark}")
        return f"{kind.replace('_', ' ')}: " + " | ".join(labels)
    if kind == "plain_text_input":
        shape = "multi-line text" if element.get("multiline") else "text"
        if element.get("max_length"):
            shape += f", max {element['max_length']} chars"
        placeholder = _plain(element.get("placeholder"))
        return shape + (f' — "{placeholder}"' if placeholder else "")
    return f"{kind}"


def _render_block(block: Mapping[str, Any], out: _Out) -> None:
    kind = block.get("type")
    lines = out.lines
    if kind == "header":
        title = _plain(block.get("text")).upper()
        lines += [title, "=" * min(len(title), 60)]
    elif kind == "section":
        if block.get("text"):
            lines.append(_plain(block["text"]))
        for field in block.get("fields", []):
            lines.append(f"  {_field(field)}")
        accessory = block.get("accessory")
        if isinstance(accessory, Mapping):
            lines.append(f"  {_describe_element(accessory, out)}")
    elif kind == "context":
        parts = [
            _plain(e) if e.get("type") != "image" else f"[{e.get('alt_text', 'image')}]"
            for e in block.get("elements", [])
        ]
        lines.append("  " + " · ".join(parts).replace("\n", "\n  "))
    elif kind == "divider":
        lines.append(RULE)
    elif kind == "actions":
        lines.append("  ".join(_describe_element(e, out) for e in block.get("elements", [])))
    elif kind == "input":
        element = block.get("element", {})
        optional = " (optional)" if block.get("optional") else ""
        where = f"{block.get('block_id', '?')}/{element.get('action_id', '?')}"
        lines.append(f"> {_plain(block.get('label'))}{optional} [{where}]: {_describe_element(element, out)}")
        if block.get("hint"):
            lines.append(f"  {_plain(block['hint'])}")
    elif kind == "image":
        lines.append(f"[image: {_clean(str(block.get('alt_text', '')))}]")
    else:
        lines.append(f"[{kind} block]")


def blocks_to_text(blocks: Sequence[Mapping[str, Any]]) -> tuple[str, list[TextButton]]:
    """Render message blocks; buttons are numbered in reading order, starting at 1."""
    out = _Out()
    for block in blocks:
        _render_block(block, out)
    return "\n".join(out.lines) + "\n", out.buttons


def view_to_text(view: Mapping[str, Any]) -> tuple[str, list[TextButton]]:
    """Render a modal or home view: title, blocks with their inputs' ids, then the submit/close choices."""
    out = _Out()
    title = _plain(view.get("title")) or ("App Home" if view.get("type") == "home" else "untitled")
    banner = f"[{view.get('type', 'view')}: {title}]"
    out.lines += [banner, "=" * len(banner)]
    if view.get("callback_id"):
        out.lines.append(f"  callback_id: {view['callback_id']}")
    for block in view.get("blocks", []):
        _render_block(block, out)
    choices = []
    if view.get("submit"):
        choices.append(f"submit: {_plain(view['submit'])}")
    if view.get("close"):
        choices.append(f"close: {_plain(view['close'])}")
    if choices:
        out.lines += [RULE, " · ".join(choices)]
    return "\n".join(out.lines) + "\n", out.buttons
