"""What the terminal prints for each :class:`~bot.shell.emulator.Change`: where it went, then the text.

Rendering reuses :mod:`bot.slack.blocks.text` (the same function the golden files check), so the shell
shows exactly the messages Slack would get; only app-sent content is printed, never what the person typed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.shell._model import Change
from bot.slack.blocks.text import TextButton, blocks_to_text, mrkdwn_to_text, view_to_text

Json = dict[str, Any]
Key = tuple[str, str]  # ("message", "C…/ts"), ("ephemeral", ts), ("view", id), ("home", user)


@dataclass(frozen=True)
class Rendered:
    """A printable change: ``key`` identifies the message/view it shows (None for one-off notes)."""

    key: Key | None
    title: str
    body: str
    buttons: list[TextButton]


def message_blocks(blocks: Sequence[Json], attachments: Sequence[Json] = ()) -> list[Json]:
    """A message's blocks followed by its attachments' (legacy attachments become a section)."""
    out = [dict(b) for b in blocks if isinstance(b, Mapping)]
    for att in attachments:
        if not isinstance(att, Mapping):
            continue
        if isinstance(att.get("blocks"), list):
            out += [dict(b) for b in att["blocks"] if isinstance(b, Mapping)]
        elif att.get("text") or att.get("fallback"):
            text = {"type": "mrkdwn", "text": str(att.get("text") or att.get("fallback"))}
            out.append({"type": "section", "text": text})
    return out


def pressables(blocks: Sequence[Json]) -> list[tuple[str, Json]]:
    """(block_id, button element) in the order :func:`blocks_to_text` numbers buttons."""
    found: list[tuple[str, Json]] = []
    for block in blocks:
        kind, block_id = block.get("type"), str(block.get("block_id") or "")
        elements: list[Any] = []
        if kind == "section":
            elements = [block.get("accessory")]
        elif kind == "actions":
            elements = list(block.get("elements") or [])
        elif kind == "input":
            elements = [block.get("element")]
        found += [
            (block_id, dict(e)) for e in elements if isinstance(e, Mapping) and e.get("type") == "button"
        ]
    return found


def _body(text: str, blocks: Sequence[Json], attachments: Sequence[Json]) -> tuple[str, list[TextButton]]:
    all_blocks = message_blocks(blocks, attachments)
    if all_blocks:
        return blocks_to_text(all_blocks)
    return mrkdwn_to_text(text) + "\n", []


def render(change: Change, me: str, channel_name: Callable[[str], str]) -> Rendered | None:
    """The text for ``change`` as ``me`` sees it; None when there is nothing to show."""
    updated = " (updated)" if change.updated else ""
    thread = " (in thread)" if change.thread_ts and change.thread_ts != change.ts else ""
    where = _where(change.channel or "", me, channel_name)
    kind = change.kind
    if kind == "message":
        body, buttons = _body(change.text, change.blocks, change.attachments)
        title = f"{where} · keybot{thread}{updated}"
        return Rendered(("message", f"{change.channel}/{change.ts}"), title, body, buttons)
    if kind == "ephemeral":
        body, buttons = _body(change.text, change.blocks, change.attachments)
        who = "you" if change.user == me else f"@{change.user}"
        title = f"{where} (only visible to {who}) · keybot{thread}{updated}"
        return Rendered(("ephemeral", str(change.ts)), title, body, buttons)
    if kind == "view" and change.view is not None:
        body, buttons = view_to_text(change.view)
        return Rendered(("view", str(change.view.get("id"))), f"[modal]{updated}", body, buttons)
    if kind == "home" and change.view is not None:
        if change.user != me:
            return Rendered(None, f"[home of @{change.user}] published{updated}", "", [])
        body, buttons = view_to_text(change.view)
        return Rendered(("home", me), f"[home]{updated}", body, buttons)
    if kind == "view_closed" and change.view is not None:
        return Rendered(None, f"[modal] closed: {_title(change.view)}", "", [])
    if kind == "reaction":
        whose = "your message" if change.user == me else "a message"
        return Rendered(None, f"{where} · keybot reacted :{change.name}: to {whose}", "", [])
    if kind == "deleted":
        return Rendered(None, f"{where} · a keybot message was deleted", "", [])
    if kind == "api_error":
        return Rendered(None, f"(Slack API: keybot called {change.name} → {change.text})", "", [])
    return None


def _title(view: Mapping[str, Any]) -> str:
    title = view.get("title")
    raw = str(title.get("text", "")) if isinstance(title, Mapping) else str(title or "")
    return mrkdwn_to_text(raw.replace("&", "&amp;")) or "untitled"


def _where(channel: str, me: str, channel_name: Callable[[str], str]) -> str:
    if channel.startswith("D"):
        partner = "U" + channel[1:]
        return "DM" if partner == me else f"DM with @{partner}"
    return f"#{channel_name(channel)}"
