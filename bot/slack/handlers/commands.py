"""Slash commands: /revoke-key, /key-owner, /rotate-key."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.db.base import utcnow
from bot.registry.service import lookup
from bot.runbooks import names, service
from bot.slack.blocks.key_card import key_owner_reply
from bot.slack.context import MAX_COMMAND_TEXT, SlackContext
from bot.slack.reminders import rotation_views
from bot.slack.traffic import key_traffic, open_alert_pages


def register(app: App, ctx: SlackContext) -> None:
    @app.command("/revoke-key")
    def revoke_key(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ctx.while_triggered(ctx.open_revoke_flow, body, body.get("user_id", ""), str(body.get("text") or ""))

    @app.command("/key-owner")
    def key_owner(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ctx.later(answer_key_owner, body)

    def answer_key_owner(body: dict[str, Any]) -> None:
        query = str(body.get("text") or "").strip()[:MAX_COMMAND_TEXT]
        if not query:
            ctx.tell(body, "Usage: `/key-owner <key name, #id, sk-...Xy9Q or the secret>`")
            return
        rt = ctx.runtime
        with rt.database.session() as session:
            result = lookup(session, query, rt.fingerprinter)
            traffic = ctx.traffic(result.matches[0]) if result.unique else None
            unique = [result.unique.id] if result.unique else []
            text, blocks = key_owner_reply(
                result.matches[:50],
                utcnow(),
                suggestions=result.suggestions,
                query_was_secret=result.query_was_secret,
                traffic=traffic,
                rotation=rotation_views(rt.database, unique, utcnow()).get(unique[0]) if unique else None,
                usage=key_traffic(rt.database, unique, utcnow()).get(unique[0]) if unique else None,
                alerts=open_alert_pages(rt.database, unique),
            )
        ctx.tell(body, text, blocks)

    @app.command("/rotate-key")
    def rotate_key(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ctx.later(start_rotation, body)

    def start_rotation(body: dict[str, Any]) -> None:
        user = body.get("user_id", "")
        query = str(body.get("text") or "").strip()[:MAX_COMMAND_TEXT]
        rt = ctx.runtime
        with rt.database.session() as session:
            result = lookup(session, query, rt.fingerprinter) if query else None
            if result is None or result.unique is None:
                text, blocks = key_owner_reply(
                    result.matches[:50] if result else [],
                    utcnow(),
                    suggestions=result.suggestions if result else [],
                    query_was_secret=bool(result and result.query_was_secret),
                )
                ctx.tell(body, "Which key? " + text if query else "Usage: `/rotate-key <key>`", blocks)
                return
            key = result.unique
            key_id, key_name = key.id, key.name
        try:
            run_id = names.start_rotation(
                rt.database, rt.runbooks, policy=rt.policy, key_id=key_id, actor=ctx.permissions.actor(user)
            )
        except service.RunRefused as refused:
            ctx.refuse(body, f"Rotation of {key_name} not started: {refused}", action="/rotate-key")
            return
        ctx.tell(body, f"Rotation of {key_name} started (run `{run_id}`); progress is in the team channel.")
        ctx.start_in_background(run_id)
