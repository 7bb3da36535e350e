"""Enqueueing is idempotent per dedupe key, on SQLite and PostgreSQL, and redacts what it stores."""

from __future__ import annotations

from sqlalchemy import select

from bot.db.session import Database
from bot.notifications.models import Notification
from bot.notifications.service import Message, enqueue

CANARY = "sk-proj-" + "Q" * 40 + "T3BlbkFJ" + "R" * 40


def _messages() -> list[Message]:
    return [
        Message("owner_dm", "U0ALICE", "key revoked", f"the leaked value was {CANARY}"),
        Message("channel", "C0TEAM", "summary", "body"),
        Message("owner_dm", "U0ALICE", "duplicate within the batch", "ignored"),
    ]


def test_enqueue_counts_only_new_rows_and_never_duplicates(database: Database) -> None:
    with database.session() as session:
        first = enqueue(session, _messages(), dedupe_prefix="run-x:notify", incident_id=None, run_id="run-x")
    with database.engine.begin() as conn:
        again = enqueue(conn, _messages(), dedupe_prefix="run-x:notify", incident_id=None, run_id="run-x")
        other = enqueue(conn, _messages()[:1], dedupe_prefix="run-y:notify", incident_id=None, run_id="run-y")
    assert (first, again, other) == (2, 0, 1)
    with database.session() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id)).all()
    assert [(r.run_id, r.kind, r.recipient, r.subject) for r in rows] == [
        ("run-x", "owner_dm", "U0ALICE", "key revoked"),
        ("run-x", "channel", "C0TEAM", "summary"),
        ("run-y", "owner_dm", "U0ALICE", "key revoked"),
    ]
    assert all(CANARY not in r.body for r in rows) and "sk-proj-" in rows[0].body


def test_enqueue_nothing_is_a_no_op(database: Database) -> None:
    with database.session() as session:
        assert enqueue(session, [], dedupe_prefix="run-z", incident_id=None, run_id=None) == 0
