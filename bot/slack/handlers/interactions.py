"""Buttons on progress messages, incident headers, leak warnings and App Home.

Every button value is a typed ActionRef; run buttons carry the step and the run version the message
showed, and the service functions refuse a decision on any other (bot/runbooks/decisions.py). The
permission checks live there too: this module only says who clicked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App

from bot.access.policy import Actor
from bot.registry.models import Key
from bot.runbooks import names, service, waits
from bot.runbooks.models import Run
from bot.slack import ids
from bot.slack.api import SlackError
from bot.slack.blocks.revoke_modal import (
    abort_modal,
    mark_done_modal,
    resolve_incident_modal,
    skip_reason_modal,
)
from bot.slack.context import SlackContext
from bot.slack.payloads import BlockActions

STALE = "That button belongs to an older or unknown message; the run's message shows its current state."


def _click(body: dict[str, Any]) -> BlockActions | None:
    """The typed click; the edge already refused malformed payloads, so None only for a foreign shape."""
    try:
        return BlockActions.model_validate(body)
    except ValidationError:
        return None


def _ref(body: dict[str, Any]) -> ids.ActionRef | None:
    """The ActionRef in the button value or selected option; None when missing (a deselect) or not ours."""
    click = _click(body)
    if click is None:
        return None
    try:
        return ids.ActionRef.decode(click.action.chosen)
    except ids.BadActionRef:
        return None


def _user(body: dict[str, Any]) -> str:
    click = _click(body)
    return click.user.id if click is not None else ""


def _action_id(body: dict[str, Any]) -> str:
    click = _click(body)
    return click.action.action_id if click is not None else ""


def _seen(ref: ids.ActionRef) -> service.Seen | None:
    """The state the person saw; None when the button carries no version (an older message)."""
    version = ids.seen_version(ref)
    if ref.step is None or version is None:
        return None
    return service.Seen(ref.step, version)


def register(app: App, ctx: SlackContext) -> None:
    rt = ctx.runtime

    def apply(body: dict[str, Any], run_id: str, call: Callable[[], service.Decided]) -> None:
        """Apply a decision; refusals are told to the person and the message is refreshed."""
        try:
            decided = call()
        except service.RunRefused as refused:
            ctx.refuse(body, str(refused), action=_action_id(body))
            ctx.publisher.publish(run_id, force=True)
            return
        if decided.proceed:
            ctx.start_in_background(run_id)
        else:
            ctx.tell(body, decided.message)
            ctx.publisher.publish(run_id, force=True)

    def run_button(body: dict[str, Any]) -> tuple[ids.ActionRef, service.Seen] | None:
        ref = _ref(body)
        seen = _seen(ref) if ref is not None and ref.kind == "run" else None
        if ref is None or seen is None:
            ctx.refuse(body, STALE, action=_action_id(body))
            if ref is not None and ref.kind == "run":
                ctx.publisher.publish(ref.id, force=True)
            return None
        return ref, seen

    Bound = Callable[[str, Actor, service.Seen], service.Decided]
    bound_decisions: dict[str, Bound] = {
        ids.APPROVE: lambda run, who, seen: service.approve(
            rt.database, run, who, policy=rt.policy, seen=seen
        ),
        ids.RETRY: lambda run, who, seen: service.retry_step(
            rt.database, run, who, policy=rt.policy, seen=seen
        ),
        ids.REVOKE_NOW: lambda run, who, seen: waits.revoke_now(
            rt.database, run, who, policy=rt.policy, seen=seen
        ),
        ids.WAIT_LONGER: lambda run, who, seen: waits.wait_longer(
            rt.database, run, who, 30, policy=rt.policy, seen=seen
        ),
    }
    """Buttons that decide on a run at once, bound to the step and version the message showed."""

    def decide(body: dict[str, Any], decision: Bound) -> None:
        found = run_button(body)
        if found is None:
            return
        ref, seen = found
        actor = ctx.permissions.actor(_user(body))
        apply(body, ref.id, lambda: decision(ref.id, actor, seen))

    def bound_listener(decision: Bound) -> Callable[[Ack, dict[str, Any]], None]:
        def listener(ack: Ack, body: dict[str, Any]) -> None:
            ack()
            ctx.later(decide, body, decision)

        return listener

    for action_id, decision in bound_decisions.items():
        app.action(action_id)(bound_listener(decision))

    def confirm_redeployed(body: dict[str, Any]) -> None:
        ref = _ref(body)
        consumer = ref.extra.get("consumer") if ref is not None else None
        if ref is None or ref.kind != "run" or not consumer:
            ctx.refuse(body, STALE, action=_action_id(body))
            return
        actor = ctx.permissions.actor(_user(body))
        apply(
            body,
            ref.id,
            lambda: waits.confirm_redeployed(rt.database, ref.id, consumer, actor, policy=rt.policy),
        )

    @app.action(ids.REDEPLOYED)
    def redeployed(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ctx.later(confirm_redeployed, body)

    def open_modal(body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            ctx.api.open_view(body.get("trigger_id", ""), view)
        except SlackError as error:
            ctx.tell(body, error.explanation)

    def step_title(run_id: str, step: str) -> str:
        with rt.database.session() as session:
            run = session.get(Run, run_id)
            found = next((s for s in run.steps if s.name == step), None) if run else None
            return found.title if found else step

    def open_step_modal(
        body: dict[str, Any], build: Callable[[str, str, str, int | None], dict[str, Any]]
    ) -> None:
        """A modal that asks why before deciding on a step; it carries the step and version the button had."""
        found = run_button(body)
        if found is None:
            return
        ref, seen = found
        assert seen.step is not None
        open_modal(body, build(ref.id, seen.step, step_title(ref.id, seen.step), seen.version))

    @app.action(ids.MARK_DONE)
    def mark_done(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        open_step_modal(body, mark_done_modal)

    @app.action(ids.SKIP)
    def skip(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        open_step_modal(body, skip_reason_modal)

    @app.action(ids.ABORT)
    def abort(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ref = _ref(body)
        if ref is None or ref.kind != "run":
            ctx.refuse(body, STALE, action=_action_id(body))
            return
        with rt.database.session() as session:
            run = session.get(Run, ref.id)
            incident = run is not None and run.incident_id is not None
        open_modal(body, abort_modal(ref.id, incident=incident))

    @app.action(re.compile(rf"^({re.escape(ids.RESOLVE_INCIDENT)}|{re.escape(ids.FALSE_ALARM)})$"))
    def close_incident(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ref = _ref(body)
        if ref is None or ref.kind != "incident" or not ref.id.isdigit() or len(ref.id) > 9:
            ctx.refuse(body, STALE, action=_action_id(body))
            return
        false_alarm = _action_id(body) == ids.FALSE_ALARM
        open_modal(body, resolve_incident_modal(int(ref.id), false_alarm=false_alarm))

    @app.action(re.compile(rf"^({re.escape(ids.OPEN_REVOKE)}|{re.escape(ids.REVOKE_FROM_LEAK)})$"))
    def open_revoke(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ref = _ref(body)
        fingerprint = ref.extra.get("fp", "") if ref is not None else ""
        if (
            ref is not None
            and ref.kind == "incident"
            and ref.id.isdigit()
            and len(ref.id) < 10
            and fingerprint
        ):
            ctx.open_leak_revoke_flow(body, _user(body), int(ref.id), fingerprint)
            return
        if ref is None or ref.kind != "key":
            ctx.refuse(body, STALE, action=_action_id(body))
            return
        query = ref.id if ref.extra.get("by") == "name" else f"#{ref.id}"
        ctx.open_revoke_flow(body, _user(body), query)

    def rotate(body: dict[str, Any], key_id: int) -> None:
        user = _user(body)
        with rt.database.session() as session:
            key = session.get(Key, key_id)
            name = key.name if key is not None else None
        if name is None:
            ctx.refuse(body, "That key is no longer in the registry.", action=ids.ROTATE_NOW)
            return
        try:
            run_id = names.start_rotation(
                rt.database, rt.runbooks, policy=rt.policy, key_id=key_id, actor=ctx.permissions.actor(user)
            )
        except service.RunRefused as refused:
            ctx.refuse(body, f"Rotation of {name} not started: {refused}", action=ids.ROTATE_NOW)
            return
        ctx.tell(body, f"Rotation of {name} started (run `{run_id}`); progress is in the team channel.")
        ctx.start_in_background(run_id)

    @app.action(ids.ROTATE_NOW)
    def rotate_now(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        ref = _ref(body)
        if ref is None or ref.kind != "key" or not ref.id.isdigit() or len(ref.id) > 12:
            ctx.refuse(body, STALE, action=ids.ROTATE_NOW)
            return
        ctx.later(rotate, body, int(ref.id))

    @app.action(re.compile(r"^(key\.snooze|revoke\.pick_key)"))
    def not_for_this_version(ack: Ack, body: dict[str, Any]) -> None:
        ack()
