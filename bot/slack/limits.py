"""Slack's Block Kit limits, enforced in one place, and the escaping that keeps user text inert.

Slack rejects a whole message (``invalid_blocks``) when one field is a character too long, and the failure
shows up at 3 a.m. in the middle of an incident; every builder clips through here instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject

from bot.secrets import redact

MESSAGE_BLOCKS = 50
MODAL_BLOCKS = 100
HOME_BLOCKS = 100
TEXT = 3000  # any text object; a section's text
SECTION_TEXT = 3000
SECTION_FIELDS = 10
FIELD_TEXT = 2000
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
BLOCK_ID = 255
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
MODAL_TITLE = 24
MODAL_BUTTON = 24  # submit / close
PLACEHOLDER = 150
OPTION_TEXT = 75
OPTION_DESCRIPTION = 75
OPTION_VALUE = 150
SELECT_OPTIONS = 100
RADIO_OPTIONS = 10
INPUT_LABEL = 2000
INPUT_HINT = 2000
PRIVATE_METADATA = 3000
CALLBACK_ID = 255
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
#: Top-level ``text`` of a message: Slack allows 40,000 but it is a notification preview; keep it short.
FALLBACK_TEXT = 3000

ELLIPSIS = "…"
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")
_PARTIAL_TAG = re.compile(r"<[^<>]*$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_SLACK_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,20}$")


def clip(text: str, limit: int) -> str:
    """Fit ``text`` into ``limit`` characters, saying so when something was cut.

    Long limits get ``… [clipped, N chars in full]``; short ones (titles, buttons) just ``…``. A cut never
    leaves half an ``&amp;`` entity or half a ``<@U123>`` mention behind, so clipped mrkdwn still displays
    correctly.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(text) <= limit:
        return text
    note = f"{ELLIPSIS} [clipped, {len(text):,} chars in full]"
    if limit < len(note) + 20:
        note = ELLIPSIS
    head = text[: limit - len(note)]
    head = _PARTIAL_TAG.sub("", _PARTIAL_ENTITY.sub("", head))
    return head.rstrip() + note


def plain(text: str, limit: int = TEXT) -> str:
    """Text for ``plain_text`` objects: redacted and clipped (Slack does not parse mentions in plain text)."""
    return clip(redact(text), limit) or "-"


def escape(text: str) -> str:
    """Make user-provided text inert inside mrkdwn, after redacting any secret in it.

    Escaping ``&``, ``<`` and ``>`` means ``<!channel>``, ``<!here>``, ``<@U123>`` and
    ``<https://evil|click>`` show up as the characters typed instead of pinging people or hiding a link.
    """
    return redact(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str, limit: int = TEXT) -> str:
    """Escaped and clipped user text, ready to sit inside a mrkdwn string."""
    return clip(escape(text), limit)


def code(text: str, limit: int = 200) -> str:
    """User text shown as inline code; backticks inside would end the span early, so they are swapped."""
    return "`" + clip(escape(text).replace("`", "'"), limit) + "`"


def mention(user: str | None) -> str:
    """``<@U123>`` for a real Slack user id; anything else (CLI actors, names) is shown escaped, unlinked."""
    if not user:
        return "nobody"
    if _SLACK_USER.match(user):
        return f"<@{user}>"
    return escape(user)


def channel(channel_id: str | None) -> str:
    """``<#C123>`` for a channel id; ``#name`` and anything else is shown as escaped text."""
    if not channel_id:
        return "no channel"
    if _SLACK_CHANNEL.match(channel_id):
        return f"<#{channel_id}>"
    return escape(channel_id)


def more_note(hidden: int, see: str | None = None, noun: str = "items") -> dict[str, Any]:
    """A context block saying how much was left out and where to see all of it."""
    text = f"{ELLIPSIS} {hidden} more {noun} not shown"
    if see:
        text += f" — see `{clip(escape(see), 200)}`"
    return ContextBlock(elements=[MarkdownTextObject(text=text)]).to_dict()


def fit_blocks(
    blocks: Sequence[dict[str, Any]],
    limit: int = MESSAGE_BLOCKS,
    *,
    see: str | None = None,
    keep_tail: int = 0,
) -> list[dict[str, Any]]:
    """Keep at most ``limit`` blocks; the cut ones become one context note (“N more items not shown…”).

    ``keep_tail`` blocks at the end (buttons, footers) always survive, so a long message stays actionable.
    """
    if len(blocks) <= limit:
        return list(blocks)
    if keep_tail < 0 or keep_tail > limit - 2:
        raise ValueError("keep_tail must leave room for at least one block and the note")
    head_room = limit - 1 - keep_tail
    body = list(blocks[: len(blocks) - keep_tail]) if keep_tail else list(blocks)
    tail = list(blocks[len(blocks) - keep_tail :]) if keep_tail else []
    hidden = len(body) - head_room
    return [*body[:head_room], more_note(hidden, see), *tail]
