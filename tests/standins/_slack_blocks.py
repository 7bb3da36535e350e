"""Block Kit limits the Slack stand-in enforces (documented limits; Slack answers ``invalid_blocks``)."""

from __future__ import annotations

from typing import Any

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
_TEXT_LIMITS = {"header": 150, "section": 3000}
_BUTTON_TEXT = 75
_VALUE = 2000
_ACTION_ID = 255
_VIEW_TITLE = 24


def _text_of(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def _check_element(el: Any, where: str, errors: list[str]) -> None:
    if not isinstance(el, dict) or "type" not in el:
        errors.append(f"{where}: element without a type")
        return
    if el["type"] == "button":
        if len(_text_of(el.get("text"))) > _BUTTON_TEXT:
            errors.append(f"{where}: button text longer than {_BUTTON_TEXT} characters")
        if len(str(el.get("value", ""))) > _VALUE:
            errors.append(f"{where}: button value longer than {_VALUE} characters")
    if len(str(el.get("action_id", ""))) > _ACTION_ID:
        errors.append(f"{where}: action_id longer than {_ACTION_ID} characters")


def block_errors(blocks: Any, *, max_blocks: int) -> list[str]:
    """Problems Slack would reject; empty when the blocks are acceptable."""
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
        if not isinstance(block, dict) or "type" not in block:
            errors.append(f"{where}: missing required field: type")
            continue
        btype = block["type"]
        if (bid := block.get("block_id")) is not None:
            if bid in seen:
                errors.append(f"{where}: duplicate block_id {bid!r}")
            seen.add(bid)
        if btype in _TEXT_LIMITS and len(_text_of(block.get("text"))) > _TEXT_LIMITS[btype]:
            errors.append(f"{where}/text: must be less than {_TEXT_LIMITS[btype] + 1} characters")
        if btype == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"{where}: section needs text or fields")
            fields = block.get("fields") or []
            if len(fields) > 10:
                errors.append(f"{where}/fields: no more than 10 items allowed")
            for j, field in enumerate(fields):
                if len(_text_of(field)) > 2000:
                    errors.append(f"{where}/fields/{j}: must be less than 2001 characters")
            if "accessory" in block:
                _check_element(block["accessory"], f"{where}/accessory", errors)
        elif btype == "actions":
            elements = block.get("elements") or []
            if not elements or len(elements) > 25:
                errors.append(f"{where}/elements: must have 1 to 25 items")
            for j, el in enumerate(elements):
                _check_element(el, f"{where}/elements/{j}", errors)
        elif btype == "context" and len(block.get("elements") or []) > 10:
            errors.append(f"{where}/elements: no more than 10 items allowed")
        elif btype == "input" and "element" in block:
            _check_element(block["element"], f"{where}/element", errors)
    return errors


def view_errors(view: Any) -> list[str]:
    if not isinstance(view, dict):
        return ["view must be an object"]
    errors = []
    if view.get("type") not in ("modal", "home"):
        errors.append("view.type must be modal or home")
    if view.get("type") == "modal":
        if len(_text_of(view.get("title"))) > _VIEW_TITLE or not _text_of(view.get("title")):
            errors.append(f"view.title must be 1 to {_VIEW_TITLE} characters")
        for part in ("submit", "close"):
            if part in view and len(_text_of(view[part])) > _VIEW_TITLE:
                errors.append(f"view.{part} must be at most {_VIEW_TITLE} characters")
    if len(str(view.get("private_metadata", ""))) > 3000:
        errors.append("view.private_metadata must be at most 3000 characters")
    errors.extend(block_errors(view.get("blocks", []), max_blocks=MAX_VIEW_BLOCKS))
    return errors
