"""Registry rows, settings and outbox reads for the alerts tests (written directly, no provider needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from bot.access.policy import Policy, Roster
from bot.alerts.models import Alert, DetectorState
from bot.alerts.opening import Finding
from bot.alerts.settings import AlertSettings
from bot.db.session import Database
from bot.notifications.models import Notification
from bot.registry.models import Key, KeyOwner, KeyStatus, OwnerRole, Team
from bot.reminders.models import KeyEvent

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
OWNER, BACKUP, STRANGER, ADMIN, MANAGER = "U0OWNER01", "U0BACKUP1", "U0STRANGE", "U0ADMIN01", "U0MANAGER1"
CHANNEL, ONCALL = "C0PAYMENTS", "S0ONCALL1"
POLICY = Policy(Roster(admins=frozenset({ADMIN})))


def settings(**values: Any) -> AlertSettings:
    base: dict[str, Any] = {"escalation": "backup:15,channel:30,manager:60", "cooldown_minutes": 60}
    return AlertSettings(**{**base, **values})


def add_team(
    database: Database,
    name: str = "payments",
    *,
    channel: str | None = CHANNEL,
    manager: str | None = MANAGER,
    escalation: str | None = None,
    oncall: str | None = ONCALL,
) -> None:
    with database.session() as session:
        session.add(
            Team(
                name=name,
                slack_channel=channel,
                manager_slack_id=manager,
                escalation=escalation,
                oncall_group=oncall,
            )
        )


def add_key(
    database: Database,
    name: str = "pay-prod",
    *,
    team: str | None = "payments",
    environment: str = "production",
    owners: tuple[str, ...] = (OWNER,),
    backups: tuple[str, ...] = (BACKUP,),
    status: KeyStatus = KeyStatus.ACTIVE,
    drill: bool = False,
) -> int:
    with database.session() as session:
        team_id = session.scalars(select(Team.id).where(Team.name == team)).one() if team else None
        key = Key(
            name=name, provider="openai", environment=environment, team_id=team_id, status=status, drill=drill
        )
        session.add(key)
        session.flush()
        for owner in owners:
            session.add(KeyOwner(key_id=key.id, slack_user_id=owner, role=OwnerRole.OWNER))
        for backup in backups:
            session.add(KeyOwner(key_id=key.id, slack_user_id=backup, role=OwnerRole.BACKUP))
        return key.id


def finding(key_id: int, *, score: float = 0.999, minute: datetime = NOW, requests: float = 900.0) -> Finding:
    return Finding(key_id, minute, score, ("requests",), {"requests": requests}, {"requests": 30.0})


def pages(database: Database, kind: str = "alert_page") -> list[tuple[str, str, dict[str, Any]]]:
    """(dedupe key, recipient, facts) of the outbox rows of `kind`, in order."""
    with database.session() as session:
        rows = session.scalars(
            select(Notification).where(Notification.kind == kind).order_by(Notification.id)
        )
        return [(r.dedupe_key, r.recipient, dict(r.facts)) for r in rows]


def events(database: Database, key_id: int) -> list[str]:
    with database.session() as session:
        return list(
            session.scalars(select(KeyEvent.kind).where(KeyEvent.key_id == key_id).order_by(KeyEvent.id))
        )


def alert_row(database: Database, alert_id: int) -> dict[str, Any]:
    """Every column of one alert, to compare before and after a refused decision."""
    with database.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return {c.name: getattr(alert, c.name) for c in Alert.__table__.columns}


def counts(database: Database) -> tuple[int, ...]:
    with database.session() as session:
        return tuple(
            int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Alert, Notification, KeyEvent, DetectorState)
        )
