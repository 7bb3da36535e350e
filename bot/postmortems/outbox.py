"""The postmortems domain's outbox rows: the draft announced when an incident ends, and the weekly digest.

Both go through the notifications outbox, so a Slack outage delays them and loses nothing, and both are
claimed by the outbox's unique dedupe key, so a retried resolve or a second clock never sends one twice:

- ``postmortem_draft`` (dedupe ``postmortem:<incident id>:postmortem_draft:<recipient>``) is written in the
  transaction that resolves the incident (a person's `close`, or a run's success), whatever the surface.
  Its facts name the incident only; the sender renders the draft when it delivers, from the timeline as
  it is then. Real incidents go to their thread (recipient `THREAD`: the Slack surface knows where the
  incident header is); a drill's draft goes only to the drill's starter. False alarms get a draft too:
  the template says it was a false alarm and keeps it short, and the timeline of a false alarm is still
  worth a look.
- ``weekly_digest`` (dedupe ``digest:<yyyy-Www>``, the reported week) carries the rendered Markdown as its
  body and the digest's data as facts (the chart is redrawn from them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.db.session import Database
from bot.incidents.models import reference_for
from bot.notifications.models import Notification, NotificationStatus
from bot.notifications.service import Message, enqueue, insert_outbox_rows
from bot.secrets import redact, redact_obj

if TYPE_CHECKING:
    from bot.postmortems.digest import WeeklyDigest

DRAFT_KIND = "postmortem_draft"
DIGEST_KIND = "weekly_digest"
THREAD = "incident-thread"
"""Recipient of a real incident's draft: its Slack thread, which only the Slack surface can locate."""


def draft_prefix(incident_id: int) -> str:
    return f"postmortem:{int(incident_id)}"


def draft_messages(incident_id: int, *, drill: bool, starter: str | None) -> list[Message]:
    """The draft announcement for an incident that just ended; a drill's goes to its starter only
    (none when the starter is not a Slack user: a CLI drill reads `keybot postmortem DRILL-n`)."""
    reference = reference_for(incident_id)
    facts: dict[str, Any] = {"incident_id": int(incident_id), "reference": reference, "drill": drill}
    subject = f"Postmortem draft {reference}"
    if drill:
        if not starter or starter.startswith("cli:"):
            return []
        body = f"(drill: a postmortem draft of {reference}, for you only)"
        return [Message(DRAFT_KIND, starter, f"[DRILL] {subject}", body, facts)]
    return [Message(DRAFT_KIND, THREAD, subject, f"The postmortem draft of {reference}.", facts)]


def enqueue_draft(session: Session, incident_id: int, *, drill: bool, starter: str | None) -> int:
    """Announce the draft in the caller's (resolving) transaction; returns how many rows were new."""
    messages = draft_messages(incident_id, drill=drill, starter=starter)
    return enqueue(
        session, messages, dedupe_prefix=draft_prefix(incident_id), incident_id=incident_id, run_id=None
    )


def digest_dedupe(week: str) -> str:
    return f"digest:{week}"


def digest_claimed(database: Database, week: str) -> bool:
    with database.session() as session:
        found = session.scalar(
            select(Notification.id).where(Notification.dedupe_key == digest_dedupe(week)).limit(1)
        )
    return found is not None


def digest_row(digest: WeeklyDigest, channel: str, markdown: str) -> dict[str, Any]:
    from bot.postmortems.digest import digest_as_data

    now = utcnow()
    subject = f"Weekly keybot digest {digest.week}"
    return {
        "dedupe_key": digest_dedupe(digest.week), "incident_id": None, "run_id": None,
        "kind": DIGEST_KIND, "recipient": channel.strip()[:120], "subject": redact(subject)[:300],
        "body": redact(markdown), "facts": redact_obj({"digest": digest_as_data(digest)}),
        "status": NotificationStatus.PENDING, "attempts": 0, "created_at": now, "next_attempt_at": now,
    }  # fmt: skip


def claim_digest(database: Database, digest: WeeklyDigest, channel: str, markdown: str) -> bool:
    """Enqueue the week's digest unless it already is (two clocks: one insert wins); True when ours."""
    with database.session() as session:
        return insert_outbox_rows(session, [digest_row(digest, channel, markdown)]) == 1
