"""Modal submissions: start a run, pick among candidates, search, skip with a reason, abort."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App

from bot.access.policy import Actor
from bot.db.base import utcnow
from bot.incidents import lifecycle
from bot.registry.models import Key
from bot.registry.service import lookup
from bot.runbooks import names, service
from bot.runbooks.models import Run
from bot.sandbox.drill import drill_copy
from bot.slack import ids, limits
from bot.slack.blocks.revoke_modal import pick_key_modal, revoke_modal
from bot.slack.context import SlackContext
from bot.slack.payloads import SubmittedView


def _typed(view: dict[str, Any]) -> SubmittedView | None:
    """The submitted view as the edge validated it (bot/slack/payloads.py); None for a foreign shape."""
    try:
        return SubmittedView.model_validate(view)
    except ValidationError:
        return None


def _value(view: dict[str, Any], block: str, action: str) -> str | None:
    """What the person entered or chose; None when empty or deselected (``selected_option: null``)."""
    typed = _typed(view)
    return typed.value(block, action) if typed is not None else None


def _metadata(view: dict[str, Any]) -> ids.ActionRef | None:
    typed = _typed(view)
    try:
        return ids.ActionRef.decode(typed.private_metadata if typed is not None else "")
    except ids.BadActionRef:
        return None


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    found = user.get("id") if isinstance(user, dict) else None
    return found if isinstance(found, str) else ""


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
        user = _user(body)
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
                errors={
                    ids.REASON_BLOCK: limits.plain(allowed.why, 150)
                    if allowed is not None
                    else "Key not found."
                },
            )
            return
        drill = ref.extra.get("drill") == "1" or key.environment == "sandbox" or key.drill
        key_id = key.id
        if drill and key.environment != "sandbox" and not key.drill:
            with rt.database.session() as session:
                real = session.get(Key, key.id)
                assert real is not None
                key_id = drill_copy(rt.sandbox, session, real).id
        try:
            run_id = service.start_run(
                rt.database,
                rt.runbooks,
                policy=rt.policy,
                key_id=key_id,
                runbook=names.REVOKE,
                mode=mode,
                actor=user,
                in_revoker_group=ctx.permissions.actor(user).in_revoker_group,
                reason=reason,
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
        form = form_for_key(_user(body), int(chosen.id), meta.extra if meta else {})
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
        form = form_for_key(_user(body), key_id, extra)
        if isinstance(form, str):
            ack(response_action="errors", errors={ids.SEARCH_BLOCK: form[:150]})
            return
        ack(response_action="update", view=form)

    def run_decision(
        ack: Ack, view: dict[str, Any], block: str, call: Callable[[str, service.Seen], service.Decided]
    ) -> None:
        """A modal that decides on a run: bound to the step and version the person saw."""
        ref = _metadata(view)
        version = ids.seen_version(ref) if ref is not None else None
        if ref is None or ref.kind != "run" or ref.step is None or version is None:
            stale(ack, block)
            return
        try:
            decided = call(ref.id, service.Seen(ref.step, version))
        except service.RunRefused as refused:
            ack(response_action="errors", errors={block: limits.plain(str(refused), 150)})
            ctx.publisher.publish(ref.id, force=True)
            return
        ack(response_action="clear")
        if decided.proceed:
            ctx.start_in_background(ref.id)
        else:
            ctx.publisher.publish(ref.id, force=True)

    @app.view(ids.SKIP_MODAL)
    def skipped(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        reason = (_value(view, ids.SKIP_REASON_BLOCK, ids.SKIP_REASON_ACTION) or "").strip()
        if not reason:
            ack(
                response_action="errors",
                errors={ids.SKIP_REASON_BLOCK: "A reason is required to skip a step."},
            )
            return
        actor = ctx.permissions.actor(_user(body))
        run_decision(
            ack,
            view,
            ids.SKIP_REASON_BLOCK,
            lambda run_id, seen: service.skip_step(
                rt.database, run_id, actor, reason, policy=rt.policy, seen=seen
            ),
        )

    @app.view(ids.DONE_MODAL)
    def marked_done(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        note = (_value(view, ids.DONE_NOTE_BLOCK, ids.DONE_NOTE_ACTION) or "").strip()
        if not note:
            ack(response_action="errors", errors={ids.DONE_NOTE_BLOCK: "Say what you did, and where."})
            return
        actor = ctx.permissions.actor(_user(body))
        run_decision(
            ack,
            view,
            ids.DONE_NOTE_BLOCK,
            lambda run_id, seen: service.mark_done(
                rt.database, run_id, actor, note, policy=rt.policy, seen=seen
            ),
        )

    @app.view(ids.ABORT_MODAL)
    def aborted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        ref = _metadata(view)
        reason = (_value(view, ids.ABORT_REASON_BLOCK, ids.ABORT_REASON_ACTION) or "").strip()
        outcome = _value(view, ids.ABORT_OUTCOME_BLOCK, ids.ABORT_OUTCOME_ACTION) or "keep_open"
        if ref is None or ref.kind != "run" or outcome not in ("keep_open", "resolve", "false_alarm"):
            stale(ack, ids.ABORT_REASON_BLOCK)
            return
        actor = ctx.permissions.actor(_user(body))
        reason = reason or "aborted in Slack"
        try:
            service.abort(rt.database, ref.id, actor, reason, policy=rt.policy)
        except service.RunRefused as refused:
            ack(response_action="errors", errors={ids.ABORT_REASON_BLOCK: limits.plain(str(refused), 150)})
            return
        ack(response_action="clear")
        ctx.publisher.flush(ref.id)
        ctx.later(after_abort, body, ref.id, actor)
        if outcome != "keep_open":
            ctx.later(close_after_abort, body, ref.id, actor, reason, outcome == "false_alarm")

    def after_abort(body: dict[str, Any], run_id: str, actor: Actor) -> None:
        """Narrowed scopes go back when the key was not revoked (bot/runbooks/containment.py); then a
        drill's sandbox copy is cleaned up."""
        try:
            released = service.release_containment(
                rt.database,
                lambda: rt.toolkit,
                run_id,
                actor,
                policy=rt.policy,
                drill_toolkit=rt.drill_toolkit,
            )
            if released.message:
                ctx.tell(body, released.message)
        except service.RunRefused as refused:
            ctx.tell(body, f"The run was aborted, but its containment was not undone: {refused}")
        finally:
            rt.drill_ended(run_id)

    def close_after_abort(
        body: dict[str, Any], run_id: str, actor: Actor, reason: str, false_alarm: bool
    ) -> None:
        with rt.database.session() as session:
            run = session.get(Run, run_id)
            incident_id = run.incident_id if run is not None else None
        if incident_id is None:
            return
        try:
            closed = lifecycle.close(
                rt.database, incident_id, actor, reason, policy=rt.policy, false_alarm=false_alarm
            )
        except service.RunRefused as refused:
            ctx.tell(body, f"The run was aborted, but the incident stays open: {refused}")
            return
        ctx.tell(body, closed.message)
        ctx.refresh_incident(incident_id)
        ctx.worker.deliver()  # the postmortem draft, into the incident's thread

    @app.view(ids.INCIDENT_MODAL)
    def incident_closed(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        ref = _metadata(view)
        reason = (_value(view, ids.INCIDENT_REASON_BLOCK, ids.INCIDENT_REASON_ACTION) or "").strip()
        if ref is None or ref.kind != "incident" or not ref.id.isdigit() or len(ref.id) > 9:
            stale(ack, ids.INCIDENT_REASON_BLOCK)
            return
        if not reason:
            ack(response_action="errors", errors={ids.INCIDENT_REASON_BLOCK: "A reason is required."})
            return
        actor = ctx.permissions.actor(_user(body))
        try:
            closed = lifecycle.close(
                rt.database,
                int(ref.id),
                actor,
                reason,
                policy=rt.policy,
                false_alarm=ref.extra.get("as") == "false_alarm",
            )
        except service.RunRefused as refused:
            ack(response_action="errors", errors={ids.INCIDENT_REASON_BLOCK: limits.plain(str(refused), 150)})
            return
        ack(response_action="clear")
        ctx.later(ctx.refresh_incident, closed.incident_id)
        ctx.later(ctx.worker.deliver)  # the postmortem draft, into the incident's thread
