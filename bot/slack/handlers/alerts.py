"""The anomaly page's buttons: Acknowledge, That was me (expected), Revoke now.

Thin: the alerts domain's service functions check who may and apply, bound to the alert version the page
showed (bot/alerts/service.py). This module says who clicked, answers at once, and afterwards edits the
page: closed (who answered, no buttons) on success; on a refusal the person is told privately why and the
page is re-rendered from the alert's current state, so a stale page never keeps offering stale buttons.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App

from bot.access.policy import Actor
from bot.alerts import service
from bot.alerts.service import oncall_groups
from bot.log import get_logger
from bot.runbooks.refusals import RunRefused
from bot.slack import ids, limits
from bot.slack.alerts import current_page, page_posted_at
from bot.slack.api import SlackError
from bot.slack.blocks.alert_page import AlertPage, page_from_alert
from bot.slack.blocks.alerts import alert_page_blocks
from bot.slack.context import SlackContext
from bot.slack.payloads import BlockActions

log = get_logger(__name__)

STALE = "That button belongs to an older or unknown page; the page now shows the alert's current state."
ACTIONS = re.compile(
    rf"^({re.escape(ids.ACK_ALERT)}|{re.escape(ids.EXPECTED_ALERT)}|{re.escape(ids.REVOKE_ALERT)})$"
)
DONE = {
    ids.ACK_ALERT: "Acknowledged: the escalation stopped. Keep an eye on the key's traffic.",
    ids.EXPECTED_ALERT: "Marked expected: keybot raised this key's baseline for this pattern.",
}


def _clicked(body: dict[str, Any]) -> tuple[str, str, tuple[int, int] | None]:
    """Who clicked, which button, and the (alert id, version) it carried (None: garbled or not ours)."""
    try:
        click = BlockActions.model_validate(body)
    except ValidationError:
        return "", "", None
    try:
        ref = ids.ActionRef.decode(click.action.chosen)
    except ids.BadActionRef:
        return click.user.id, click.action.action_id, None
    return click.user.id, click.action.action_id, ids.alert_seen(ref)


def _where(body: dict[str, Any]) -> tuple[str, str] | None:
    """The clicked message (channel, ts); None for a click outside a message (App Home)."""
    container = body.get("container")
    if not isinstance(container, dict) or container.get("type") != "message":
        return None
    channel, ts = container.get("channel_id"), container.get("message_ts")
    if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
        return channel[:40], ts[:40]
    return None


def register(app: App, ctx: SlackContext) -> None:
    rt = ctx.runtime

    def show(where: tuple[str, str] | None, page: AlertPage) -> None:
        """Edit the clicked page to ``page``; a page that cannot be edited is logged, never raised."""
        if where is None:
            return
        text, blocks = alert_page_blocks(page)
        try:
            ctx.api.update_message(where[0], where[1], text, blocks)
        except SlackError as error:
            log.warning("alert page not edited", alert_id=page.alert_id, code=error.code)

    def refresh(alert_id: int, where: tuple[str, str] | None) -> None:
        """After a refusal: the clicked page re-rendered from the alert's current state."""
        posted = page_posted_at(rt.database, alert_id, where)
        if posted is not None:
            show(where, current_page(rt.database, posted))

    def decide(body: dict[str, Any], user: str, action: str, alert_id: int, version: int) -> None:
        actor = ctx.permissions.actor(user, groups=oncall_groups(rt.database, alert_id))
        where = _where(body)
        decisions: dict[str, Callable[[Actor], Any]] = {
            ids.ACK_ALERT: lambda who: service.acknowledge(
                rt.database, alert_id, version, who, policy=rt.policy
            ),
            ids.EXPECTED_ALERT: lambda who: service.mark_expected(
                rt.database, alert_id, version, who, policy=rt.policy
            ),
        }
        run_id: str | None = None
        try:
            if action == ids.REVOKE_ALERT:
                run_id = service.revoke_now(rt.database, rt.runbooks, rt.policy, alert_id, version, actor)
            else:
                decisions[action](actor)
        except RunRefused as refused:
            ctx.refuse(body, str(refused), action=action)
            refresh(alert_id, where)
            return
        posted = page_posted_at(rt.database, alert_id, where)
        if posted is None and where is not None:
            with rt.database.session() as session:
                alert = service.get_alert(session, alert_id)
            posted = page_from_alert(alert) if alert is not None else None
        if posted is not None:
            page = current_page(rt.database, posted)
            show(where, replace(page, run_id=run_id) if run_id else page)
        if run_id is not None:
            ctx.start_in_background(run_id)  # posts the run's progress message, then runs it
            ctx.tell(body, f"Emergency revocation started (run `{limits.mrkdwn(run_id, 60)}`).")
        else:
            ctx.tell(body, DONE[action])
        ctx.worker.deliver()  # the others already paged hear now (alert_update rows), not at the next clock

    @app.action(ACTIONS)
    def clicked(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        user, action, seen = _clicked(body)
        if seen is None:
            ctx.refuse(body, STALE, action=action or "alert")
            return
        ctx.later(decide, body, user, action, *seen)
