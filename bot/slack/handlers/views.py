"""Modal submissions: start a run, pick among candidates, search, skip with a reason, abort."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.db.base import utcnow
from bot.registry.models import Key
from bot.registry.service import lookup
from bot.runbooks import service
from bot.slack import ids
from bot.slack.blocks.revoke_modal import pick_key_modal, revoke_modal
from bot.slack.context import SlackContext

MAX_REASON = 500


def _value(view: dict[str, Any], block: str, action: str) -> str | None:
    state = ((view.get("state") or {}).get("values") or {}).get(block, {}).get(action, {})
    if "selected_option" in state:
        return (state.get("selected_option") or {}).get("value")
    value = state.get("value")
    return str(value) if value is not None else None


def _metadata(view: dict[str, Any]) -> ids.ActionRef | None:
    try:
        return ids.ActionRef.decode(view.get("private_metadata") or "")
    except ids.BadActionRef:
        return None


def register(app: App, ctx: SlackContext) -> None:
    rt = ctx.runtime

    def stale(ack: Ack, block: str) -> None:
        ack(
            response_action="errors",
            errors={block: "This form is from an older keybot; run the command again."},
        )

    def form_for_key(user: str, key_id: int, extra: dict[str, str]) -> dict[str, Any] | str:
        with rt.database.session() as session:
            key = session.get(Key, key_id)
            if key is None:
                return "That key is no longer in the registry."
            allowed = ctx.permissions.can_revoke(user, key)
            if not allowed:
                return allowed.why
            return revoke_modal(
                key, utcnow(), ctx.traffic(key), ids.ActionRef(kind="key", id=str(key.id), extra=extra)
            )

    @app.view(ids.REVOKE_MODAL)
    def start_revoke(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        ref = _metadata(view)
        if ref is None or ref.kind != "key" or not ref.id.isdigit():
            stale(ack, ids.REASON_BLOCK)
            return
        user = str(body["user"]["id"])
        reason = (_value(view, ids.REASON_BLOCK, ids.REASON_ACTION) or "").strip()
        mode = _value(view, ids.MODE_BLOCK, ids.MODE_ACTION) or "staged"
        severity = _value(view, ids.SEVERITY_BLOCK, ids.SEVERITY_ACTION) or "sev2"
        if not reason:
            ack(
                response_action="errors",
                errors={ids.REASON_BLOCK: "Say what happened: where did the key leak?"},
            )
            return
        if mode not in ids.MODES or severity not in ids.SEVERITIES:
            stale(ack, ids.REASON_BLOCK)
            return
        with rt.database.session() as session:
            key = session.get(Key, int(ref.id))
            allowed = ctx.permissions.can_revoke(user, key) if key else None
        if key is None or not allowed:
            ack(
                response_action="errors",
                errors={ids.REASON_BLOCK: allowed.why if allowed else "Key not found."},
            )
            return
        drill = ref.extra.get("drill") == "1" or key.environment == "sandbox"
        key_id = key.id
        if drill and key.environment != "sandbox":
            with rt.database.session() as session:
                real = session.get(Key, key.id)
                assert real is not None
                key_id = rt.sandbox.drill_copy(session, real).id
        try:
            run_id = service.start_run(
                rt.database,
                rt.runbooks,
                key_id=key_id,
                runbook="revoke-replace-audit-notify",
                mode=mode,
                actor=user,
                reason=reason[:MAX_REASON],
                severity=severity,
                drill=drill,
            )
        except service.RunRefused as refused:
            ack(response_action="errors", errors={ids.REASON_BLOCK: str(refused)[:150]})
            return
        ack(response_action="clear")
        ctx.start_in_background(run_id)

    @app.view(ids.PICK_KEY_MODAL)
    def picked(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        meta = _metadata(view)
        try:
            chosen = ids.ActionRef.decode(_value(view, ids.PICK_KEY_BLOCK, ids.PICK_KEY) or "")
        except ids.BadActionRef:
            chosen = None
        if chosen is None or chosen.kind != "key" or not chosen.id.isdigit():
            stale(ack, ids.PICK_KEY_BLOCK)
            return
        form = form_for_key(str(body["user"]["id"]), int(chosen.id), meta.extra if meta else {})
        if isinstance(form, str):
            ack(response_action="errors", errors={ids.PICK_KEY_BLOCK: form[:150]})
            return
        ack(response_action="update", view=form)

    @app.view(ids.SEARCH_MODAL)
    def searched(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        meta = _metadata(view)
        extra = meta.extra if meta else {}
        query = (_value(view, ids.SEARCH_BLOCK, ids.SEARCH_ACTION) or "").strip()[:2000]
        with rt.database.session() as session:
            result = lookup(session, query, rt.fingerprinter)
            if result.ambiguous:
                ack(
                    response_action="update",
                    view=pick_key_modal(
                        result.matches[:100], ids.ActionRef(kind="view", id="pick", extra=extra)
                    ),
                )
                return
            key_id = result.unique.id if result.unique else None
            hint = (
                "That secret is not in the registry."
                if result.query_was_secret
                else "No key matches"
                + (f"; did you mean {', '.join(result.suggestions[:3])}?" if result.suggestions else ".")
            )
        if key_id is None:
            ack(response_action="errors", errors={ids.SEARCH_BLOCK: hint[:150]})
            return
        form = form_for_key(str(body["user"]["id"]), key_id, extra)
        if isinstance(form, str):
            ack(response_action="errors", errors={ids.SEARCH_BLOCK: form[:150]})
            return
        ack(response_action="update", view=form)

    @app.view(ids.SKIP_MODAL)
    def skipped(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        ref = _metadata(view)
        reason = (_value(view, ids.SKIP_REASON_BLOCK, ids.SKIP_REASON_ACTION) or "").strip()
        if ref is None or ref.kind != "run":
            stale(ack, ids.SKIP_REASON_BLOCK)
            return
        if not reason:
            ack(
                response_action="errors",
                errors={ids.SKIP_REASON_BLOCK: "A reason is required to skip a step."},
            )
            return
        try:
            service.skip_step(rt.database, ref.id, str(body["user"]["id"]), reason[:MAX_REASON])
        except service.RunRefused as refused:
            ack(response_action="errors", errors={ids.SKIP_REASON_BLOCK: str(refused)[:150]})
            return
        ack(response_action="clear")
        ctx.start_in_background(ref.id)

    @app.view(ids.ABORT_MODAL)
    def aborted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        ref = _metadata(view)
        reason = (_value(view, ids.ABORT_REASON_BLOCK, ids.ABORT_REASON_ACTION) or "").strip()
        if ref is None or ref.kind != "run":
            stale(ack, ids.ABORT_REASON_BLOCK)
            return
        try:
            service.abort(
                rt.database, ref.id, str(body["user"]["id"]), reason[:MAX_REASON] or "aborted in Slack"
            )
        except service.RunRefused as refused:
            ack(response_action="errors", errors={ids.ABORT_REASON_BLOCK: str(refused)[:150]})
            return
        ack(response_action="clear")
        ctx.publisher.flush(ref.id)
