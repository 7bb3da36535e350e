"""Typed models of the Slack payloads keybot reads, validated at the edge before any listener runs.

Slack signs what it sends, but a signed payload can still be malformed (a proxy, a replay tool, a future
payload shape). Every field a listener reads is declared here, with bounds, so a bad payload is one clear
400 instead of an ``AttributeError`` deep in a handler. Unknown fields are allowed: Slack adds fields.
Shapes follow Slack's documented payloads, including App Home clicks (``container.type == "view"``, no
``response_url``, no ``channel``) and Enterprise Grid installs (``team: null``, ``enterprise`` set).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

__all__ = [
    "BadPayload",
    "BlockActions",
    "MessageEvent",
    "SlashCommand",
    "ViewSubmission",
    "scannable_text",
    "validate_body",
]

#: Slack ids are short upper-case tokens (U…, W…, C…, T…, E…); anything longer is not Slack's.
SlackId = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-.]+$")]
MAX_VALUE = 2000  # button values; ids.MAX_ENCODED
MAX_TEXT = 40_000  # a message's text (Slack truncates at 40k); scanning reads at most 4x this
MAX_PARTS = 1000  # files, attachments, blocks per message: far above Slack's own limits


class BadPayload(ValueError):
    """A signed Slack payload keybot cannot read; the message names fields, never values."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class IdRef(_Model):
    id: SlackId


class OptionalIdRef(_Model):
    id: SlackId | None = None


class Option(_Model):
    value: str = Field(max_length=MAX_VALUE)


class Action(_Model):
    action_id: str = Field(min_length=1, max_length=255)
    type: str = Field(default="button", max_length=64)
    value: str | None = Field(default=None, max_length=MAX_VALUE)
    # ``null`` when a static_select is cleared (deselect); absent for buttons.
    selected_option: Option | None = None

    @property
    def chosen(self) -> str | None:
        """The button's value, or the selected option's; None for a deselect."""
        if self.value is not None:
            return self.value
        return self.selected_option.value if self.selected_option is not None else None


class Container(_Model):
    type: str = Field(max_length=64)


class ViewRef(_Model):
    id: SlackId | None = None
    type: str | None = Field(default=None, max_length=32)


class BlockActions(_Model):
    """A click on a button or select, in a message, a modal or the App Home tab."""

    type: Literal["block_actions"]
    user: IdRef
    actions: list[Action] = Field(min_length=1, max_length=25)
    trigger_id: str | None = Field(default=None, max_length=200)
    response_url: str | None = Field(default=None, max_length=500)
    channel: OptionalIdRef | None = None
    container: Container | None = None
    view: ViewRef | None = None
    team: OptionalIdRef | None = None
    enterprise: OptionalIdRef | None = None
    is_enterprise_install: bool = False

    @property
    def action(self) -> Action:
        return self.actions[0]

    @property
    def from_home(self) -> bool:
        """Clicked on the App Home tab: Slack gives no response_url and no channel to answer in."""
        return self.view is not None and self.view.type == "home"


class StateValue(_Model):
    type: str | None = Field(default=None, max_length=64)
    value: str | None = Field(default=None, max_length=MAX_TEXT)
    selected_option: Option | None = None


class SubmittedView(_Model):
    id: SlackId | None = None
    callback_id: str = Field(max_length=255)
    private_metadata: str = Field(default="", max_length=3000)
    state: dict[str, dict[str, dict[str, StateValue]]] = Field(default_factory=dict)

    def value(self, block: str, action: str) -> str | None:
        """What the person entered or chose in one input; None when empty or deselected."""
        entered = self.state.get("values", {}).get(block, {}).get(action)
        if entered is None:
            return None
        if entered.selected_option is not None:
            return entered.selected_option.value
        return entered.value


class ViewSubmission(_Model):
    type: Literal["view_submission"]
    user: IdRef
    view: SubmittedView
    team: OptionalIdRef | None = None
    enterprise: OptionalIdRef | None = None
    is_enterprise_install: bool = False


class SlashCommand(_Model):
    command: str = Field(min_length=2, max_length=64)
    text: str = Field(default="", max_length=MAX_TEXT)
    user_id: SlackId
    channel_id: SlackId | None = None
    trigger_id: str | None = Field(default=None, max_length=200)
    response_url: str | None = Field(default=None, max_length=500)


class MessageEvent(_Model):
    """A ``message`` event (new, edited as ``message_changed``, or from another app's bot)."""

    type: str = Field(max_length=64)
    subtype: str | None = Field(default=None, max_length=64)
    channel: SlackId | None = None
    user: SlackId | None = None
    bot_id: SlackId | None = None
    username: str | None = Field(default=None, max_length=200)  # another app's bot's display name
    ts: str | None = Field(default=None, max_length=32)
    thread_ts: str | None = Field(default=None, max_length=32)
    text: str | None = None  # not bounded here: the body is (serve.MAX_BODY), and scanning clips it
    files: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_PARTS)
    attachments: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_PARTS)
    blocks: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_PARTS)
    message: MessageEvent | None = None
    previous_message: MessageEvent | None = None


class AppHomeOpened(_Model):
    type: Literal["app_home_opened"]
    user: SlackId
    tab: str = Field(default="home", max_length=32)


_SCANNED_KEYS = frozenset(
    {"text", "fallback", "pretext", "title", "value", "preview", "plain_text", "preview_plain_text", "url"}
)
_MAX_DEPTH = 12


def scannable_text(message: MessageEvent, limit: int = MAX_TEXT * 4) -> str:
    """Every piece of text Slack delivered with a message: ``text``, snippet previews (``files[]``),
    forwarded or shared messages (``attachments[]``, with their fields and message blocks) and rich-text
    ``blocks``. A leak in any of them is a leak; the result is cut at ``limit`` characters."""
    pieces: list[str] = [(message.text or "")[:limit]]
    budget = [limit - len(pieces[0])]

    def walk(node: object, depth: int) -> None:
        if budget[0] <= 0 or depth > _MAX_DEPTH:
            return
        if isinstance(node, dict):
            for name, value in node.items():
                if isinstance(value, str) and name in _SCANNED_KEYS:
                    pieces.append(value[: budget[0]])
                    budget[0] -= len(value) + 1
                elif isinstance(value, dict | list):
                    walk(value, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)

    walk([message.files, message.attachments, message.blocks], 0)
    return "\n".join(piece for piece in pieces if piece)


_BY_TYPE: dict[str, type[_Model]] = {
    "block_actions": BlockActions,
    "view_submission": ViewSubmission,
}


#: Every request type Slack documents sending to an app's request URL.
KNOWN_TYPES = frozenset(
    {
        "block_actions", "block_suggestion", "view_submission", "view_closed", "shortcut", "message_action",
        "interactive_message", "dialog_submission", "dialog_cancellation", "workflow_step_edit",
        "event_callback", "url_verification", "app_rate_limited",
    }
)  # fmt: skip


def validate_body(body: object) -> None:
    """Raise :class:`BadPayload` when a payload keybot handles lacks what its listener reads."""
    if not isinstance(body, dict) or not body:
        raise BadPayload("malformed Slack payload (not an object)")
    kind = body.get("type")
    if "command" in body and kind is None:
        kind = "command"
    elif not isinstance(kind, str) or kind not in KNOWN_TYPES:
        raise BadPayload("malformed Slack payload (unknown or missing type)")
    try:
        if kind in _BY_TYPE:
            _BY_TYPE[kind].model_validate(body)
        elif kind == "command":
            SlashCommand.model_validate(body)
        elif kind == "event_callback":
            event = body.get("event")
            if not isinstance(event, dict):
                raise BadPayload("malformed Slack event: event is not an object")
            if event.get("type") == "message":
                MessageEvent.model_validate(event)
            elif event.get("type") == "app_home_opened":
                AppHomeOpened.model_validate(event)
    except ValidationError as error:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "payload" for e in error.errors()})[:5]
        raise BadPayload(f"malformed Slack payload ({', '.join(fields)})") from None
