"""Pure renderings of registry facts, shared by the CLI, Slack and the shell adapter."""

from __future__ import annotations

from datetime import datetime

from bot.registry.models import Key, OwnerRole
from bot.registry.service import rotation_due_at


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "never"


def rotation_state(key: Key, now: datetime) -> str:
    due = rotation_due_at(key)
    if due is None:
        return "no rotation policy"
    days = (due - now).days
    if days < 0:
        return f"overdue by {-days} day(s) (every {key.rotation_days} days)"
    return f"due in {days} day(s) (every {key.rotation_days} days)"


def key_card(key: Key, now: datetime) -> list[tuple[str, str]]:
    """The facts an on-call engineer needs before revoking, in display order."""
    owners = ", ".join(key.owner_ids(OwnerRole.OWNER)) or "nobody (unowned)"
    backups = ", ".join(key.owner_ids(OwnerRole.BACKUP)) or "none"
    consumers = ", ".join(c.name for c in key.consumers) or "none recorded"
    location = key.provider + (f" {key.provider_key_id}" if key.provider_key_id else "")
    if key.project:
        location += f" (project {key.project})"
    return [
        ("Key", f"{key.name} (#{key.id})"),
        ("Status", key.status.value),
        ("Redacted", key.redacted or "unknown"),
        ("Environment", key.environment),
        ("Team", key.team.name if key.team else "none"),
        ("Owners", owners),
        ("Backups", backups),
        ("Provider", location),
        ("Vault path", key.vault_path or "none"),
        ("Consumers", consumers),
        ("Last rotated", _when(key.last_rotated_at)),
        ("Rotation", rotation_state(key, now)),
    ]
