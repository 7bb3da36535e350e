"""Reminders and escalations as JSON, for the notification row's `facts` and `keybot reminders --json`.

The clock decides what a message says when it enqueues it; Slack renders exactly that later (and edits
it in place), so the facts round-trip losslessly through `reminder_from_facts`/`escalation_from_facts`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from bot.reminders.types import DueKey, DueState, Escalation, Reminder


def due_key_json(key: DueKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "environment": key.environment,
        "team": key.team,
        "owners": list(key.owners),
        "rotation_days": key.rotation_days,
        "counted_from": key.counted_from.isoformat(),
        "never_rotated": key.never_rotated,
        "due_at": key.due_at.isoformat(),
        "days_overdue": key.days_overdue,
        "state": key.state.value,
        "snoozed_until": key.snoozed_until.isoformat() if key.snoozed_until else None,
        "snooze_count": key.snooze_count,
        "next_reminder": key.next_reminder.isoformat() if key.next_reminder else None,
    }


def due_key_from_json(data: dict[str, Any]) -> DueKey:
    return DueKey(
        key_id=int(data["key_id"]),
        name=str(data["name"]),
        environment=str(data["environment"]),
        team=data.get("team"),
        owners=tuple(data.get("owners") or ()),
        rotation_days=int(data["rotation_days"]),
        counted_from=datetime.fromisoformat(data["counted_from"]),
        never_rotated=bool(data["never_rotated"]),
        due_at=datetime.fromisoformat(data["due_at"]),
        days_overdue=int(data["days_overdue"]),
        state=DueState(data["state"]),
        snoozed_until=datetime.fromisoformat(data["snoozed_until"]) if data.get("snoozed_until") else None,
        snooze_count=int(data.get("snooze_count") or 0),
        next_reminder=date.fromisoformat(data["next_reminder"]) if data.get("next_reminder") else None,
    )


def reminder_json(reminder: Reminder) -> dict[str, Any]:
    return {
        "team": reminder.team,
        "channel": reminder.channel,
        "local_date": reminder.local_date.isoformat(),
        "timezone": reminder.timezone,
        "keys": [due_key_json(k) for k in reminder.keys],
        "late_note": reminder.late_note,
        "done_key_ids": sorted(reminder.done_key_ids),
    }


def reminder_from_facts(facts: dict[str, Any]) -> Reminder:
    """The Reminder a `rotation_reminder` notification row was enqueued with."""
    data = facts["reminder"]
    return Reminder(
        team=data.get("team"),
        channel=str(data["channel"]),
        local_date=date.fromisoformat(data["local_date"]),
        timezone=str(data["timezone"]),
        keys=tuple(due_key_from_json(k) for k in data["keys"]),
        late_note=data.get("late_note"),
        done_key_ids=frozenset(int(i) for i in data.get("done_key_ids") or ()),
    )


def escalation_json(escalation: Escalation) -> dict[str, Any]:
    return {
        "team": escalation.team,
        "manager": escalation.manager,
        "week": escalation.week,
        "overdue": [due_key_json(k) for k in escalation.overdue],
        "snoozed_often": [due_key_json(k) for k in escalation.snoozed_often],
    }


def escalation_from_facts(facts: dict[str, Any]) -> Escalation:
    """The Escalation a `rotation_escalation` notification row was enqueued with."""
    data = facts["escalation"]
    return Escalation(
        team=str(data["team"]),
        manager=str(data["manager"]),
        week=str(data["week"]),
        overdue=tuple(due_key_from_json(k) for k in data["overdue"]),
        snoozed_often=tuple(due_key_from_json(k) for k in data["snoozed_often"]),
    )
