"""Enqueue notifications idempotently and deliver them with retries through any `Sender`."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.db.session import Database
from bot.db.upsert import insert_unless_present
from bot.log import get_logger
from bot.notifications.models import Notification, NotificationStatus
from bot.secrets import redact, redact_obj
from bot.workspace import Workspace, bound, current_columns

log = get_logger(__name__)

MAX_ATTEMPTS = 8
NOTIFICATIONS = cast(Table, Notification.__table__)


@dataclass(frozen=True)
class Message:
    kind: str  # owner_dm | backup_dm | channel | manager_summary | consumer
    recipient: str  # Slack user or channel id
    subject: str
    body: str
    facts: dict[str, Any] = field(default_factory=dict)


class Undeliverable(Exception):
    """A sender's verdict that this row can never be delivered (its Slack workspace uninstalled keybot):
    the row fails at once with this reason instead of being retried."""


class Sender(Protocol):
    """Delivers one notification; raises to have it retried later (`Undeliverable`: never)."""

    def send(self, notification: Notification) -> None: ...


OUTBOX_COLUMNS = (
    "dedupe_key", "incident_id", "run_id", "kind", "recipient", "subject", "body", "facts", "status",
    "attempts", "created_at", "next_attempt_at", "slack_team_id", "slack_enterprise_id",
)  # fmt: skip
"""The columns an outbox row sets (the rest keep their defaults); PostgreSQL's statements use the same.
The Slack workspace is the current one (bot/workspace.py): a request's, or the run's being continued."""


def outbox_rows(
    messages: Iterable[Message], *, dedupe_prefix: str, incident_id: int | None, run_id: str | None
) -> list[dict[str, Any]]:
    """The notification rows for `messages`, redacted, one per dedupe key (the first message wins)."""
    rows: dict[str, dict[str, Any]] = {}
    now, workspace = utcnow(), current_columns()
    for message in messages:
        dedupe_key = f"{dedupe_prefix}:{message.kind}:{message.recipient}"
        if message.facts.get("drill_for"):  # a drill's starter gets each person's message, not one
            dedupe_key += f":{message.facts['drill_for']}:{message.facts.get('consumer') or ''}"
        dedupe_key = dedupe_key[:200]
        rows.setdefault(
            dedupe_key,
            {
                "dedupe_key": dedupe_key,
                "incident_id": incident_id,
                "run_id": run_id,
                "kind": message.kind,
                "recipient": message.recipient,
                "subject": redact(message.subject)[:300],
                "body": redact(message.body),
                "facts": redact_obj(message.facts),
                "status": NotificationStatus.PENDING,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
                **workspace,
            },
        )
    return list(rows.values())


def enqueue(
    db: Session | Connection,
    messages: Iterable[Message],
    *,
    dedupe_prefix: str,
    incident_id: int | None,
    run_id: str | None,
) -> int:
    """Add messages not already enqueued under the same dedupe key; returns how many were new.

    One INSERT ... ON CONFLICT DO NOTHING for the whole batch (SQLite and PostgreSQL alike), so a re-run
    or a concurrent writer never queues a message twice and never aborts the surrounding transaction.
    """
    rows = outbox_rows(messages, dedupe_prefix=dedupe_prefix, incident_id=incident_id, run_id=run_id)
    return insert_outbox_rows(db, rows)


def insert_outbox_rows(db: Session | Connection, rows: list[dict[str, Any]]) -> int:
    """Insert `outbox_rows` whose dedupe key is new; returns how many were."""
    if not rows:
        return 0
    workspace = current_columns()
    rows = [{**workspace, **row} for row in rows]  # rows built elsewhere belong to the current workspace
    dialect = db.get_bind().dialect.name if isinstance(db, Session) else db.dialect.name
    statement = insert_unless_present(dialect, NOTIFICATIONS, ["dedupe_key"])
    inserted = db.execute(statement.returning(NOTIFICATIONS.c.id), rows)
    return len(inserted.all())


def deliver_pending(database: Database, sender: Sender, *, limit: int = 100) -> tuple[int, int]:
    """One delivery pass: returns (sent, failed this pass). Failures back off exponentially.

    A row is marked `sending` and committed before the outside call, so a process killed mid-send leaves
    a trace instead of a silent duplicate: `recover_interrupted` decides what to do with it.
    """
    sent = failed = 0
    with database.session() as session:
        due = session.scalars(
            select(Notification.id)
            .where(
                Notification.status == NotificationStatus.PENDING, Notification.next_attempt_at <= utcnow()
            )
            .order_by(Notification.id)
            .limit(limit)
        ).all()
    for notification_id in due:
        with database.session() as session:
            row = session.get(Notification, notification_id, with_for_update=True)
            if row is None or row.status is not NotificationStatus.PENDING:
                continue
            row.status = NotificationStatus.SENDING
            row.attempts += 1
            row.next_attempt_at = utcnow()
        error_text: str | None = None
        final = False
        try:
            with bound(Workspace(row.slack_enterprise_id, row.slack_team_id)):  # sent in the row's workspace
                sender.send(row)
        except Undeliverable as error:
            error_text, final = redact(str(error))[:500], True
            log.warning("notification undeliverable", notification_id=notification_id, why=error_text)
        except Exception as error:
            error_text = redact(f"{type(error).__name__}: {error}")[:500]
        with database.session() as session:
            row = session.get(Notification, notification_id)
            assert row is not None
            if error_text is None:
                row.status, row.sent_at, row.last_error = NotificationStatus.SENT, utcnow(), None
                sent += 1
                continue
            failed += 1
            row.last_error = error_text
            row.status = (
                NotificationStatus.FAILED
                if final or row.attempts >= MAX_ATTEMPTS
                else NotificationStatus.PENDING
            )
            delay = min(600.0, 2.0**row.attempts) * (0.5 + random.random())
            row.next_attempt_at = utcnow() + timedelta(seconds=delay)
    return sent, failed


def recover_interrupted(database: Database, sender: Sender, *, older_than: timedelta) -> int:
    """Rows left `sending` by a dead process: resend only when the sender can prove it was not delivered."""
    recovered = 0
    with database.session() as session:
        stuck = session.scalars(
            select(Notification).where(
                Notification.status == NotificationStatus.SENDING,
                Notification.next_attempt_at < utcnow() - older_than,
            )
        ).all()
        for row in stuck:
            check = getattr(sender, "was_delivered", None)
            delivered = check(row) if callable(check) else None
            if delivered is True:
                row.status, row.sent_at = NotificationStatus.SENT, utcnow()
            elif delivered is False:
                row.status = NotificationStatus.PENDING
            else:
                row.status = NotificationStatus.FAILED
                row.last_error = "delivery outcome unknown (process stopped while sending); not resent"
            recovered += 1
    return recovered


def for_run(session: Session, run_id: str) -> list[Notification]:
    return list(
        session.scalars(select(Notification).where(Notification.run_id == run_id).order_by(Notification.id))
    )
