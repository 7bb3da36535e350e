"""Buttons on progress messages, leak warnings and App Home; every button value is a typed ActionRef."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App

from bot.registry.models import Key
from bot.runbooks import service
from bot.runbooks.models import Run
from bot.slack import ids
from bot.slack.api import SlackError
from bot.slack.blocks.revoke_modal import abort_modal, skip_reason_modal
from bot.slack.context import SlackContext


def _ref(body: dict[str, Any]) -> ids.ActionRef | None:
    actions = body.get("actions") or [{}]
    try:
        return ids.ActionRef.decode(
            actions[0].get("value") or actions[0].get("selected_option", {}).get("value")
        )
    except ids.BadActionRef:
        return None


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


def register(app: App, ctx: SlackContext) -> None:
    def run_and_key(run_id: str) -> tuple[Run, Key] | None:
        with ctx.runtime.database.session() as session:
            run = session.get(Run, run_id)
            key = session.get(Key, run.key_id) if run else None
            return (run, key) if run is not None and key is not None else None

    def decide(body: dict[str, Any], action: str, *args: str) -> None:
        """Apply a human decision, then let the worker carry the run on and refresh the message."""
        ref = _ref(body)
        if ref is None or ref.kind != "run":
            ctx.tell(body, "That button belongs to an older or unknown message; use `keybot runs show`.")
            return
        user = _user(body)
        found = run_and_key(ref.id)
        if found is None:
            ctx.tell(body, f"Run `{ref.id}` no longer exists.")
            return
        run, key = found
        allowed = (
            ctx.permissions.can_approve(user, key, run.initiated_by)
            if action == "approve"
            else ctx.permissions.can_revoke(user, key)
        )
        if not allowed:
            ctx.tell(body, allowed.why)
            return
        try:
            getattr(service, action)(ctx.runtime.database, ref.id, user, *args)
        except service.RunRefused as refused:
            ctx.tell(body, str(refused))
            ctx.publisher.publish(ref.id, force=True)
            return
        ctx.start_in_background(ref.id)

    @app.action(ids.APPROVE)
    def approve(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ctx.later(decide, body, "approve")

    @app.action(ids.RETRY)
    def retry(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ctx.later(decide, body, "retry_step")

    @app.action(ids.MARK_DONE)
    def mark_done(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ctx.later(decide, body, "mark_done", "marked done in Slack")

    def open_modal(body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            ctx.api.open_view(body.get("trigger_id", ""), view)
        except SlackError as error:
            ctx.tell(body, error.explanation)

    @app.action(ids.SKIP)
    def skip(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ref = _ref(body)
        if ref is None or ref.kind != "run" or ref.step is None:
            ctx.tell(body, "That button belongs to an older or unknown message.")
            return
        open_modal(body, skip_reason_modal(ref.id, ref.step))

    @app.action(ids.ABORT)
    def abort(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ref = _ref(body)
        if ref is None or ref.kind != "run":
            ctx.tell(body, "That button belongs to an older or unknown message.")
            return
        open_modal(body, abort_modal(ref.id))

    @app.action(re.compile(rf"^({re.escape(ids.OPEN_REVOKE)}|{re.escape(ids.REVOKE_FROM_LEAK)})$"))
    def open_revoke(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ref = _ref(body)
        if ref is None or ref.kind != "key":
            ctx.tell(body, "That button belongs to an older or unknown message.")
            return
        query = ref.id if ref.extra.get("by") == "name" else f"#{ref.id}"
        ctx.open_revoke_flow(body, _user(body), query)

    @app.action(ids.ROTATE_NOW)
    def rotate_now(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ref = _ref(body)
        if ref is None or ref.kind != "key" or not ref.id.isdigit():
            ctx.tell(body, "That button belongs to an older or unknown message.")
            return
        user = _user(body)
        with ctx.runtime.database.session() as session:
            key = session.get(Key, int(ref.id))
            allowed = ctx.permissions.can_revoke(user, key) if key else None
        if key is None or not allowed:
            ctx.tell(body, allowed.why if allowed is not None else "That key is no longer in the registry.")
            return
        try:
            run_id = service.start_run(
                ctx.runtime.database,
                ctx.runtime.runbooks,
                key_id=key.id,
                runbook="rotate",
                mode=None,
                actor=user,
                reason=f"rotation requested by <@{user}>",
            )
        except service.RunRefused as refused:
            ctx.tell(body, str(refused))
            return
        ctx.tell(body, f"Rotation started (run `{run_id}`).")
        ctx.start_in_background(run_id)

    @app.action(re.compile(r"^(alert\.|key\.snooze|revoke\.pick_key)"))
    def not_for_this_version(ack: Ack, body: dict[str, Any]) -> None:
        ack()
