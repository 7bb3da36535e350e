"""Drills: `/revoke-key --drill <key>` rehearses the runbook on a sandbox copy of a real key.

The copy keeps the real key's environment, owners and consumers, so the run takes the same path as the
real thing (production stops for a second person's approval). It is marked `keys.drill`: registry lists,
exports, lookups and rotation reminders never show it, and the messages owners, consumers and the
manager would get go to the drill's starter instead (bot.notifications.render.for_drill).

When the drill's run ends (succeeded, finished with exceptions or aborted), `end_drill` removes what it
made. The copy's row is kept as a retired tombstone, without owners, consumers or fingerprint: runs
point at their key (`runs.key_id` is NOT NULL, ON DELETE RESTRICT) and the run and DRILL incident history
must keep naming it, while every registry view already leaves drill rows out. Deleting the row would
mean deleting that history or loosening the constraint that keeps real runs attached to their keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import hvac.exceptions
import requests
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.db.session import Database
from bot.incidents.service import append_event
from bot.log import get_logger
from bot.registry.models import Consumer, Key, KeyOwner, KeyStatus
from bot.runbooks.models import Run
from bot.sandbox.sandbox import Sandbox

log = get_logger(__name__)

DRILL_PREFIX = "drill"
DRILL_ACTOR = "keybot"


def drill_copy(sandbox: Sandbox, session: Session, key: Key) -> Key:
    """A marked sandbox copy of `key` (same environment, owners and team); the real key is untouched."""
    stamp = utcnow().strftime("%Y%m%d%H%M%S%f")
    copy = Key(
        name=f"{DRILL_PREFIX}-{stamp}-{key.name}"[:200],
        provider="openai",
        environment=key.environment,
        vault_path=f"secret/keybot-drill/{stamp}/{key.name}",
        team_id=key.team_id,
        rotation_days=key.rotation_days,
        tags=["drill"],
        description=f"Drill copy of {key.name}",
        drill=True,
        owners=[KeyOwner(slack_user_id=o.slack_user_id, role=o.role) for o in key.owners],
        consumers=[Consumer(name=c.name, contact=c.contact) for c in key.consumers],
    )
    session.add(copy)
    sandbox.materialise(copy)
    session.flush()
    return copy


@dataclass
class DrillDebris:
    """What a finished drill left outside the database: sandbox provider keys and a Vault path."""

    provider_key_ids: set[str] = field(default_factory=set)
    vault_path: str | None = None


def end_drill(database: Database, sandbox: Sandbox | None, run_id: str) -> DrillDebris | None:
    """Clean up after a finished drill run; None when `run_id` is no finished drill or was cleaned up.

    `sandbox` is the process's sandbox when it was started (the copy's provider key and Vault secret
    live there); without one only the registry side is cleaned. Safe to call more than once.
    """
    with database.session() as session:
        debris = _retire_copy(session, run_id)
    if debris is not None and sandbox is not None:
        _clear_sandbox(sandbox, debris)
    return debris


def _retire_copy(session: Session, run_id: str) -> DrillDebris | None:
    run = session.get(Run, run_id)
    if run is None or not run.drill or not run.status.finished:
        return None
    key = session.get(Key, run.key_id)
    if key is None or not key.drill or key.fingerprint is None:  # no copy, or already retired
        return None
    context = run.context or {}
    debris = DrillDebris(vault_path=key.vault_path)
    for key_id in (key.provider_key_id, context.get("old_key_id"), context.get("new_key_id")):
        if key_id:
            debris.provider_key_ids.add(str(key_id))
    key.status, key.fingerprint = KeyStatus.REVOKED, None
    key.owners.clear()
    key.consumers.clear()
    key.description = f"{key.description or 'Drill copy'} (retired when the drill ended)"
    if run.incident_id is not None:  # the DRILL incident and its timeline stay: they are the drill's record
        append_event(
            session,
            run.incident_id,
            "drill.cleaned_up",
            DRILL_ACTOR,
            {
                "run_status": run.status.value,
                "key_copy": key.name,
                "sandbox_keys": sorted(debris.provider_key_ids),
                "vault_path": debris.vault_path,
            },
            run_id=run.id,
        )
    return debris


def _clear_sandbox(sandbox: Sandbox, debris: DrillDebris) -> None:
    """Delete the copy's provider keys and Vault secret; a failure is logged, never raised (the
    sandbox is local and goes away with the process)."""
    for key_id in sorted(debris.provider_key_ids):
        found = sandbox.openai.keys.get(key_id)
        if found is not None:
            sandbox.openai.delete_key(found)
    if not debris.vault_path:
        return
    mount, _, rest = debris.vault_path.partition("/")
    try:
        sandbox.bao.client().secrets.kv.v2.delete_metadata_and_all_versions(path=rest, mount_point=mount)
    except (hvac.exceptions.VaultError, requests.RequestException) as error:
        log.warning("drill vault cleanup failed", path=debris.vault_path, error=type(error).__name__)
