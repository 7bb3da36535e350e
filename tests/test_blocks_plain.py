"""The plain-dict block constructors build exactly what slack_sdk's Block Kit models serialise to.

They replaced the models on the hot path (every block of every message and modal); these tests pin them to
the models, so a difference in shape, a dropped field or a lost clip shows up here.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import (
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.slack import limits
from bot.slack.blocks.common import button, context, divider, fields, header, section
from bot.slack.ids import ActionRef

TEXT = st.text(min_size=0, max_size=4000)


def _same(ours: object, models: object) -> bool:
    """Equal, and serialised alike (key order too: golden files and Slack payloads are compared as text)."""
    return ours == models and json.dumps(ours) == json.dumps(models)


BLOCK_ID = st.one_of(st.none(), st.just(""), st.from_regex(r"[a-z_]{1,30}", fullmatch=True))


@settings(max_examples=150, deadline=None)
@given(TEXT, BLOCK_ID)
def test_header_matches_the_model(text: str, block_id: str | None) -> None:
    model = HeaderBlock(text=PlainTextObject(text=limits.plain(text, limits.HEADER_TEXT)), block_id=block_id)
    assert _same(header(text, block_id=block_id), model.to_dict())


@settings(max_examples=150, deadline=None)
@given(TEXT, BLOCK_ID, st.booleans())
def test_section_matches_the_model(text: str, block_id: str | None, with_button: bool) -> None:
    accessory = button("Revoke", "open_revoke", ActionRef(kind="key", id="7")) if with_button else None
    model = SectionBlock(
        text=MarkdownTextObject(text=limits.clip(text, limits.SECTION_TEXT) or "-"),
        block_id=block_id,
        accessory=accessory,
    )
    assert _same(section(text, block_id=block_id, accessory=accessory), model.to_dict())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=40), TEXT), max_size=25), BLOCK_ID)
def test_fields_match_the_model(pairs: list[tuple[str, str]], block_id: str | None) -> None:
    expected = []
    for start in range(0, len(pairs), limits.SECTION_FIELDS):
        chunk = pairs[start : start + limits.SECTION_FIELDS]
        texts = [
            MarkdownTextObject(text=limits.clip(f"*{k}*\n{v or '-'}", limits.FIELD_TEXT)) for k, v in chunk
        ]
        suffix = f"_{start // limits.SECTION_FIELDS}" if start else ""
        model = SectionBlock(fields=texts, block_id=f"{block_id}{suffix}" if block_id else None)
        expected.append(model.to_dict())
    assert _same(fields(pairs, block_id=block_id), expected)


@settings(max_examples=150, deadline=None)
@given(st.lists(TEXT, max_size=14), BLOCK_ID)
def test_context_matches_the_model(texts: list[str], block_id: str | None) -> None:
    elements = [MarkdownTextObject(text=limits.clip(t, limits.TEXT)) for t in texts if t]
    model = ContextBlock(elements=elements[: limits.CONTEXT_ELEMENTS], block_id=block_id)
    assert _same(context(*texts, block_id=block_id), model.to_dict())


def test_divider_and_clipping_at_the_limit() -> None:
    assert _same(divider(), DividerBlock().to_dict())
    long = "x" * (limits.SECTION_TEXT + 50)
    text = section(long)["text"]["text"]
    assert len(text) <= limits.SECTION_TEXT and "clipped" in text
    assert len(header("h" * 500)["text"]["text"]) <= limits.HEADER_TEXT


def test_a_secret_in_a_header_is_redacted() -> None:
    leaked = "sk-proj-" + "A1b2C3d4E5f6G7h8" * 3 + "T3BlbkFJ" + "Z9y8X7w6V5u4T3s2" * 2
    assert leaked not in str(header(f"key {leaked}"))
