"""The registry file sets a team's rotation policy and reminder schedule; bad values are refused per field."""

from __future__ import annotations

import pytest

from bot.db.session import Database
from bot.registry.export import export_records
from bot.registry.fingerprint import Fingerprinter
from bot.registry.importer import RegistryFileError, parse_csv, parse_yaml
from bot.registry.models import Team
from bot.registry.store import apply_import

DOC = """
teams:
  - name: tokyo
    channel: C0TOKYO
    rotation_days: 45
    timezone: Asia/Tokyo
    reminder_time: "08:15"
    reminder_days: mon,wed,fri
keys: []
"""


def test_team_schedule_and_policy_are_imported_and_exported(
    database: Database, fingerprinter: Fingerprinter
) -> None:
    parsed = parse_yaml(DOC)
    assert parsed.errors == []
    with database.session() as session:
        apply_import(session, parsed, fingerprinter)
    with database.session() as session:
        team = session.query(Team).one()
        assert (team.rotation_days, team.timezone, team.reminder_time, team.reminder_days) == (
            45, "Asia/Tokyo", "08:15", "mon,wed,fri",
        )  # fmt: skip
        assert export_records(session)["teams"][0]["timezone"] == "Asia/Tokyo"


def test_bad_schedule_values_are_reported_per_field() -> None:
    bad = (
        DOC.replace("Asia/Tokyo", "Mars/Olympus")
        .replace('"08:15"', '"25:00"')
        .replace("mon,wed,fri", "someday")
    )
    with pytest.raises(RegistryFileError) as rejected:
        parse_yaml(bad)
    assert {(e.line, e.field) for e in rejected.value.errors} == {
        (6, "timezone"),
        (7, "reminder_time"),
        (8, "reminder_days"),
    }


def test_csv_team_columns() -> None:
    text = "name,provider,team,team_rotation_days,team_timezone\nk1,openai,tokyo,20,Asia/Tokyo\n"
    parsed = parse_csv(text)
    assert parsed.errors == []
    assert (parsed.teams[0].rotation_days, parsed.teams[0].timezone) == (20, "Asia/Tokyo")


def test_the_teamless_label_is_not_a_team_name() -> None:
    with pytest.raises(RegistryFileError) as rejected:
        parse_yaml(DOC.replace("name: tokyo", 'name: "*"'))
    assert [(e.field, e.message) for e in rejected.value.errors] == [
        ("name", "'*' is reserved: it names the keys without a team in rotation reminders")
    ]
