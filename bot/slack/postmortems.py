"""Postmortem drafts and the weekly digest through Slack: the sender side of the postmortems domain's outbox.

``postmortem_draft`` rows (written when an incident ends, from any surface) are rendered here, at delivery,
by the domain's ``draft_postmortem`` (so the draft shows the timeline as it is when Slack gets it), and
uploaded with ``files_upload_v2`` as ``INC-00042-postmortem.md`` into the incident's thread (the header
message of its run, `run_messages`), followed by a message with the **Regenerate** button. A drill's draft
goes to its starter's DM only. The file is the delivery: once it is uploaded the row counts as sent, and a
button message that cannot be posted is logged, not retried (a retry would upload the file twice).

``weekly_digest`` rows are posted as mrkdwn sections to the managers' channel, with the chart PNG
uploaded beside them; a chart that cannot be drawn or uploaded never blocks the digest.
"""

from __future__ import annotations

from sqlalchemy import select

from bot.db.session import Database
from bot.incidents.models import Incident, reference_for
from bot.log import get_logger
from bot.notifications.models import Notification
from bot.postmortems.chart import digest_chart
from bot.postmortems.digest import digest_from_data
from bot.postmortems.outbox import DIGEST_KIND, DRAFT_KIND
from bot.registry.models import Key
from bot.runbooks.models import Run
from bot.secrets import redact
from bot.slack import limits
from bot.slack.alerts import AlertSender
from bot.slack.api import PermanentSlackError, SlackAPI, SlackError
from bot.slack.blocks.common import section
from bot.slack.blocks.postmortems import digest_blocks, draft_blocks, draft_filename
from bot.slack.delivery import Renderer, notification_metadata
from bot.slack.models import RunMessage

log = get_logger(__name__)

SUMMARY_KIND = "manager_summary"
BODY_BLOCK = "notification_body"  # bot/slack/blocks/messages.py
SUMMARY_LIMIT = 2900
DRAFT_BYTES_LIMIT = 1_000_000  # a draft is a few kilobytes; a runaway timeline is cut, never refused by Slack


def incident_thread(database: Database, incident_id: int) -> tuple[str, str | None] | None:
    """Where the incident is discussed: the header of its latest run's message (channel, thread ts), else
    its key's team channel (no thread); None when keybot never posted about it and the key has no team."""
    with database.session() as session:
        where = session.execute(
            select(RunMessage.channel, RunMessage.header_ts)
            .join(Run, Run.id == RunMessage.run_id)
            .where(Run.incident_id == incident_id)
            .order_by(RunMessage.header_ts.is_(None), Run.created_at.desc())
            .limit(1)
        ).first()
        if where is not None:
            return str(where[0]), where[1]
        incident = session.get(Incident, incident_id)
        key = session.get(Key, incident.key_id) if incident and incident.key_id is not None else None
        if key is not None and key.team is not None and key.team.slack_channel:
            return key.team.slack_channel, None
    return None


def draft_destination(
    api: SlackAPI,
    database: Database,
    incident_id: int,
    *,
    drill: bool,
    starter: str | None,
    fallback_channel: str | None = None,
) -> tuple[str, str | None]:
    """(channel, thread ts) for an incident's draft: a drill's starter's DM, else the incident's thread."""
    if drill:
        if not starter or starter.startswith("cli:"):
            raise PermanentSlackError("no_drill_starter", method="files.upload_v2", detail="not a Slack user")
        return api.open_dm(starter), None
    found = incident_thread(database, incident_id)
    if found is not None:
        return found
    if fallback_channel:
        return fallback_channel, None
    raise PermanentSlackError(
        "no_incident_thread", method="files.upload_v2", detail=f"{reference_for(incident_id)} has no channel"
    )


def drill_starter(database: Database, incident_id: int) -> tuple[bool, str | None]:
    with database.session() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise PermanentSlackError("incident_not_found", method="files.upload_v2")
        return bool(incident.drill), incident.opened_by


def share_draft(
    api: SlackAPI,
    database: Database,
    incident_id: int,
    where: tuple[str, str | None],
    *,
    regenerated_by: str | None = None,
) -> str:
    """Draw the draft now, upload it to ``where`` and post the Regenerate message under it; the file id."""
    from bot.postmortems.service import draft_postmortem

    drill, _ = drill_starter(database, incident_id)
    draft = draft_postmortem(database, incident_id, llm=None)
    return upload_draft(api, where, draft, incident_id, drill=drill, regenerated_by=regenerated_by)


def upload_draft(
    api: SlackAPI,
    where: tuple[str, str | None],
    draft: object,
    incident_id: int,
    *,
    drill: bool,
    regenerated_by: str | None = None,
) -> str:
    """Upload an already drawn draft (P's `Draft`) and post the Regenerate message; the file id."""
    reference = str(getattr(draft, "reference", reference_for(incident_id)))
    markdown = redact(str(getattr(draft, "markdown", "")))
    content = markdown.encode("utf-8")[:DRAFT_BYTES_LIMIT]
    filename = draft_filename(reference)
    channel, thread = where
    label = "[DRILL] " if drill else ""
    file_id = api.upload_file(
        channel,
        content,
        filename,
        title=f"{label}Postmortem DRAFT {reference}",
        alt_text=f"The postmortem draft of {reference}, in Markdown",
        thread_ts=thread,
    )
    text, blocks = draft_blocks(
        reference,
        incident_id,
        drill=drill,
        filename=filename,
        used_llm=bool(getattr(draft, "used_llm", False)),
        warnings=tuple(getattr(draft, "warnings", ()) or ()),
        regenerated_by=regenerated_by,
    )
    try:
        api.post_message(channel, text, blocks, thread_ts=thread)
    except SlackError as error:  # the file is there: a retry would upload it twice
        log.warning("postmortem draft uploaded without its Regenerate message", code=error.code)
    return file_id


def post_digest(api: SlackAPI, notification: Notification, *, charts: bool = True) -> None:
    """The digest as sections in its channel, the chart PNG beside it (a chart failure is only logged)."""
    text, blocks = digest_blocks(notification.subject, notification.body)
    posted = api.post_message(
        notification.recipient.strip(), text, blocks, metadata=notification_metadata(notification)
    )
    if not charts:
        return
    try:
        data = digest_from_data(notification.facts.get("digest") or {})
        api.upload_file(
            posted.channel,
            digest_chart(data),
            f"keybot-digest-{data.week}.png",
            title=f"Week {data.week}: incidents, alerts and time to contain",
            alt_text=f"Incidents and alerts per day in week {data.week}, and the median time to contain",
        )
    except SlackError as error:
        log.warning("digest chart not uploaded", code=error.code)
    except Exception:
        log.exception("digest chart not drawn")


def summary_body(database: Database, notification: Notification) -> str | None:
    """The manager summary's body rendered now from `manager_summary.md.j2` (Slack mrkdwn, its data escaped
    by the template: the incident's timeline, approver and exceptions); None when that fails, and the row's
    own plain body is sent. A drill's copy (only ever to its starter) keeps its label."""
    try:
        from bot.postmortems.service import manager_summary

        assert notification.incident_id is not None
        body = manager_summary(database, notification.incident_id).text.strip()
    except Exception:
        log.exception("manager summary template failed; the plain summary is sent")
        return None
    first = notification.body.split("\n", 1)[0]
    if (notification.facts or {}).get("drill_for") and first.startswith("(drill:"):
        body = f"{limits.mrkdwn(first, 300)}\n{body}"
    return body


class PostmortemSender(AlertSender):
    """The outbox's one Slack sender: postmortem drafts and digests here, alerts, reminders and run
    notifications by the senders it extends."""

    def __init__(
        self,
        api: SlackAPI,
        database: Database,
        *,
        render: Renderer | None = None,
        open_dms: bool = False,
        charts: bool = True,
        fallback_channel: str | None = None,
    ) -> None:
        super().__init__(api, database, render=render, open_dms=open_dms, charts=charts)
        self.fallback_channel = fallback_channel

    def send(self, notification: Notification) -> None:
        facts = notification.facts or {}
        if notification.kind == DRAFT_KIND and isinstance(facts.get("incident_id"), int):
            self._draft(notification, int(facts["incident_id"]))
        elif notification.kind == DIGEST_KIND and notification.recipient.strip():
            post_digest(self.api, notification, charts=self.charts)
        elif notification.kind == SUMMARY_KIND and notification.incident_id is not None:
            self._summary(notification)
        else:
            super().send(notification)

    def _summary(self, notification: Notification) -> None:
        """The usual manager summary message, with the template's body in place of the plain one."""
        body = summary_body(self.database, notification)
        if body is None:
            super().send(notification)
            return
        channel = self.destination(notification)
        text, blocks = self.render(notification)
        fresh = section(limits.clip(redact(body), SUMMARY_LIMIT), block_id=BODY_BLOCK)
        blocks = [fresh if block.get("block_id") == BODY_BLOCK else block for block in blocks]
        self.api.post_message(channel, text, blocks, metadata=notification_metadata(notification))

    def _draft(self, notification: Notification, incident_id: int) -> None:
        drill, starter = drill_starter(self.database, incident_id)
        where = draft_destination(
            self.api,
            self.database,
            incident_id,
            drill=drill,
            starter=notification.recipient.strip() if drill else starter,
            fallback_channel=self.fallback_channel,
        )
        share_draft(self.api, self.database, incident_id, where)
