"""What an import would change, computed without writing: the one validation dry runs and imports share.

An import owns who a key belongs to; keybot owns what happened to it (status, the provider key id and
fingerprint after a rotation, when it was last rotated). The plan lists every file value that would change
the latter, per key and field, so `bot.registry.store` can refuse it unless forced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from bot.registry.fingerprint import Fingerprinter
from bot.registry.importer import ParsedRegistry, RecordError
from bot.registry.models import Key, KeyStatus, Team, redacted_form_of
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


def stated_fields(record: KeyRecord) -> set[str]:
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
    for name in sorted(stated_fields(record)):
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
