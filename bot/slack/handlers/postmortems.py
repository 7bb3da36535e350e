"""The postmortem draft's **Regenerate** button: the incident's people redraw it after editing the notes.

Thin: the postmortems domain checks who may (`bot/postmortems/regenerate.py`) before anything is drawn;
a stranger is told privately who may and nothing is uploaded. The new version goes into the same place as
the first (the incident's thread, or a drill starter's DM).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App

from bot.log import get_logger
from bot.postmortems.regenerate import check_regenerate
from bot.runbooks.refusals import RunRefused
from bot.slack import ids
from bot.slack.api import SlackError
from bot.slack.context import SlackContext
from bot.slack.payloads import BlockActions
from bot.slack.postmortems import draft_destination, drill_starter, share_draft

log = get_logger(__name__)

STALE = "That button does not name an incident keybot knows; nothing was regenerated."


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
