"""The data the emulator's state hands around: :class:`Change` (what the terminal prints), response_url
targets, Slack error codes, and the block ids Slack gives blocks that have none.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Json = dict[str, Any]
ChangeKind = Literal[
    "message", "ephemeral", "view", "view_closed", "home", "reaction", "deleted", "api_error"
]

MAX_STACK = 3  # Slack keeps at most three modals on a stack


@dataclass(frozen=True)
class Change:
    """Something a person would see appear or change in Slack; the shell prints each one as it happens.

    ``kind``: ``message`` (channel or DM post, ``updated`` for chat.update), ``ephemeral`` (only ``user``
    sees it), ``view`` (a modal opened/updated; ``view`` is the stored view), ``view_closed``, ``home``
    (App Home of ``user`` published), ``reaction`` (``name`` added to the message ``ts``), ``deleted``,
    ``api_error`` (the app called ``name`` and got ``text`` as Slack's error code).
    """

    kind: ChangeKind
    updated: bool = False
    channel: str | None = None
    ts: str | None = None
    thread_ts: str | None = None
    user: str | None = None  # ephemeral recipient, DM partner, home owner, author of a reacted message
    text: str = ""
    blocks: list[Json] = field(default_factory=list)
    attachments: list[Json] = field(default_factory=list)
    view: Json | None = None
    name: str | None = None


@dataclass
class ResponseTarget:
    """Where a ``response_url`` answers: the conversation, the person, and the message it came from."""

    channel: str
    user: str
    message_ts: str | None = None
    ephemeral: bool = False  # the original is an ephemeral message (``message_ts`` is its id)
    created: float = field(default_factory=time.monotonic)
    uses: int = 0


class SlackError(Exception):
    """A Slack error code (``channel_not_found``...) raised inside the state; the emulator answers it."""

    def __init__(self, code: str, *messages: str) -> None:
        super().__init__(code)
        self.code = code
        self.messages = list(messages)


def with_block_ids(blocks: Any) -> list[Json]:
    """Slack gives every block without a ``block_id`` a generated one; payloads echo it back."""
    out: list[Json] = []
    for index, block in enumerate(blocks if isinstance(blocks, list) else []):
        if not isinstance(block, Mapping):
            raise SlackError("invalid_blocks", f"[ERROR] block {index} is not an object")
        if not block.get("type"):
            raise SlackError("invalid_blocks", f"[ERROR] block {index} has no type")
        copy = dict(block)
        if not copy.get("block_id"):
            digest = hashlib.sha256(repr(sorted(copy.items(), key=str)).encode()).hexdigest()
            copy["block_id"] = f"{digest[:5]}{index}"
        out.append(copy)
    return out
