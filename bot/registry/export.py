"""The registry as a document `bot.registry.store.apply_import` accepts back: fingerprints, never secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.registry.models import Key, OwnerRole, Team
from bot.registry.store import TEAM_SCHEDULE


def export_records(session: Session) -> dict[str, Any]:
    """The registry as a document `apply_import` accepts back: fingerprints, never secrets."""
    teams = [
        {
            k: v
            for k, v in {"name": t.name, "channel": t.slack_channel, "manager": t.manager_slack_id}.items()
            if v
        }
        | {f: getattr(t, f) for f in TEAM_SCHEDULE if getattr(t, f) is not None}
        for t in session.scalars(select(Team).order_by(Team.name))
    ]
    keys = [
        key_record(k) for k in session.scalars(select(Key).where(Key.drill.is_(False)).order_by(Key.name))
    ]
    return {"teams": teams, "keys": keys}


def key_record(key: Key) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": key.name,
        "provider": key.provider,
        "provider_key_id": key.provider_key_id,
        "project": key.project,
        "environment": key.environment,
        "vault_path": key.vault_path,
        "redacted": key.redacted,
        "fingerprint": key.fingerprint,
        "team": key.team.name if key.team else None,
        "owners": key.owner_ids(OwnerRole.OWNER),
        "backups": key.owner_ids(OwnerRole.BACKUP),
        "consumers": [
            {
                k: v
                for k, v in {"name": c.name, "contact": c.contact, "redeploy_hook": c.redeploy_hook}.items()
                if v
            }
            for c in key.consumers
        ],
        "rotation_days": key.rotation_days,
        "last_rotated": _iso(key.last_rotated_at),
        "status": key.status.value,
        "tags": list(key.tags or []),
        "description": key.description,
    }
    return {k: v for k, v in record.items() if v not in (None, [], "")}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
