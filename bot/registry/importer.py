"""Reads registry files (YAML or CSV) and validates every record before anything is written.

All problems are collected, each with its line and field, so one run tells the operator everything to fix.
Error messages never quote a value that could be a secret.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bot.registry import safe_yaml
from bot.registry.safe_yaml import LINE, LINES, UnsafeYaml, strip_marks
from bot.registry.schemas import KeyRecord, TeamRecord
from bot.secrets import contains_secret

# 100,000 keys as CSV are about 20 MB; anything far beyond that is a mistake or an attack.
MAX_FILE_BYTES = 64 * 1024 * 1024
# Fields where a pasted secret would otherwise end up stored in plain text.
PLAIN_FIELDS = ("name", "provider_key_id", "project", "vault_path", "team", "description", "redacted", "tags")
CSV_LIST_SEPARATOR = ";"
# OWASP CSV injection: a cell starting with one of these is a formula to a spreadsheet.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: str) -> str:
    """Quote a cell a spreadsheet would run as a formula; quoted-looking cells get one more quote so
    `restore_cell` can tell them apart."""
    if value.lstrip("'").startswith(FORMULA_START):
        return "'" + value
    return value


def restore_cell(value: str) -> str:
    """Undo `neutralise_cell`: drop the one quote it added, leave every other value as written."""
    if value.startswith("'") and value.lstrip("'").startswith(FORMULA_START):
        return value[1:]
    return value


@dataclass(frozen=True)
class RecordError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


class RegistryFileError(Exception):
    """The file was rejected; `errors` lists every problem found."""

    def __init__(self, source: str, errors: list[RecordError]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} problem(s); nothing was imported")


@dataclass
class ParsedRegistry:
    """The valid records of a file, and every problem of the invalid ones (so one report lists them all)."""

    teams: list[TeamRecord] = field(default_factory=list)
    keys: list[KeyRecord] = field(default_factory=list)
    key_lines: list[int] = field(default_factory=list)
    key_field_lines: list[dict[str, int]] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    source: str = "registry"

    def raise_errors(self) -> None:
        if self.errors:
            raise RegistryFileError(self.source, sorted(self.errors, key=lambda e: e.line))


def _line_of(raw: Any, loc: tuple[int | str, ...], line: int) -> int:
    """The line of the deepest part of `raw` along `loc` whose line the loader recorded."""
    current = raw
    for part in loc:
        if isinstance(current, dict):
            line = current.get(LINES, {}).get(part, line)
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            if isinstance(current, dict):
                line = current.get(LINE, line)
        else:
            break
    return int(line)


def _pydantic_errors(error: ValidationError, line: int, raw: Any) -> list[RecordError]:
    found = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "record"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        found.append(RecordError(_line_of(raw, tuple(item["loc"]), line), path, message))
    return found


def _validate(model: type[BaseModel], raw: Any, line: int, lines: dict[str, int], what: str) -> Any:
    if not isinstance(raw, dict):
        raise _Invalid([RecordError(line, what, "expected a mapping of field: value")])
    try:
        record = model.model_validate(strip_marks(raw) if LINE in raw else raw)
    except ValidationError as error:
        raise _Invalid(_pydantic_errors(error, line, raw)) from None
    fields = record.__dict__
    texts = {name: value for name, value in fields.items() if isinstance(value, str)}
    if fields.get("tags"):
        texts["tags"] = " ".join(fields["tags"])
    joined = "\n".join(texts.values())
    problems = []
    if contains_secret(joined):
        problems += [
            RecordError(lines.get(name, line), name, "looks like a secret; put secrets only in `secret:`")
            for name in PLAIN_FIELDS
            if name in texts and contains_secret(texts[name])
        ]
    if problems:
        raise _Invalid(problems)
    return record


class _Invalid(Exception):
    def __init__(self, errors: list[RecordError]) -> None:
        self.errors = errors


def _cross_check(parsed: ParsedRegistry, errors: list[RecordError]) -> None:
    seen: dict[str, int] = {}
    for record, line in zip(parsed.keys, parsed.key_lines, strict=True):
        if record.name in seen:
            errors.append(RecordError(line, "name", f"duplicate of the key on line {seen[record.name]}"))
        seen.setdefault(record.name, line)
        if record.secret is not None and record.fingerprint is not None:
            errors.append(RecordError(line, "fingerprint", "give either secret or fingerprint, not both"))
    team_names = [t.name for t in parsed.teams]
    duplicates = {n for n in team_names if team_names.count(n) > 1}
    errors.extend(RecordError(0, "teams", f"team {n!r} is defined twice") for n in sorted(duplicates))


def _too_large(text: str, source: str) -> ParsedRegistry | None:
    if len(text) > MAX_FILE_BYTES:
        return ParsedRegistry(
            errors=[RecordError(0, "file", f"larger than {MAX_FILE_BYTES} bytes")], source=source
        )
    return None


def read_yaml(text: str, source: str = "registry.yaml") -> ParsedRegistry:
    """Every valid record and every problem of a YAML registry; never raises for what the file holds."""
    refused = _too_large(text, source)
    if refused is not None:
        return refused
    parsed = ParsedRegistry(source=source)
    try:
        document = safe_yaml.load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        parsed.errors.append(RecordError(line, "file", f"not valid YAML: {problem}"))
        return parsed
    except UnsafeYaml as error:
        parsed.errors.append(RecordError(error.line, "file", error.message))
        return parsed
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as error:
        parsed.errors.append(RecordError(0, "file", f"not valid YAML ({type(error).__name__})"))
        return parsed
    if document is None:
        document = {}
    if not isinstance(document, dict):
        parsed.errors.append(RecordError(1, "file", "expected a mapping with `teams:` and `keys:`"))
        return parsed
    errors = parsed.errors
    top_lines: dict[str, int] = document.get(LINES, {})
    errors.extend(
        RecordError(top_lines.get(str(k), 1), str(k), "unknown section (expected teams, keys)")
        for k in document
        if k not in ("teams", "keys", LINE, LINES)
    )
    for section, model, target in (("teams", TeamRecord, parsed.teams), ("keys", KeyRecord, parsed.keys)):
        items = document.get(section) or []
        if not isinstance(items, list):
            errors.append(RecordError(top_lines.get(section, 1), section, "expected a list"))
            continue
        for index, raw in enumerate(items):
            line = raw.get(LINE, top_lines.get(section, 0)) if isinstance(raw, dict) else 0
            lines = raw.get(LINES, {}) if isinstance(raw, dict) else {}
            try:
                target.append(_validate(model, raw, line, lines, f"{section}[{index}]"))
                if section == "keys":
                    parsed.key_lines.append(line)
                    parsed.key_field_lines.append({str(k): int(v) for k, v in lines.items()})
            except _Invalid as invalid:
                errors.extend(invalid.errors)
    _cross_check(parsed, errors)
    return parsed


def parse_yaml(text: str, source: str = "registry.yaml") -> ParsedRegistry:
    parsed = read_yaml(text, source)
    parsed.raise_errors()
    return parsed


CSV_LIST_FIELDS = ("owners", "backups", "tags")
CSV_TEAM_FIELDS = {
    "team_channel": "channel", "team_manager": "manager", "team_rotation_days": "rotation_days",
    "team_timezone": "timezone", "team_reminder_time": "reminder_time", "team_reminder_days": "reminder_days",
    "team_escalation": "escalation", "team_oncall_group": "oncall_group",
}  # fmt: skip


def _csv_consumers(cell: str) -> list[dict[str, str]]:
    """`checkout-api` or `checkout-api@U123` items separated by semicolons."""
    consumers = []
    for item in filter(None, (c.strip() for c in cell.split(CSV_LIST_SEPARATOR))):
        name, _, contact = item.rpartition("@")
        if not name:  # no `@`, or `@name`: an `@` that starts a name is part of it
            name, contact = item, ""
        consumers.append({"name": name, **({"contact": contact} if contact else {})})
    return consumers


def read_csv(text: str, source: str = "registry.csv") -> ParsedRegistry:
    """Every valid row and every problem of a CSV registry; cells `to_csv` quoted are restored."""
    refused = _too_large(text, source)
    if refused is not None:
        return refused
    parsed = ParsedRegistry(source=source)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as error:
        parsed.errors.append(RecordError(1, "file", f"not valid CSV: {error}"))
        return parsed
    if not fieldnames or "name" not in fieldnames:
        parsed.errors.append(RecordError(1, "header", "expected a header row with at least `name`"))
        return parsed
    known = set(KeyRecord.model_fields) | set(CSV_TEAM_FIELDS) | {"consumers"}
    errors = parsed.errors
    errors.extend(
        RecordError(1, str(column), "unknown column") for column in fieldnames if column not in known
    )
    teams: dict[str, TeamRecord] = {}
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                errors.append(RecordError(line, "row", "more cells than header columns"))
                continue
            raw: dict[str, Any] = {
                k: restore_cell(v) for k, v in row.items() if k in known and v not in (None, "")
            }
            for name in CSV_LIST_FIELDS:
                if name in raw:
                    raw[name] = [v.strip() for v in raw[name].split(CSV_LIST_SEPARATOR) if v.strip()]
            if "consumers" in raw:
                raw["consumers"] = _csv_consumers(raw["consumers"])
            team_fields = {CSV_TEAM_FIELDS[k]: raw.pop(k) for k in list(raw) if k in CSV_TEAM_FIELDS}
            try:
                record = _validate(KeyRecord, raw, line, {}, "row")
                if record.team and record.team not in teams:
                    teams[record.team] = _validate(
                        TeamRecord, {"name": record.team, **team_fields}, line, {}, "team"
                    )
                parsed.keys.append(record)
                parsed.key_lines.append(line)
                parsed.key_field_lines.append({})
            except _Invalid as invalid:
                errors.extend(invalid.errors)
    except csv.Error as error:
        errors.append(RecordError(line, "file", f"not valid CSV: {error}"))
    parsed.teams = list(teams.values())
    _cross_check(parsed, errors)
    return parsed


def parse_csv(text: str, source: str = "registry.csv") -> ParsedRegistry:
    parsed = read_csv(text, source)
    parsed.raise_errors()
    return parsed


def read_file(path: Path) -> ParsedRegistry:
    """`read_yaml` or `read_csv` by suffix, reading at most MAX_FILE_BYTES (+1, to notice a larger file)."""
    source = str(path)

    def refused(message: str) -> ParsedRegistry:
        return ParsedRegistry(errors=[RecordError(0, "file", message)], source=source)

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        return refused("expected a .yaml, .yml or .csv file")
    if not path.is_file():
        return refused("no such file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        return refused(f"cannot read it ({error.strerror or type(error).__name__})")
    if len(data) > MAX_FILE_BYTES:
        return refused(f"larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return refused(f"not UTF-8 text ({error.reason})")
    return read_csv(text, source) if suffix == ".csv" else read_yaml(text, source)


def parse_file(path: Path) -> ParsedRegistry:
    parsed = read_file(path)
    parsed.raise_errors()
    return parsed
