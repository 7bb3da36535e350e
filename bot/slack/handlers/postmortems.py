"""The postmortem draft's **Regenerate** and **Add a note…** buttons: the incident's people add notes to
the timeline and redraw the draft from it.

Thin: the postmortems domain checks who may (`bot/postmortems/regenerate.py`) before anything is drawn;
a stranger is told privately who may and nothing is uploaded. The new version goes into the same place as
the first (the incident's thread, or a drill starter's DM).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App

from bot.log import get_logger
from bot.postmortems.notes import add_note
from bot.postmortems.regenerate import check_regenerate
from bot.runbooks.refusals import RunRefused
from bot.slack import ids, limits
from bot.slack.api import SlackError
from bot.slack.blocks.revoke_modal import note_modal
from bot.slack.context import SlackContext
from bot.slack.payloads import BlockActions, SubmittedView
from bot.slack.postmortems import draft_destination, drill_starter, share_draft

log = get_logger(__name__)

STALE = "That button does not name an incident keybot knows; nothing was regenerated."
STALE_FORM = "This form is from an older keybot; open it again from the incident."


def _clicked(body: dict[str, Any]) -> tuple[str, int | None]:
    """Who clicked and the incident the button carried (None: garbled or not ours)."""
    try:
        click = BlockActions.model_validate(body)
        ref = ids.ActionRef.decode(click.action.chosen)
    except (ValidationError, ids.BadActionRef):
        user = body.get("user")
        return (str(user.get("id", "")) if isinstance(user, dict) else ""), None
    if ref.kind != "incident" or not ref.id.lstrip("-").isdigit() or len(ref.id) > 10:
        return click.user.id, None
    return click.user.id, int(ref.id)


def register(app: App, ctx: SlackContext) -> None:
    rt = ctx.runtime

    def regenerate(body: dict[str, Any], user: str, incident_id: int) -> None:
        actor = ctx.permissions.actor(user)
        try:
            check_regenerate(rt.database, incident_id, actor, policy=rt.policy)
        except RunRefused as refused:
            ctx.refuse(body, str(refused), action=ids.REGENERATE_POSTMORTEM)
            return
        try:
            drill, starter = drill_starter(rt.database, incident_id)
            where = draft_destination(
                ctx.api,
                rt.database,
                incident_id,
                drill=drill,
                starter=starter,
                fallback_channel=rt.settings.security_channel,
            )
            share_draft(ctx.api, rt.database, incident_id, where, regenerated_by=user)
        except SlackError as error:
            log.warning("postmortem draft not regenerated", code=error.code, why=error.explanation)
            ctx.tell(body, f"The draft could not be uploaded: {error.explanation or error.code}.")
            return
        ctx.tell(body, "A new version of the postmortem draft is in the thread.")

    @app.action(ids.REGENERATE_POSTMORTEM)
    def clicked(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        user, incident_id = _clicked(body)
        if incident_id is None or not user:
            ctx.refuse(body, STALE, action=ids.REGENERATE_POSTMORTEM)
            return
        ctx.later(regenerate, body, user, incident_id)

    @app.action(ids.ADD_NOTE)
    def open_note(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        user, incident_id = _clicked(body)
        if incident_id is None or not user:
            ctx.refuse(body, STALE.replace("regenerated", "added"), action=ids.ADD_NOTE)
            return
        try:
            ctx.api.open_view(str(body.get("trigger_id") or ""), note_modal(incident_id))
        except SlackError as error:
            ctx.tell(body, error.explanation or error.code)

    @app.view(ids.NOTE_MODAL)
    def note_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            submitted = SubmittedView.model_validate(view)
            ref = ids.ActionRef.decode(submitted.private_metadata)
        except (ValidationError, ids.BadActionRef):
            ack(response_action="errors", errors={ids.NOTE_BLOCK: STALE_FORM})
            return
        if ref.kind != "incident" or not ref.id.lstrip("-").isdigit() or len(ref.id) > 10:
            ack(response_action="errors", errors={ids.NOTE_BLOCK: STALE_FORM})
            return
        text = (submitted.value(ids.NOTE_BLOCK, ids.NOTE_ACTION) or "").strip()
        user = body.get("user")
        actor = ctx.permissions.actor(str(user.get("id", "")) if isinstance(user, dict) else "")
        try:
            add_note(rt.database, int(ref.id), actor, text, policy=rt.policy)
        except RunRefused as refused:
            ack(response_action="errors", errors={ids.NOTE_BLOCK: limits.plain(str(refused), 150)})
            return
        ack(response_action="clear")
