"""Serialises an exported registry document as YAML or CSV in the shapes the importer reads back.

CSV cells that a spreadsheet would run as formulas are quoted (OWASP CSV injection); the importer
removes exactly that quote again, so an export imports back unchanged.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import yaml

from bot.registry.importer import neutralise_cell

CSV_COLUMNS = (
    "name",
    "provider",
    "provider_key_id",
    "project",
    "environment",
    "vault_path",
    "redacted",
    "fingerprint",
    "team",
    "team_channel",
    "team_manager",
    "team_escalation",
    "team_oncall_group",
    "owners",
    "backups",
    "consumers",
    "rotation_days",
    "last_rotated",
    "status",
    "tags",
    "description",
)


def to_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)


def _consumer_cell(consumers: list[dict[str, str]]) -> str:
    return ";".join(c["name"] + (f"@{c['contact']}" if c.get("contact") else "") for c in consumers)


def _cell(value: Any) -> Any:
    return neutralise_cell(value) if isinstance(value, str) else value


def to_csv(document: dict[str, Any]) -> str:
    teams = {t["name"]: t for t in document.get("teams", [])}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for key in document.get("keys", []):
        team = teams.get(key.get("team", ""), {})
        row = {
            **key,
            "team_channel": team.get("channel"),
            "team_manager": team.get("manager"),
            "team_escalation": team.get("escalation"),
            "team_oncall_group": team.get("oncall_group"),
        }
        for name in ("owners", "backups", "tags"):
            row[name] = ";".join(key.get(name, []))
        row["consumers"] = _consumer_cell(key.get("consumers", []))
        writer.writerow({c: _cell(row.get(c)) for c in CSV_COLUMNS})
    return buffer.getvalue()
