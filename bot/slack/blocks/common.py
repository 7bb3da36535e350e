"""Small block constructors shared by the builders, so every text goes through the same clipping."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    MarkdownTextObject,
    PlainTextObject,
)

from bot.slack import limits
from bot.slack.ids import ActionRef

Block = dict[str, Any]
Style = Literal["primary", "danger"]


def plain_text(text: str) -> dict[str, str]:
    """A ``plain_text`` object; ``text`` must already be clipped."""
    return {"text": text, "type": "plain_text"}


def mrkdwn_text(text: str) -> dict[str, str]:
    """A ``mrkdwn`` object; ``text`` must already be escaped and clipped."""
    return {"text": text, "type": "mrkdwn"}


def _block(kind: str, block_id: str | None, **parts: Any) -> Block:
    """A block with its keys in slack_sdk's order (sorted; empty parts left out, as the models do)."""
    if block_id:
        parts["block_id"] = block_id
    parts["type"] = kind
    return {key: parts[key] for key in sorted(parts) if parts[key] or key == "type"}


# The constructors below build the plain dicts that slack_sdk's Block Kit models serialise to, key order
# included (pinned by tests/test_blocks_plain.py): they run for every block of every message and modal, and
# the models' reflective to_dict() was most of the CPU a /revoke-key cost. `limits` enforces the lengths.


def header(text: str, block_id: str | None = None) -> Block:
    return _block("header", block_id, text=plain_text(limits.plain(text, limits.HEADER_TEXT)))


def section(text: str, *, block_id: str | None = None, accessory: ButtonElement | None = None) -> Block:
    """A mrkdwn section; ``text`` must already be escaped (builders mix user text with mentions)."""
    return _block(
        "section",
        block_id,
        text=mrkdwn_text(limits.clip(text, limits.SECTION_TEXT) or "-"),
        accessory=accessory.to_dict() if accessory is not None else None,
    )


def fields(pairs: Sequence[tuple[str, str]], *, block_id: str | None = None) -> list[Block]:
    """``*Label*\\nvalue`` fields, ten per section (Slack's cap); values must already be escaped."""
    out: list[Block] = []
    for start in range(0, len(pairs), limits.SECTION_FIELDS):
        chunk = pairs[start : start + limits.SECTION_FIELDS]
        texts = [mrkdwn_text(limits.clip(f"*{k}*\n{v or '-'}", limits.FIELD_TEXT)) for k, v in chunk]
        suffix = f"_{start // limits.SECTION_FIELDS}" if start else ""
        out.append(_block("section", f"{block_id}{suffix}" if block_id else None, fields=texts))
    return out


def context(*texts: str, block_id: str | None = None) -> Block:
    """Small grey lines; at most ten elements (Slack's cap), already-escaped mrkdwn."""
    elements = [mrkdwn_text(limits.clip(t, limits.TEXT)) for t in texts if t]
    return _block("context", block_id, elements=elements[: limits.CONTEXT_ELEMENTS])


def divider() -> Block:
    return {"type": "divider"}


def confirm(title: str, text: str, yes: str, no: str = "Cancel", style: Style | None = None) -> ConfirmObject:
    """A confirmation dialog; ``text`` is mrkdwn and must already be escaped."""
    return ConfirmObject(
        title=PlainTextObject(text=limits.plain(title, limits.CONFIRM_TITLE)),
        text=MarkdownTextObject(text=limits.clip(text, limits.CONFIRM_TEXT)),
        confirm=PlainTextObject(text=limits.plain(yes, limits.CONFIRM_BUTTON)),
        deny=PlainTextObject(text=limits.plain(no, limits.CONFIRM_BUTTON)),
        style=style,
    )


def button(
    label: str,
    action_id: str,
    ref: ActionRef,
    *,
    style: Style | None = None,
    confirm_with: ConfirmObject | None = None,
) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=limits.plain(label, limits.BUTTON_TEXT)),
        action_id=action_id,
        value=ref.encode(),
        style=style,
        confirm=confirm_with,
    )


def actions(buttons: Sequence[ButtonElement], *, block_id: str) -> Block:
    return ActionsBlock(elements=list(buttons)[: limits.ACTIONS_ELEMENTS], block_id=block_id).to_dict()


def when(value: datetime | None) -> str:
    """Times are shown in UTC with the zone spelled out: incident responders sit in many time zones."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m 05s``, ``2h 10m``: short enough for a progress line."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def ago(then: datetime, now: datetime) -> str:
    """Human age of an event relative to the ``now`` the caller passed in."""
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86_400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86_400} d ago"


def chunk_lines(lines: Sequence[str], limit: int = limits.SECTION_TEXT) -> list[str]:
    """Join lines into as few texts as fit ``limit`` each; one over-long line is clipped, never dropped."""
    texts: list[str] = []
    current: list[str] = []
    size = 0
    for raw in lines:
        line = limits.clip(raw, limit)
        extra = len(line) + (1 if current else 0)
        if current and size + extra > limit:
            texts.append("\n".join(current))
            current, size = [], 0
            extra = len(line)
        current.append(line)
        size += extra
    if current:
        texts.append("\n".join(current))
    return texts
