"""Anomaly pages through Slack: post the page, then its chart, and edit pages in place once answered.

The alerts domain enqueues ``alert_page`` rows (one per step and recipient) and ``alert_update`` rows (an
acknowledgement, told to everyone already paged). :class:`AlertSender` renders pages with
:mod:`bot.slack.blocks.alerts`, remembers where each one was posted (on its own outbox row, so any process
can edit it later), and uploads the chart PNG into the page's thread with ``files_upload_v2``. The chart is
a nicety: when it cannot be drawn or uploaded the page still counts as delivered and the failure is logged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import select

from bot.alerts.chart import ChartData, render_png
from bot.alerts.service import chart_points, get_alert
from bot.db.session import Database
from bot.log import get_logger
from bot.notifications.models import Notification, NotificationStatus
from bot.slack.api import PostedMessage, SlackAPI, SlackError
from bot.slack.blocks.alert_page import AlertPage, page_from_alert, page_from_facts
from bot.slack.blocks.alerts import STEPS, alert_closed_blocks, alert_page_blocks
from bot.slack.blocks.sparkline import sparkline
from bot.slack.delivery import Renderer, notification_metadata
from bot.slack.reminders import ReminderSender

log = get_logger(__name__)

PAGE_KIND = "alert_page"
UPDATE_KIND = "alert_update"
POSTED = "posted"  # facts key on an alert_page row: {"channel": ..., "ts": ...} once it is in Slack
CHART_NAME = "chart.png"
CHART_HOURS = 6
MAX_PAGES_EDITED = 20


def chart_data(database: Database, alert_id: int) -> ChartData | None:
    """The alert's last hours against its baseline (for the sparkline and the PNG); None when unavailable."""
    try:
        with database.session() as session:
            return chart_points(session, alert_id, hours=CHART_HOURS)
    except Exception:
        log.exception("alert chart data unavailable", alert_id=alert_id)
        return None


def current_page(database: Database, page: AlertPage) -> AlertPage:
    """``page`` with the alert's current state, version and next step (a page delivered late, after an
    acknowledgement, must not offer buttons that would be refused); the row's facts when unavailable."""
    try:
        with database.session() as session:
            alert = get_alert(session, page.alert_id)
    except Exception:
        log.warning("alert state unavailable; page rendered from its facts", alert_id=page.alert_id)
        return page
    if alert is None:
        return page
    fresh = page_from_alert(alert, mention=page.mention, run_id=getattr(alert, "run_id", None))
    # The chain's next step follows the alert's step, which is ahead of a page delivered late.
    return replace(fresh, step=page.step, next_step=_after(fresh.step), acked_by=_closer(alert))


def _after(step: str) -> str | None:
    return STEPS[STEPS.index(step) + 1] if step in STEPS[:-1] else None


def _closer(alert: Any) -> str | None:
    found = getattr(alert, "closed_by", None) or getattr(alert, "acked_by", None)
    return str(found) if found else None


def record_posted(database: Database, notification_id: int, posted: PostedMessage) -> None:
    """Remember where a page went, on its outbox row, so an acknowledgement can edit it from any process."""
    with database.session() as session:
        row = session.get(Notification, notification_id)
        if row is not None:
            row.facts = {**(row.facts or {}), POSTED: {"channel": posted.channel, "ts": posted.ts}}


def posted_pages(database: Database, alert_id: int, recipient: str | None = None) -> list[tuple[str, str]]:
    """(channel, ts) of the pages of ``alert_id`` already in Slack (to ``recipient`` only, when given)."""
    query = select(Notification.facts).where(
        Notification.kind == PAGE_KIND,
        Notification.dedupe_key.like(f"alert:{int(alert_id)}:%"),
        Notification.status.in_([NotificationStatus.SENT, NotificationStatus.SENDING]),
    )
    if recipient is not None:
        query = query.where(Notification.recipient == recipient)
    found: list[tuple[str, str]] = []
    with database.session() as session:
        for facts in session.scalars(query.order_by(Notification.id).limit(MAX_PAGES_EDITED)):
            where = (facts or {}).get(POSTED)
            if isinstance(where, dict) and where.get("channel") and where.get("ts"):
                found.append((str(where["channel"]), str(where["ts"])))
    return found


def page_posted_at(database: Database, alert_id: int, where: tuple[str, str] | None) -> AlertPage | None:
    """The page posted at ``where`` (channel, ts) as it was sent (its step, its on-call mention)."""
    if where is None:
        return None
    query = select(Notification.facts).where(
        Notification.kind == PAGE_KIND, Notification.dedupe_key.like(f"alert:{int(alert_id)}:%")
    )
    with database.session() as session:
        rows = session.scalars(query.order_by(Notification.id)).all()
    for facts in rows:
        spot = (facts or {}).get(POSTED)
        if isinstance(spot, dict) and (spot.get("channel"), spot.get("ts")) == where:
            try:
                return page_from_facts(facts)
            except ValueError:
                return None
    return None


def refresh_pages(database: Database, api: SlackAPI, page: AlertPage, recipient: str | None = None) -> int:
    """Edit the alert's posted pages to show ``page`` (closed: who answered, no buttons). Never raises;
    returns how many were edited."""
    edited = 0
    try:
        places = posted_pages(database, page.alert_id, recipient)
    except Exception:
        log.exception("posted pages unreadable", alert_id=page.alert_id)
        return 0
    for channel, ts in places:
        text, blocks = alert_page_blocks(page)
        try:
            api.update_message(channel, ts, text, blocks)
            edited += 1
        except SlackError as error:
            log.warning("alert page not edited", alert_id=page.alert_id, code=error.code)
    return edited


class AlertSender(ReminderSender):
    """The outbox's Slack sender for every kind; anomaly pages and their updates are handled here."""

    def __init__(
        self,
        api: SlackAPI,
        database: Database,
        *,
        render: Renderer | None = None,
        open_dms: bool = False,
        charts: bool = True,
    ) -> None:
        super().__init__(api, database, render=render, open_dms=open_dms)
        self.charts = charts

    def send(self, notification: Notification) -> None:
        facts = notification.facts or {}
        try:
            page = page_from_facts(facts) if notification.kind in (PAGE_KIND, UPDATE_KIND) else None
        except ValueError:
            page = None  # facts naming no alert: delivered like any other notification
        if page is not None and notification.kind == PAGE_KIND:
            self._page(notification, page)
        elif page is not None:
            self._update(notification, page)
        else:
            super().send(notification)

    def _page(self, notification: Notification, page: AlertPage) -> None:
        page = current_page(self.database, page)
        chart = chart_data(self.database, page.alert_id) if self.charts else None
        text, blocks = alert_page_blocks(page, sparkline(chart.observed) if chart else None)
        posted = self.api.post_message(
            self.destination(notification), text, blocks, metadata=notification_metadata(notification)
        )
        try:
            record_posted(self.database, notification.id, posted)
        except Exception:  # posted already: raising would page again; it just cannot be edited later
            log.exception("alert page posted but its location not recorded", alert_id=page.alert_id)
        if chart is not None:
            self._upload_chart(page, chart, posted)

    def _upload_chart(self, page: AlertPage, chart: ChartData, posted: PostedMessage) -> None:
        try:
            self.api.upload_file(
                posted.channel,
                render_png(chart),
                CHART_NAME,
                title=f"{page.key_name}: last {CHART_HOURS} h against the baseline",
                alt_text=f"Traffic of {page.key_name} over the last {CHART_HOURS} hours and its baseline",
                thread_ts=posted.ts,
            )
        except SlackError as error:
            log.warning("alert chart not uploaded", alert_id=page.alert_id, code=error.code)
        except Exception:
            log.exception("alert chart not drawn", alert_id=page.alert_id)

    def _update(self, notification: Notification, page: AlertPage) -> None:
        """Edit the pages this person (or channel) got; with none to edit, post the update instead."""
        fresh = current_page(self.database, page)
        if refresh_pages(self.database, self.api, fresh, notification.recipient.strip()):
            return
        text, blocks = alert_closed_blocks(fresh)
        self.api.post_message(
            self.destination(notification), text, blocks, metadata=notification_metadata(notification)
        )
