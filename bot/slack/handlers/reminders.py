"""The rotation reminder's buttons (Rotate now, Snooze…, Mark rotated…) and its two modals' submissions.

Thin: the domain's service functions (bot/reminders/service.py) check who may and apply; this module says
who clicked, reads the form, and answers. Refusals reach the person privately (an App Home click has no
channel: :meth:`SlackContext.tell` finds a place), form mistakes come back as ``response_action: errors``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App

from bot.access.policy import Decision
from bot.db.base import utcnow
from bot.log import get_logger
from bot.registry.models import Key
from bot.reminders import service
from bot.reminders.delivery import schedule_of
from bot.reminders.due import key_due
from bot.reminders.settings import reminder_settings
from bot.reminders.types import DueKey
from bot.runbooks.refusals import RunRefused
from bot.slack import ids, limits
from bot.slack.api import SlackError
from bot.slack.blocks.reminders import CUSTOM, mark_rotated_modal, snooze_modal, state_text
from bot.slack.context import SlackContext
from bot.slack.models import RunMessage
from bot.slack.payloads import BlockActions, SubmittedView
from bot.slack.reminders import refresh_for_key

log = get_logger(__name__)

STALE = "That button belongs to an older or unknown reminder; the newest reminder shows the key's state."
ERROR_CHARS = 150  # Slack shows a field error on one short line


def _clicked(body: dict[str, Any]) -> tuple[str, ids.ActionRef | None]:
    """Who clicked, and the key reference on the button (None when missing, garbled or not a key)."""
    try:
        click = BlockActions.model_validate(body)
    except ValidationError:
        return "", None
    try:
        ref = ids.ActionRef.decode(click.action.chosen)
    except ids.BadActionRef:
        return click.user.id, None
    return click.user.id, ref if _key_id(ref) is not None else None


def _key_id(ref: ids.ActionRef | None) -> int | None:
    if ref is None or ref.kind != "key" or not ref.id.isdigit() or len(ref.id) > 12:
        return None
    return int(ref.id)


def _submitted(body: dict[str, Any]) -> tuple[str, SubmittedView | None, ids.ActionRef | None]:
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    try:
        view = SubmittedView.model_validate(body.get("view"))
        ref = ids.ActionRef.decode(view.private_metadata)
    except (ValidationError, ids.BadActionRef):
        return str(user_id or ""), None, None
    return str(user_id or ""), view, ref if _key_id(ref) is not None else None


def _selected_date(body: dict[str, Any]) -> str | None:
    """The date picker's ``selected_date`` (``YYYY-MM-DD``); the edge model carries it as an extra field."""
    values = body.get("view", {}).get("state", {}).get("values", {})
    entered = values.get(ids.ROTATED_ON_BLOCK, {}).get(ids.ROTATED_ON_ACTION, {})
    chosen = entered.get("selected_date") if isinstance(entered, dict) else None
    return chosen if isinstance(chosen, str) else None


def _field_error(block: str, why: str) -> dict[str, Any]:
    return {"response_action": "errors", "errors": {block: limits.plain(why, ERROR_CHARS)}}


def snooze_days(view: SubmittedView, max_days: int) -> int | dict[str, Any]:
    """The chosen duration in days, or the ``errors`` answer naming the field that is wrong."""
    choice = view.value(ids.SNOOZE_DAYS_BLOCK, ids.SNOOZE_DAYS_ACTION)
    custom = (view.value(ids.SNOOZE_CUSTOM_BLOCK, ids.SNOOZE_CUSTOM_ACTION) or "").strip()
    if choice == CUSTOM or (choice is None and custom):
        if not custom.isdigit() or len(custom) > 4:
            return _field_error(ids.SNOOZE_CUSTOM_BLOCK, f"Give a whole number of days, 1 to {max_days}.")
        days = int(custom)
    elif choice is not None and choice.isdigit() and len(choice) < 4:
        days = int(choice)
    else:
        return _field_error(ids.SNOOZE_DAYS_BLOCK, "Choose how long to snooze.")
    if not 1 <= days <= max_days:
        block = ids.SNOOZE_CUSTOM_BLOCK if choice == CUSTOM or custom else ids.SNOOZE_DAYS_BLOCK
        return _field_error(block, f"A snooze lasts 1 to {max_days} days.")
    return days


def register(app: App, ctx: SlackContext) -> None:
    rt = ctx.runtime

    def key_name(key_id: int) -> str | None:
        with rt.database.session() as session:
            key = session.get(Key, key_id)
            return key.name if key is not None else None

    def progress_link(run_id: str) -> str:
        """Where the run's live progress is: a permalink when Slack gives one."""
        with rt.database.session() as session:
            where = session.get(RunMessage, run_id)
            channel, ts = (where.channel, where.progress_ts) if where is not None else (None, None)
        link = None
        if channel and ts:
            try:
                link = ctx.api.permalink(channel, ts)
            except SlackError:
                link = None
        return f"<{link}|follow its progress>" if link else "its progress is in the team channel"

    def rotate(body: dict[str, Any], user: str, key_id: int) -> None:
        name = key_name(key_id)
        if name is None:
            ctx.refuse(body, "That key is no longer in the registry.", action=ids.REMINDER_ROTATE)
            return
        actor = ctx.permissions.actor(user)
        try:
            run_id = service.start_rotation(
                rt.database,
                rt.runbooks,
                key_id,
                actor,
                policy=rt.policy,
                in_revoker_group=actor.in_revoker_group,
            )
        except RunRefused as refused:
            ctx.refuse(body, f"Rotation of {name} not started: {refused}", action=ids.REMINDER_ROTATE)
            return
        ctx.start_in_background(run_id)  # posts the progress message first, then runs
        ctx.tell(
            body, f"Rotation of {limits.mrkdwn(name, 200)} started (run `{run_id}`): {progress_link(run_id)}."
        )

    @app.action(ids.REMINDER_ROTATE)
    def rotate_now(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        user, ref = _clicked(body)
        key_id = _key_id(ref)
        if key_id is None:
            ctx.refuse(body, STALE, action=ids.REMINDER_ROTATE)
            return
        ctx.later(rotate, body, user, key_id)

    def due_or_refuse(
        body: dict[str, Any], action: str, decision: Decision
    ) -> tuple[DueKey, ids.ActionRef] | None:
        """The key's rotation state for the form, or None after telling the person why there is no form
        (a stale button, a key no longer active, or someone who may not: refused before they type)."""
        user, ref = _clicked(body)
        key_id = _key_id(ref)
        if key_id is None or ref is None:
            ctx.refuse(body, STALE, action=action)
            return None
        with rt.database.session() as session:
            key = session.get(Key, key_id)
            verdict = ctx.permissions.may(decision, user, key) if key is not None else None
        if verdict is not None and not verdict:
            ctx.refuse(body, verdict.why, action=action)
            return None
        due = key_due(rt.database, key_id, utcnow()) if verdict is not None else None
        if due is None:
            ctx.refuse(body, "That key is no longer active.", action=action)
            return None
        return due, ref

    def open_modal(body: dict[str, Any], view: dict[str, Any]) -> None:
        """Opened in the listener: a trigger id lives 3 seconds."""
        try:
            ctx.api.open_view(str(body.get("trigger_id") or ""), view)
        except SlackError as error:
            ctx.tell(body, f"keybot could not open the form: {error.explanation}")

    @app.action(ids.REMINDER_SNOOZE)
    def snooze(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        found = due_or_refuse(body, ids.REMINDER_SNOOZE, Decision.SNOOZE)
        if found is not None:
            due, ref = found
            max_days = reminder_settings().max_snooze_days
            open_modal(body, snooze_modal(due, max_days=max_days, day=ids.reminder_day(ref)))

    @app.action(ids.REMINDER_MARK_ROTATED)
    def mark_rotated(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        found = due_or_refuse(body, ids.REMINDER_MARK_ROTATED, Decision.MARK_ROTATED)
        if found is not None:
            due, ref = found
            try:
                today = schedule_of(rt.database, due.team, reminder_settings()).local_date(utcnow())
            except RunRefused:
                today = utcnow().date()
            open_modal(body, mark_rotated_modal(due, today, day=ids.reminder_day(ref)))

    @app.view(ids.SNOOZE_MODAL)
    def snoozed(ack: Ack, body: dict[str, Any]) -> None:
        user, view, ref = _submitted(body)
        key_id = _key_id(ref)
        if view is None or key_id is None:
            ack(**_field_error(ids.SNOOZE_REASON_BLOCK, "This form is from an older keybot; click again."))
            return
        days = snooze_days(view, reminder_settings().max_snooze_days)
        if isinstance(days, dict):
            ack(**days)
            return
        reason = (view.value(ids.SNOOZE_REASON_BLOCK, ids.SNOOZE_REASON_ACTION) or "").strip()
        if not reason:
            ack(**_field_error(ids.SNOOZE_REASON_BLOCK, "Say why: the reason goes on the key's timeline."))
            return
        actor = ctx.permissions.actor(user)
        try:
            due = service.snooze(rt.database, key_id, actor, days=days, reason=reason, policy=rt.policy)
        except RunRefused as refused:
            ack(**_field_error(ids.SNOOZE_REASON_BLOCK, str(refused)))
            return
        ack(response_action="clear")
        log.info("reminder snoozed", key_id=key_id, user=user, days=days)
        ctx.later(ctx.tell, body, f"Snoozed *{limits.mrkdwn(due.name, 200)}*: {state_text(due)}.")

    @app.view(ids.MARK_ROTATED_MODAL)
    def marked_rotated(ack: Ack, body: dict[str, Any]) -> None:
        user, view, ref = _submitted(body)
        key_id = _key_id(ref)
        if view is None or key_id is None or ref is None:
            ack(**_field_error(ids.ROTATED_ON_BLOCK, "This form is from an older keybot; click again."))
            return
        chosen = _selected_date(body)
        try:
            rotated_on = date.fromisoformat(chosen or "")
        except ValueError:
            ack(**_field_error(ids.ROTATED_ON_BLOCK, "Pick the day the key was rotated."))
            return
        note = (view.value(ids.ROTATED_NOTE_BLOCK, ids.ROTATED_NOTE_ACTION) or "").strip()
        if not note:
            ack(**_field_error(ids.ROTATED_NOTE_BLOCK, "Say how it was rotated: it goes on the timeline."))
            return
        actor = ctx.permissions.actor(user)
        try:
            due = service.mark_rotated(
                rt.database, key_id, actor, rotated_on=rotated_on, note=note, policy=rt.policy
            )
        except RunRefused as refused:
            ack(**_field_error(ids.ROTATED_ON_BLOCK, str(refused)))
            return
        ack(response_action="clear")
        log.info("key marked rotated", key_id=key_id, user=user)
        ctx.later(after_marked, body, key_id, ids.reminder_day(ref), due)

    def after_marked(body: dict[str, Any], key_id: int, day: date | None, due: DueKey) -> None:
        refresh_for_key(rt.database, ctx.api, key_id, day=day)
        ctx.tell(body, f"Recorded: *{limits.mrkdwn(due.name, 200)}* rotated; {state_text(due)}.")
