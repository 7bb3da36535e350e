"""Writes validated registry records in one transaction, in bulk, so 100,000 keys import in seconds.

An import owns who a key belongs to (owners, backups, team, consumers, rotation policy, description,
tags) and where it lives. keybot owns what happened to it (status, the provider key id and fingerprint
after a rotation, when it was last rotated): a file that would change those is refused with the per-key,
per-field difference unless forced, so re-importing an old file never rolls live state back. The
differences are found in `bot.registry.import_plan`; the way back out is `bot.registry.export`.

Inserts go through Core rather than the ORM unit of work: the ORM's per-object bookkeeping costs several
times the database's own time at this size.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, cast

import structlog
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.orm import Session

from bot.db.base import Base, utcnow
from bot.incidents.models import Incident
from bot.incidents.service import append_event
from bot.registry.fingerprint import CHECK_SETTING, Fingerprinter
from bot.registry.import_plan import (
    BATCH,
    OPERATIONAL_COLUMNS,
    ImportPlan,
    StateChange,
    plan_import,
    stated_fields,
)
from bot.registry.importer import ParsedRegistry, RecordError, RegistryFileError
from bot.registry.models import Consumer, Key, KeyOwner, OwnerRole, Setting, Team
from bot.registry.schemas import KeyRecord

log = structlog.get_logger(__name__)


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


@dataclass(frozen=True)
class ImportSummary:
    teams_created: int
    keys_created: int
    keys_updated: int
    state_overridden: int = 0


class ImportRefused(RegistryFileError):
    """Nothing was imported: `errors` are problems of the file, `changes` state it may not change."""

    def __init__(self, source: str, errors: list[RecordError], changes: list[StateChange]) -> None:
        super().__init__(source, errors)
        self.changes = changes
        parts = [f"{len(errors)} problem(s)"] if errors else []
        if changes:
            parts.append(
                f"{len(changes)} change(s) to state keybot owns (status, provider id, fingerprint, "
                "last rotation); repeat with --force to apply them"
            )
        self.args = (f"{source}: {' and '.join(parts)}; nothing was imported",)


UnknownTeam = ImportRefused  # the name `keybot` recognises as an operator's error


def apply_import(
    session: Session,
    parsed: ParsedRegistry,
    fingerprinter: Fingerprinter,
    *,
    force: bool = False,
    dry_run: bool = False,
    actor: str = "keybot",
) -> ImportSummary:
    """Validate against the database, then upsert teams and keys by name (nothing at all on a dry run).

    Ownership fields of an imported key are replaced by the file's; state keybot owns is kept unless
    the file states otherwise and `force` is given, in which case the override is logged and written to
    the key's latest incident timeline. Raises ImportRefused with every problem at once.
    """
    if not dry_run or session.get(Setting, CHECK_SETTING) is not None:
        fingerprinter.verify_against(session)  # writes only on first use, which a dry run skips
    plan = plan_import(session, parsed, fingerprinter)
    errors = sorted(parsed.errors + plan.errors, key=lambda e: e.line)
    if errors or (plan.changes and not force):
        raise ImportRefused(parsed.source, errors, plan.changes)
    created = sum(1 for record in parsed.keys if record.name not in plan.existing)
    summary = ImportSummary(
        len(plan.new_teams), created, len(parsed.keys) - created, len(plan.changes) if force else 0
    )
    if dry_run:
        return summary
    team_ids = _upsert_teams(session, parsed)
    _write_keys(session, parsed, plan, team_ids)
    if force and plan.changes:
        _record_override(session, parsed.source, plan, actor)
    return summary


TEAM_SCHEDULE = ("rotation_days", "timezone", "reminder_time", "reminder_days", "escalation", "oncall_group")


def _upsert_teams(session: Session, parsed: ParsedRegistry) -> dict[str, int]:
    existing_teams = {t.name: t for t in session.scalars(select(Team))}
    for team in parsed.teams:
        row = existing_teams.get(team.name)
        if row is None:
            row = Team(name=team.name)
            session.add(row)
            existing_teams[team.name] = row
        row.slack_channel = team.channel or row.slack_channel
        row.manager_slack_id = team.manager or row.manager_slack_id
        for name in TEAM_SCHEDULE:
            if getattr(team, name) is not None:
                setattr(row, name, getattr(team, name))
    session.flush()
    return {name: team.id for name, team in existing_teams.items()}


def _write_keys(session: Session, parsed: ParsedRegistry, plan: ImportPlan, team_ids: dict[str, int]) -> None:
    now = utcnow()
    new_rows: list[dict[str, Any]] = []
    changed: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    for record, planned in zip(parsed.keys, plan.columns, strict=True):
        columns = {**planned, "team_id": team_ids.get(record.team) if record.team else None}
        key = plan.existing.get(record.name)
        if key is None:
            new_rows.append({**columns, "created_at": now})
            continue
        given = stated_fields(record)
        for name, owned in OPERATIONAL_COLUMNS.items():
            if name not in given:
                for column in owned:
                    columns.pop(column)
        changed[frozenset(columns)].append({"id": key.id, **columns})
    connection = session.connection()
    for rows in changed.values():  # one executemany per column set
        for chunk in _chunks(rows):
            session.execute(update(Key), chunk)
    changed_ids = [key.id for key in plan.existing.values()]
    for i in range(0, len(changed_ids), BATCH):
        session.execute(delete(KeyOwner).where(KeyOwner.key_id.in_(changed_ids[i : i + BATCH])))
        session.execute(delete(Consumer).where(Consumer.key_id.in_(changed_ids[i : i + BATCH])))
    for chunk in _chunks(new_rows):
        connection.execute(insert(_table(Key)), chunk)
    ids = {name: id_ for name, id_ in session.execute(select(Key.name, Key.id))}
    _insert_people(session, parsed.keys, ids)
    session.expire_all()  # bulk writes bypass the ORM: keys the caller holds are stale


def _record_override(session: Session, source: str, plan: ImportPlan, actor: str) -> None:
    """A forced import is on the record: the log, and the timeline of each key's latest incident."""
    by_key: dict[str, list[StateChange]] = defaultdict(list)
    for change in plan.changes:
        by_key[change.key].append(change)
    for name, changes in by_key.items():
        fields = {c.field: {"from": c.keybot_value, "to": c.file_value} for c in changes}
        log.warning("registry.import.forced", key=name, source=source, actor=actor, fields=fields)
        key_id = plan.existing[name].id
        incident = session.scalar(
            select(Incident.id).where(Incident.key_id == key_id).order_by(Incident.id.desc()).limit(1)
        )
        if incident is not None:
            data = {"key": name, "source": source, "fields": fields}
            append_event(session, incident, "registry.import.forced", actor, data)


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]


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
