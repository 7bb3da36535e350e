"""Writes validated registry records in one transaction, in bulk, so 100,000 keys import in seconds.

An import owns who a key belongs to (owners, backups, team, consumers, rotation policy, description,
tags) and where it lives. keybot owns what happened to it (status, the provider key id and fingerprint
after a rotation, when it was last rotated): a file that would change those is refused with the per-key,
per-field difference unless forced, so re-importing an old file never rolls live state back.

Inserts go through Core rather than the ORM unit of work: the ORM's per-object bookkeeping costs several
times the database's own time at this size.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from sqlalchemy import Row, Table, delete, insert, select, update
from sqlalchemy.orm import Session

from bot.db.base import Base, utcnow
from bot.incidents.models import Incident
from bot.incidents.service import append_event
from bot.registry.fingerprint import CHECK_SETTING, Fingerprinter
from bot.registry.importer import ParsedRegistry, RecordError, RegistryFileError
from bot.registry.models import (
    Consumer,
    Key,
    KeyOwner,
    KeyStatus,
    OwnerRole,
    Setting,
    Team,
    redacted_form_of,
)
from bot.registry.schemas import KeyRecord
from bot.secrets import parse_redacted, redacted_form

BATCH = 5000
# Columns keybot maintains once a key exists, by the file field that would set them.
OPERATIONAL_COLUMNS = {
    "status": ("status",),
    "provider_key_id": ("provider_key_id",),
    "last_rotated": ("last_rotated_at",),
    "fingerprint": ("fingerprint",),
    "redacted": ("secret_family", "secret_last4"),
}

log = structlog.get_logger(__name__)


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


@dataclass(frozen=True)
class ImportSummary:
    teams_created: int
    keys_created: int
    keys_updated: int
    state_overridden: int = 0


@dataclass(frozen=True)
class StateChange:
    """A field keybot owns that the file would change: shown to the operator, applied only with --force."""

    line: int
    key: str
    field: str
    keybot_value: str
    file_value: str

    def __str__(self) -> str:
        return (
            f"line {self.line}: {self.key}: {self.field}: keybot has {self.keybot_value}, "
            f"the file says {self.file_value}"
        )


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


@dataclass
class ImportPlan:
    """What an import would do, computed without writing: the one validation dry runs and imports share."""

    errors: list[RecordError] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)
    existing: dict[str, Row[Any]] = field(default_factory=dict)  # the state columns of keys the file names
    columns: list[dict[str, Any]] = field(default_factory=list)  # per file key, team_id still unset
    new_teams: list[str] = field(default_factory=list)


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


def _given(record: KeyRecord) -> set[str]:
    """Operational fields the file states for this key (an omitted field states nothing)."""
    given: set[str] = {
        f for f in ("status", "provider_key_id", "last_rotated") if f in record.model_fields_set
    }
    if record.secret is not None or record.fingerprint is not None:
        given.add("fingerprint")
    if record.secret is not None or record.redacted is not None:
        given.add("redacted")
    return given


def _instant(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _shown(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _changes(
    record: KeyRecord, lines: dict[str, int], line: int, key: Row[Any], columns: dict[str, Any]
) -> list[StateChange]:
    """Operational fields whose file value differs from what keybot recorded, with the field's line."""
    found = []
    for name in sorted(_given(record)):
        if name == "redacted":
            mine: object = redacted_form_of(key.secret_family, key.secret_last4)
            theirs: object = redacted_form_of(columns["secret_family"], columns["secret_last4"])
        elif name == "last_rotated":
            mine, theirs = _instant(key.last_rotated_at), _instant(columns["last_rotated_at"])
        elif name == "status":
            mine, theirs = KeyStatus(key.status).value, columns["status"]
        else:
            mine, theirs = getattr(key, name), columns[name]
        if mine != theirs:
            if name == "fingerprint":  # not secret, but long: enough to tell two apart
                mine = f"{str(mine)[:12]}…" if mine else None
                theirs = f"{str(theirs)[:12]}…" if theirs else None
            where = lines.get(name, lines.get("secret", line))
            found.append(StateChange(where, key.name, name, _shown(mine), _shown(theirs)))
    return found


def plan_import(session: Session, parsed: ParsedRegistry, fingerprinter: Fingerprinter) -> ImportPlan:
    """Every problem the database reveals (unknown teams, state keybot owns), without writing anything."""
    plan = ImportPlan()
    known_teams = set(session.scalars(select(Team.name)))
    plan.new_teams = list(dict.fromkeys(t.name for t in parsed.teams if t.name not in known_teams))
    defined = known_teams | set(plan.new_teams)
    names = [record.name for record in parsed.keys]
    state = select(Key.id, Key.name, *(getattr(Key, c) for cs in OPERATIONAL_COLUMNS.values() for c in cs))
    for i in range(0, len(names), BATCH):
        rows = session.execute(state.where(Key.name.in_(names[i : i + BATCH])))
        plan.existing.update((row.name, row) for row in rows)
    records = zip(parsed.keys, parsed.key_lines, parsed.key_field_lines, strict=True)
    for record, line, lines in records:
        columns = _key_columns(record, {}, fingerprinter)
        plan.columns.append(columns)
        if record.team and record.team not in defined:
            plan.errors.append(
                RecordError(
                    lines.get("team", line),
                    "team",
                    f"unknown team {record.team[:120]!r} (define it under `teams:`)",
                )
            )
        key = plan.existing.get(record.name)
        if key is not None:
            plan.changes += _changes(record, lines, line, key, columns)
    return plan


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
        given = _given(record)
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
