"""Events: the leak watcher on channel messages, and the App Home tab.

The watcher reads everything Slack delivers with a message (text, snippet previews, forwarded messages,
rich-text blocks), from people and from other apps' bots alike; only keybot's own messages are skipped.
Each secret is reported once per message (channel + message ts): Slack's retries, an edit, or an unfurl
(``message_changed`` with the same content) never warn twice; an edit that adds a new secret warns about
that one only. What a leak changes in the registry and incidents is bot/detection/service.py's work.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from slack_bolt import App, BoltContext

from bot.detection.leaks import FoundLeak, TextTooLarge, find_leaks_with_fingerprints
from bot.detection.service import record_leaks
from bot.log import get_logger
from bot.slack import dedupe
from bot.slack.api import SlackError
from bot.slack.blocks.messages import LeakHit, LeakIncident, leak_warning
from bot.slack.context import SlackContext
from bot.slack.payloads import MessageEvent, scannable_text

log = get_logger(__name__)
MAX_SCANNED = 160_000
IGNORED_SUBTYPES = frozenset({"message_deleted", "channel_join", "channel_leave", "channel_topic"})


def _watched(event: MessageEvent, own: set[str]) -> tuple[MessageEvent, MessageEvent | None] | None:
    """(the message as it is now, the message before an edit) or None when keybot should not look."""
    if event.subtype in IGNORED_SUBTYPES:
        return None
    message, previous = event, None
    if event.subtype == "message_changed":
        if event.message is None:
            return None
        message, previous = event.message, event.previous_message
    if {message.bot_id, message.user} & own:
        return None
    if not message.ts:
        return None
    return message, previous


def register(app: App, ctx: SlackContext) -> None:
    rt = ctx.runtime

    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        own = {v for v in (context.bot_id, context.bot_user_id) if v}
        ctx.later(watch_for_leaks, event, own)

    def scan(message: MessageEvent) -> list[FoundLeak]:
        try:
            with rt.database.session() as session:
                return find_leaks_with_fingerprints(
                    session, scannable_text(message, MAX_SCANNED), rt.fingerprinter
                )
        except TextTooLarge:
            return []

    def watch_for_leaks(raw: dict[str, Any], own: set[str]) -> None:
        try:
            event = MessageEvent.model_validate(raw)
        except ValidationError:
            log.warning("unreadable message event skipped")
            return
        watched = _watched(event, own)
        channel = event.channel or ""
        if watched is None or not channel:
            return
        message, previous = watched
        found = scan(message)
        if previous is not None and found:
            before = {leak.fingerprint for leak in scan(previous)}
            found = [leak for leak in found if leak.fingerprint not in before]
        fresh = [
            leak
            for leak in found
            if dedupe.first_time(rt.database, f"leak:{channel}:{message.ts}:{leak.fingerprint[:40]}")
        ]
        if not fresh:
            return
        bot = f"{message.username} (bot)" if message.username else message.bot_id
        poster = message.user or bot or "someone"
        with rt.database.session() as session:
            recorded = record_leaks(session, fresh, where=f"<#{channel}>", poster=poster)
        incident = (
            LeakIncident(recorded.incident_id, recorded.incident_reference)
            if recorded.incident_id is not None and recorded.incident_reference is not None
            else None
        )
        shown = [
            LeakHit(f.hit.kind, f.hit.redacted, f.hit.key_name, f.hit.owners, f.hit.key_id, f.fingerprint)
            for f in fresh
        ]
        text, blocks = leak_warning(
            poster, shown, offer_revoke=True, ask_delete=rt.settings.leak_ask_delete, incident=incident
        )
        try:
            ctx.api.post_message(channel, text, blocks, thread_ts=message.thread_ts or message.ts)
        except SlackError as error:
            log.warning("leak warning not posted", code=error.code, why=error.explanation)

    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any]) -> None:
        user = event.get("user")
        if isinstance(user, str) and user and event.get("tab", "home") == "home":
            ctx.later(home, user)

    def home(user: str) -> None:
        try:
            ctx.publish_home(user)
        except SlackError as error:
            log.warning("home not published", code=error.code, why=error.explanation)
