"""Drills: `/revoke-key --drill <key>` rehearses the runbook on a sandbox copy of a real key."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.registry.models import Consumer, Key, KeyOwner
from bot.sandbox.sandbox import Sandbox

DRILL_PREFIX = "drill"


def drill_copy(sandbox: Sandbox, session: Session, key: Key) -> Key:
    """A clearly marked sandbox copy of `key` with the same owners and team; the real key is untouched."""
    stamp = utcnow().strftime("%Y%m%d%H%M%S")
    copy = Key(
        name=f"{DRILL_PREFIX}-{stamp}-{key.name}"[:200],
        provider="openai",
        environment="sandbox",
        vault_path=f"secret/keybot-drill/{stamp}/{key.name}",
        team_id=key.team_id,
        rotation_days=key.rotation_days,
        tags=["drill"],
        description=f"Drill copy of {key.name}",
        owners=[KeyOwner(slack_user_id=o.slack_user_id, role=o.role) for o in key.owners],
        consumers=[Consumer(name=c.name, contact=c.contact) for c in key.consumers],
    )
    session.add(copy)
    sandbox.materialise(copy)
    session.flush()
    return copy
