"""Registry rows for reminder tests, written directly (no provider or Vault is involved in reminders)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.db.session import Database
from bot.notifications.models import Notification
from bot.registry.models import Key, KeyOwner, KeyStatus, OwnerRole, Team
from bot.reminders.models import KeyEvent, KeySnooze, ReminderDay
from bot.reminders.settings import ReminderSettings

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday
OWNER, BACKUP, STRANGER, ADMIN = "U0OWNER01", "U0BACKUP1", "U0STRANGE", "U0ADMIN01"


def settings(**values: object) -> ReminderSettings:
    base: dict[str, object] = {"fallback_channel": "C0FALLBACK", "timezone": "UTC"}
    return ReminderSettings(**{**base, **values})


def add_team(
    database: Database,
    name: str,
    *,
    channel: str | None = None,
    manager: str | None = "U0MANAGER1",
    timezone: str | None = None,
    reminder_time: str | None = None,
    reminder_days: str | None = None,
    rotation_days: int | None = None,
) -> None:
    with database.session() as session:
        session.add(
            Team(
                name=name,
                slack_channel=channel or f"C0{name.upper().replace('-', '')[:8]}",
                manager_slack_id=manager,
                timezone=timezone,
                reminder_time=reminder_time,
                reminder_days=reminder_days,
                rotation_days=rotation_days,
            )
        )


def add_key(
    database: Database,
    name: str,
    *,
    team: str | None = None,
    environment: str = "production",
    created: datetime = NOW - timedelta(days=400),
    rotated: datetime | None = None,
    rotation_days: int | None = None,
    owner: str = OWNER,
    status: KeyStatus = KeyStatus.ACTIVE,
    drill: bool = False,
) -> int:
    with database.session() as session:
        team_id = session.scalars(select(Team.id).where(Team.name == team)).one() if team else None
        key = Key(
            name=name,
            provider="openai",
            environment=environment,
            created_at=created,
            last_rotated_at=rotated,
            rotation_days=rotation_days,
            team_id=team_id,
            status=status,
            drill=drill,
        )
        session.add(key)
        session.flush()
        session.add(KeyOwner(key_id=key.id, slack_user_id=owner, role=OwnerRole.OWNER))
        session.add(KeyOwner(key_id=key.id, slack_user_id=BACKUP, role=OwnerRole.BACKUP))
        return key.id


def counts(database: Database) -> dict[str, int]:
    """Rows a refused action must not change."""
    with database.session() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (KeySnooze, KeyEvent, ReminderDay, Notification)
        }


def key_row(database: Database, key_id: int) -> tuple[datetime | None, KeyStatus]:
    with database.session() as session:
        key = session.get(Key, key_id)
        assert key is not None
        return key.last_rotated_at, key.status


def reminder_rows(database: Database) -> list[tuple[str, str]]:
    """(dedupe key, recipient) of every reminder notification, in order."""
    with database.session() as session:
        return [
            (n.dedupe_key, n.recipient)
            for n in session.scalars(
                select(Notification).where(Notification.kind == "rotation_reminder").order_by(Notification.id)
            )
        ]
