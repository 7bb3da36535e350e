"""Block Kit checks the emulator makes before it accepts a message or a view, mirroring Slack's own.

Slack answers a post that breaks its documented limits with ``invalid_blocks`` (views:
``invalid_arguments``) and a ``[ERROR] ...`` line per problem; the emulator does the same, so a builder
that would fail in a real workspace fails in ``keybot run`` and in the tests too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from bot.shell._model import SlackError

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
_TEXT_LIMITS = {"header": 150, "section": 3000}
_BUTTON_TEXT = 75
_VALUE = 2000
_ACTION_ID = 255
_VIEW_TITLE = 24
_METADATA = 3000


def _text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, Mapping) else ""


def _element_errors(el: Any, where: str) -> list[str]:
    if not isinstance(el, Mapping) or "type" not in el:
        return [f"{where}: element without a type"]
    errors = []
    if el["type"] == "button":
        if len(_text_of(el.get("text"))) > _BUTTON_TEXT:
            errors.append(f"{where}: button text longer than {_BUTTON_TEXT} characters")
        if len(str(el.get("value", ""))) > _VALUE:
            errors.append(f"{where}: button value longer than {_VALUE} characters")
    if len(str(el.get("action_id", ""))) > _ACTION_ID:
        errors.append(f"{where}: action_id longer than {_ACTION_ID} characters")
    return errors


def _block_errors(block: Mapping[str, Any], where: str) -> list[str]:
    btype, errors = block["type"], []
    if btype in _TEXT_LIMITS and len(_text_of(block.get("text"))) > _TEXT_LIMITS[btype]:
        errors.append(f"{where}/text: must be less than {_TEXT_LIMITS[btype] + 1} characters")
    if btype == "section":
        if "text" not in block and "fields" not in block:
            errors.append(f"{where}: section needs text or fields")
        fields = block.get("fields") or []
        if len(fields) > 10:
            errors.append(f"{where}/fields: no more than 10 items allowed")
        errors += [
            f"{where}/fields/{j}: must be less than 2001 characters"
            for j, field in enumerate(fields)
            if len(_text_of(field)) > 2000
        ]
        if "accessory" in block:
            errors += _element_errors(block["accessory"], f"{where}/accessory")
    elif btype == "actions":
        elements = block.get("elements") or []
        if not elements or len(elements) > 25:
            errors.append(f"{where}/elements: must have 1 to 25 items")
        for j, el in enumerate(elements):
            errors += _element_errors(el, f"{where}/elements/{j}")
    elif btype == "context" and len(block.get("elements") or []) > 10:
        errors.append(f"{where}/elements: no more than 10 items allowed")
    elif btype == "input" and "element" in block:
        errors += _element_errors(block["element"], f"{where}/element")
    return errors


def block_errors(blocks: Any, *, max_blocks: int) -> list[str]:
    """Every problem Slack would reject in ``blocks``; empty when they are acceptable."""
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, Mapping) or not block.get("type"):
            errors.append(f"{where}: missing required field: type")
            continue
        if (bid := block.get("block_id")) is not None:
            if bid in seen:
                errors.append(f"{where}: duplicate block_id {bid!r}")
            seen.add(str(bid))
        errors += _block_errors(block, where)
    return errors


def view_errors(view: Any, *, kind: str | None = None) -> list[str]:
    """Every problem Slack would reject in a modal or home ``view`` (``kind``: the type it must have)."""
    if not isinstance(view, Mapping):
        return ["view must be a JSON object"]
    errors = []
    vtype = view.get("type")
    if kind is not None and vtype != kind:
        errors.append(f"view.type must be {kind!r}")
    elif vtype not in ("modal", "home"):
        errors.append("view.type must be modal or home")
    if vtype == "modal":
        title = _text_of(view.get("title"))
        if not title or len(title) > _VIEW_TITLE:
            errors.append(f"view.title must be 1 to {_VIEW_TITLE} characters")
        errors += [
            f"view.{part} must be at most {_VIEW_TITLE} characters"
            for part in ("submit", "close")
            if len(_text_of(view.get(part))) > _VIEW_TITLE
        ]
    if len(str(view.get("private_metadata") or "")) > _METADATA:
        errors.append(f"view.private_metadata must be at most {_METADATA} characters")
    errors += block_errors(view.get("blocks", []), max_blocks=MAX_VIEW_BLOCKS)
    return errors


def check_view(view: Any, *, kind: str | None = "modal") -> Mapping[str, Any]:
    """``view`` when Slack would accept it, else ``invalid_arguments`` with one line per problem."""
    if isinstance(view, str):
        raise SlackError("invalid_arguments", "[ERROR] view is not valid JSON")
    if errors := view_errors(view, kind=kind):
        raise SlackError("invalid_arguments", *(f"[ERROR] {e}" for e in errors))
    return cast(Mapping[str, Any], view)  # view_errors checked it is one


def check_content(text: Any, blocks: Any, *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> None:
    """The message checks Slack makes: text length, blocks format, then every Block Kit limit."""
    if len(str(text or "")) > MAX_MESSAGE_TEXT:
        raise SlackError("msg_too_long")
    if blocks is not None and not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    if errors := block_errors(blocks, max_blocks=max_blocks):
        raise SlackError("invalid_blocks", *(f"[ERROR] {e}" for e in errors))
