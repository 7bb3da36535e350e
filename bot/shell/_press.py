"""Pressing a button from the terminal: find what it belongs to now, ask its ``confirm`` dialog, and build
the ``block_actions`` payload Slack would send for the click."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.shell import _payloads
from bot.shell._render import message_blocks
from bot.shell._terminal import Target, Terminal
from bot.shell.emulator import LocalSlack
from bot.slack.blocks.text import mrkdwn_to_text

Located = tuple[str, dict[str, Any], list[dict[str, Any]]]
"""(kind, the message or view as it is now, its blocks): a message's attachments' blocks included."""


def locate(emulator: LocalSlack, target: Target) -> Located | None:
    """The current version of what ``target`` showed; None when it was deleted or its window closed."""
    kind = target.key[0]
    if kind in ("view", "home"):
        view = emulator.view(str(target.view_id))
        return None if view is None else ("view", view, list(view.get("blocks") or []))
    if kind == "ephemeral":
        item = emulator.ephemeral(str(target.ts))
    else:
        item = emulator.message(str(target.channel), str(target.ts))
    if item is None:
        return None
    return kind, item, message_blocks(item.get("blocks") or [], item.get("attachments") or [])


def confirmed(term: Terminal, element: Mapping[str, Any]) -> bool:
    """Slack shows a button's ``confirm`` dialog before it sends the click."""
    confirm = element.get("confirm")
    if not isinstance(confirm, Mapping):
        return True
    title = plain(confirm.get("title")) or "Are you sure?"
    yes, no = plain(confirm.get("confirm")) or "Yes", plain(confirm.get("deny")) or "Cancel"
    term.say(f"  {title}\n  {plain(confirm.get('text'))}")
    try:
        answer = term.ask(f"  Are you sure? [y/N] (y = {yes}, n = {no}) ")
    except KeyboardInterrupt:
        term.say("")
        return False
    return (answer or "").strip().lower() in ("y", "yes")


def click_payload(
    emulator: LocalSlack, who: _payloads.Who, target: Target, located: Located, action: dict[str, Any]
) -> dict[str, Any]:
    """The ``block_actions`` payload of ``who`` clicking ``action`` on what ``target`` showed."""
    kind, item, _blocks = located
    trigger = emulator.new_trigger_id()
    if kind == "view":
        return _payloads.block_actions_in_view(who, action, view=item, trigger_id=trigger)
    channel, ts, ephemeral = str(target.channel), str(target.ts), kind == "ephemeral"
    url = emulator.response_url(channel=channel, user=who.user_id, message_ts=ts, ephemeral=ephemeral)
    return _payloads.block_actions_in_message(
        who,
        action,
        channel=channel,
        message=None if ephemeral else item,
        message_ts=ts,
        ephemeral=ephemeral,
        response_url=url,
        trigger_id=trigger,
    )


def plain(obj: Any) -> str:
    """A text object as terminal text (plain_text is escaped first, as Slack would show it)."""
    if isinstance(obj, Mapping):
        raw = str(obj.get("text", ""))
        return mrkdwn_to_text(raw if obj.get("type") == "mrkdwn" else raw.replace("&", "&amp;"))
    return str(obj or "")
