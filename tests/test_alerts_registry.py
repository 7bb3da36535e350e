"""The registry file sets a team's escalation chain and on-call group; bad values are refused per field,
and exports (YAML and CSV) carry them back."""

from __future__ import annotations

import pytest

from bot.db.session import Database
from bot.registry.export import export_records
from bot.registry.exporter import to_csv
from bot.registry.fingerprint import Fingerprinter
from bot.registry.importer import RegistryFileError, parse_csv, parse_yaml
from bot.registry.models import Team
from bot.registry.store import apply_import

DOC = """
teams:
  - name: payments
    channel: C0PAYMENTS
    escalation: "backup:10, channel:20 ,manager:40"
    oncall_group: S0ONCALL1
keys:
  - name: pay-prod
    provider: openai
    team: payments
"""


def test_escalation_and_oncall_group_are_imported_normalised_and_exported(
    database: Database, fingerprinter: Fingerprinter
) -> None:
    parsed = parse_yaml(DOC)
    assert parsed.errors == []
    with database.session() as session:
        apply_import(session, parsed, fingerprinter)
    with database.session() as session:
        team = session.query(Team).one()
        assert (team.escalation, team.oncall_group) == ("backup:10,channel:20,manager:40", "S0ONCALL1")
        document = export_records(session)
    assert document["teams"][0]["escalation"] == "backup:10,channel:20,manager:40"
    csv_text = to_csv(document)
    again = parse_csv(csv_text)
    assert again.errors == []
    assert (again.teams[0].escalation, again.teams[0].oncall_group) == (
        "backup:10,channel:20,manager:40",
        "S0ONCALL1",
    )


def test_bad_chain_and_group_are_reported_per_field() -> None:
    bad = DOC.replace("backup:10, channel:20 ,manager:40", "backup:30,channel:20").replace(
        "S0ONCALL1", "U0PERSON"
    )
    with pytest.raises(RegistryFileError) as rejected:
        parse_yaml(bad)
    assert {(e.line, e.field) for e in rejected.value.errors} == {(5, "escalation"), (6, "oncall_group")}
    assert any("must come later" in e.message for e in rejected.value.errors)


def test_csv_team_escalation_columns() -> None:
    text = "name,provider,team,team_escalation,team_oncall_group\nk1,openai,ops,none,S0OPS\n"
    parsed = parse_csv(text)
    assert parsed.errors == []
    assert (parsed.teams[0].escalation, parsed.teams[0].oncall_group) == ("none", "S0OPS")
