"""Events: the leak watcher on channel messages, and the App Home tab."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from sqlalchemy import or_, select

from bot.db.base import utcnow
from bot.incidents.models import Incident, IncidentStatus
from bot.incidents.service import append_event, open_incident
from bot.log import get_logger
from bot.registry.models import Key, KeyOwner, KeyStatus
from bot.registry.render import rotation_state
from bot.registry.service import KeyFilter, list_keys
from bot.runbooks.models import Run, RunStatus
from bot.slack import dedupe
from bot.slack.api import SlackError
from bot.slack.blocks.home import app_home
from bot.slack.blocks.messages import LeakHit, leak_warning
from bot.slack.context import SlackContext

log = get_logger(__name__)
MAX_SCANNED = 40_000
DUE_SOON_DAYS = 14


def _message_text(event: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(text, user, ts) of a new or edited human message; empty text for anything keybot should ignore."""
    if event.get("bot_id") or event.get("subtype") in ("bot_message", "message_deleted", "channel_join"):
        return "", None, None
    if event.get("subtype") == "message_changed":
        inner = event.get("message") or {}
        if inner.get("bot_id"):
            return "", None, None
        return str(inner.get("text") or ""), inner.get("user"), inner.get("ts")
    return str(event.get("text") or ""), event.get("user"), event.get("ts")


def register(app: App, ctx: SlackContext) -> None:
    rt = ctx.runtime

    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any]) -> None:
        ctx.later(watch_for_leaks, body, event)

    def watch_for_leaks(body: dict[str, Any], event: dict[str, Any]) -> None:
        text, poster, ts = _message_text(event)
        if not text or not poster:
            return
        event_id = str(body.get("event_id") or f"{event.get('channel')}:{ts}")
        if not dedupe.first_time(rt.database, f"event:{event_id}"):
            return
        from bot.detection.leaks import find_leaks

        channel = str(event.get("channel") or "")
        with rt.database.session() as session:
            hits = find_leaks(session, text[:MAX_SCANNED], rt.fingerprinter)
            if not hits:
                return
            shown = [LeakHit(h.kind, h.redacted, h.key_name, h.owners, h.key_id) for h in hits]
            unowned = [h for h in hits if h.key_id is None]
            for hit in hits:
                key = session.get(Key, hit.key_id) if hit.key_id is not None else None
                if key is not None and key.status is KeyStatus.ACTIVE:
                    key.status = KeyStatus.COMPROMISED
            if unowned:
                incident = open_incident(
                    session,
                    key_id=None,
                    title=f"Unregistered secret posted in <#{channel}>",
                    opened_by=poster,
                    reason="leak watcher",
                    severity="sev2",
                )
                append_event(
                    session,
                    incident.id,
                    "leak.detected",
                    "keybot",
                    {
                        "where": channel,
                        "kinds": [h.kind for h in unowned],
                        "redacted": [h.redacted for h in unowned],
                    },
                )
        message, blocks = leak_warning(
            poster, shown, offer_revoke=True, ask_delete=rt.settings.leak_ask_delete
        )
        try:
            ctx.api.post_message(channel, message, blocks, thread_ts=ts)
        except SlackError as error:
            log.warning("leak warning not posted", code=error.code, why=error.explanation)

    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any]) -> None:
        ctx.later(home, event)

    def home(event: dict[str, Any]) -> None:
        user = str(event.get("user") or "")
        if not user or event.get("tab", "home") != "home":
            return
        now = utcnow()
        with rt.database.session() as session:
            mine = list_keys(session, KeyFilter(owner=user), limit=200)
            due = [
                (k, rotation_state(k, now))
                for k in list_keys(session, KeyFilter(owner=user, due_within_days=DUE_SOON_DAYS))
            ]
            my_key_ids = select(KeyOwner.key_id).where(KeyOwner.slack_user_id == user)
            runs = session.scalars(
                select(Run)
                .where(or_(Run.initiated_by == user, Run.key_id.in_(my_key_ids)))
                .where(Run.status.not_in([RunStatus.SUCCEEDED, RunStatus.ABORTED]))
                .order_by(Run.created_at.desc())
                .limit(20)
            ).all()
            incidents = session.scalars(
                select(Incident)
                .where(Incident.key_id.in_(my_key_ids))
                .where(Incident.status != IncidentStatus.RESOLVED)
                .order_by(Incident.opened_at.desc())
                .limit(20)
            ).all()
            view = app_home(
                user, [k for k in mine if k.status != KeyStatus.REVOKED], due, runs, incidents, now
            )
        try:
            ctx.api.publish_home(user, view)
        except SlackError as error:
            log.warning("home not published", code=error.code, why=error.explanation)
