"""Reads registry files (YAML or CSV) and validates every record before anything is written.

All problems are collected, each with its line and field, so one run tells the operator everything to fix.
Error messages never quote a value that could be a secret.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bot.registry.schemas import KeyRecord, TeamRecord
from bot.secrets import contains_secret

MAX_FILE_BYTES = 512 * 1024 * 1024
LINES = "__lines__"
LINE = "__line__"
# Fields where a pasted secret would otherwise end up stored in plain text.
PLAIN_FIELDS = ("name", "provider_key_id", "project", "vault_path", "team", "description", "redacted", "tags")
CSV_LIST_SEPARATOR = ";"
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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
    teams: list[TeamRecord] = field(default_factory=list)
    keys: list[KeyRecord] = field(default_factory=list)
    key_lines: list[int] = field(default_factory=list)


class _LineLoader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """Safe YAML loader that remembers the line of every mapping and of each of its fields."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        mapping[LINE] = node.start_mark.line + 1
        mapping[LINES] = {k.value: k.start_mark.line + 1 for k, _ in node.value if hasattr(k, "value")}
        return mapping


def _strip_marks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_marks(v) for k, v in value.items() if k not in (LINE, LINES)}
    if isinstance(value, list):
        return [_strip_marks(v) for v in value]
    return value


def _pydantic_errors(error: ValidationError, line: int, lines: dict[str, int]) -> list[RecordError]:
    found = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "record"
        top = str(item["loc"][0]) if item["loc"] else ""
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        found.append(RecordError(lines.get(top, line), path, message))
    return found


def _validate(model: type[BaseModel], raw: Any, line: int, lines: dict[str, int], what: str) -> Any:
    if not isinstance(raw, dict):
        raise _Invalid([RecordError(line, what, "expected a mapping of field: value")])
    try:
        record = model.model_validate(_strip_marks(raw) if LINE in raw else raw)
    except ValidationError as error:
        raise _Invalid(_pydantic_errors(error, line, lines)) from None
    fields = record.__dict__
    texts = {name: value for name, value in fields.items() if isinstance(value, str)}
    if fields.get("tags"):
        texts["tags"] = " ".join(fields["tags"])
    joined = "\n".join(texts.values())
    problems = []
    if CONTROL_CHARS.search(joined):
        problems += [
            RecordError(lines.get(name, line), name, "contains control characters")
            for name, value in texts.items()
            if CONTROL_CHARS.search(value)
        ]
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


def parse_yaml(text: str, source: str = "registry.yaml") -> ParsedRegistry:
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise RegistryFileError(source, [RecordError(line, "file", f"not valid YAML: {error}")]) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise RegistryFileError(
            source, [RecordError(1, "file", "expected a mapping with `teams:` and `keys:`")]
        )
    errors: list[RecordError] = []
    top_lines: dict[str, int] = document.get(LINES, {})
    errors.extend(
        RecordError(top_lines.get(str(k), 1), str(k), "unknown section (expected teams, keys)")
        for k in document
        if k not in ("teams", "keys", LINE, LINES)
    )
    parsed = ParsedRegistry()
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
            except _Invalid as invalid:
                errors.extend(invalid.errors)
    _cross_check(parsed, errors)
    if errors:
        raise RegistryFileError(source, errors)
    return parsed


CSV_LIST_FIELDS = ("owners", "backups", "tags")
CSV_TEAM_FIELDS = {"team_channel": "channel", "team_manager": "manager"}


def _csv_consumers(cell: str) -> list[dict[str, str]]:
    """`checkout-api` or `checkout-api@U123` items separated by semicolons."""
    consumers = []
    for item in filter(None, (c.strip() for c in cell.split(CSV_LIST_SEPARATOR))):
        name, _, contact = item.partition("@")
        consumers.append({"name": name, **({"contact": contact} if contact else {})})
    return consumers


def parse_csv(text: str, source: str = "registry.csv") -> ParsedRegistry:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or "name" not in reader.fieldnames:
        raise RegistryFileError(
            source, [RecordError(1, "header", "expected a header row with at least `name`")]
        )
    known = set(KeyRecord.model_fields) | set(CSV_TEAM_FIELDS) | {"consumers"}
    errors = [
        RecordError(1, str(column), "unknown column") for column in reader.fieldnames if column not in known
    ]
    parsed = ParsedRegistry()
    teams: dict[str, TeamRecord] = {}
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                errors.append(RecordError(line, "row", "more cells than header columns"))
                continue
            raw: dict[str, Any] = {k: v for k, v in row.items() if k in known and v not in (None, "")}
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
            except _Invalid as invalid:
                errors.extend(invalid.errors)
    except csv.Error as error:
        errors.append(RecordError(line, "file", f"not valid CSV: {error}"))
    parsed.teams = list(teams.values())
    _cross_check(parsed, errors)
    if errors:
        raise RegistryFileError(source, errors)
    return parsed


def parse_file(path: Path) -> ParsedRegistry:
    if not path.is_file():
        raise RegistryFileError(str(path), [RecordError(0, "file", "no such file")])
    if path.stat().st_size > MAX_FILE_BYTES:
        raise RegistryFileError(str(path), [RecordError(0, "file", f"larger than {MAX_FILE_BYTES} bytes")])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise RegistryFileError(
            str(path), [RecordError(0, "file", f"not UTF-8 text ({error.reason})")]
        ) from None
    if path.suffix.lower() == ".csv":
        return parse_csv(text, str(path))
    if path.suffix.lower() in (".yaml", ".yml"):
        return parse_yaml(text, str(path))
    raise RegistryFileError(str(path), [RecordError(0, "file", "expected a .yaml, .yml or .csv file")])
