"""Writes validated registry records in one transaction, in bulk, so 100,000 keys import in seconds.

Inserts go through Core rather than the ORM unit of work: the ORM's per-object bookkeeping costs several
times the database's own time at this size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.orm import Session

from bot.db.base import Base, utcnow
from bot.registry.fingerprint import Fingerprinter
from bot.registry.importer import ParsedRegistry
from bot.registry.models import Consumer, Key, KeyOwner, OwnerRole, Team
from bot.registry.schemas import KeyRecord
from bot.secrets import parse_redacted, redacted_form

BATCH = 5000


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


@dataclass(frozen=True)
class ImportSummary:
    teams_created: int
    keys_created: int
    keys_updated: int


def _secret_columns(record: KeyRecord, fingerprinter: Fingerprinter) -> dict[str, Any]:
    """Fingerprint and redacted form; the secret itself goes no further than this function."""
    columns: dict[str, Any] = {}
    redacted: str | None
    if record.secret is not None:
        secret = record.secret.get_secret_value()
        columns["fingerprint"] = fingerprinter.fingerprint(secret)
        redacted = redacted_form(secret)
    else:
        if record.fingerprint is not None:
            columns["fingerprint"] = record.fingerprint
        redacted = record.redacted
    parsed = parse_redacted(redacted) if redacted else None
    if parsed is not None:
        columns["secret_family"], suffix = parsed[0], parsed[1]
        columns["secret_last4"] = suffix[-4:]
    return columns


def _key_columns(record: KeyRecord, team_ids: dict[str, int], fingerprinter: Fingerprinter) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "name": record.name,
        "provider": record.provider,
        "provider_key_id": record.provider_key_id,
        "project": record.project,
        "environment": record.environment,
        "vault_path": record.vault_path,
        "status": record.status,
        "last_rotated_at": record.last_rotated,
        "rotation_days": record.rotation_days,
        "tags": record.tags,
        "description": record.description,
        "team_id": team_ids.get(record.team) if record.team else None,
        "secret_family": None,
        "secret_last4": None,
        "fingerprint": None,
    }
    columns.update(_secret_columns(record, fingerprinter))
    return columns


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]


class UnknownTeam(Exception):
    pass


def apply_import(session: Session, parsed: ParsedRegistry, fingerprinter: Fingerprinter) -> ImportSummary:
    """Upsert teams and keys by name; owners and consumers of an imported key are replaced by the file's."""
    fingerprinter.verify_against(session)
    existing_teams = {t.name: t for t in session.scalars(select(Team))}
    teams_created = 0
    for team in parsed.teams:
        row = existing_teams.get(team.name)
        if row is None:
            row = Team(name=team.name)
            session.add(row)
            existing_teams[team.name] = row
            teams_created += 1
        row.slack_channel = team.channel or row.slack_channel
        row.manager_slack_id = team.manager or row.manager_slack_id
    session.flush()
    team_ids = {name: team.id for name, team in existing_teams.items()}
    missing = sorted({r.team for r in parsed.keys if r.team and r.team not in team_ids})
    if missing:
        raise UnknownTeam(f"unknown team(s): {', '.join(missing)} (define them under `teams:`)")

    existing_ids = {name: id_ for name, id_ in session.execute(select(Key.name, Key.id))}
    now = utcnow()
    new_rows, changed_rows = [], []
    for record in parsed.keys:
        columns = _key_columns(record, team_ids, fingerprinter)
        if record.name in existing_ids:
            changed_rows.append({"id": existing_ids[record.name], **columns})
        else:
            new_rows.append({**columns, "created_at": now})
    connection = session.connection()
    for chunk in _chunks(changed_rows):
        session.execute(update(Key), chunk)
    changed_ids = [row["id"] for row in changed_rows]
    for i in range(0, len(changed_ids), BATCH):
        session.execute(delete(KeyOwner).where(KeyOwner.key_id.in_(changed_ids[i : i + BATCH])))
        session.execute(delete(Consumer).where(Consumer.key_id.in_(changed_ids[i : i + BATCH])))
    for chunk in _chunks(new_rows):
        connection.execute(insert(_table(Key)), chunk)
    ids = existing_ids | {name: id_ for name, id_ in session.execute(select(Key.name, Key.id))}
    _insert_people(session, parsed.keys, ids)
    return ImportSummary(teams_created, len(new_rows), len(changed_rows))


def _insert_people(session: Session, records: list[KeyRecord], ids: dict[str, int]) -> None:
    owners: list[dict[str, Any]] = []
    consumers: list[dict[str, Any]] = []
    for record in records:
        key_id = ids[record.name]
        owners.extend(
            {"key_id": key_id, "slack_user_id": u, "role": OwnerRole.OWNER}
            for u in dict.fromkeys(record.owners)
        )
        owners.extend(
            {"key_id": key_id, "slack_user_id": u, "role": OwnerRole.BACKUP}
            for u in dict.fromkeys(record.backups)
        )
        seen: set[str] = set()
        for consumer in record.consumers:
            if consumer.name not in seen:
                seen.add(consumer.name)
                consumers.append({"key_id": key_id, **consumer.model_dump()})
    connection = session.connection()
    for chunk in _chunks(owners):
        connection.execute(insert(_table(KeyOwner)), chunk)
    for chunk in _chunks(consumers):
        connection.execute(insert(_table(Consumer)), chunk)


def export_records(session: Session) -> dict[str, Any]:
    """The registry as a document `apply_import` accepts back: fingerprints, never secrets."""
    teams = [
        {
            k: v
            for k, v in {"name": t.name, "channel": t.slack_channel, "manager": t.manager_slack_id}.items()
            if v
        }
        for t in session.scalars(select(Team).order_by(Team.name))
    ]
    keys = [key_record(k) for k in session.scalars(select(Key).where(Key.drill.is_(False)).order_by(Key.name))]
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
