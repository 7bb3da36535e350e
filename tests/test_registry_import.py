from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.registry.export import export_records
from bot.registry.exporter import to_csv, to_yaml
from bot.registry.fingerprint import Fingerprinter
from bot.registry.importer import RegistryFileError, parse_csv, parse_file, parse_yaml
from bot.registry.models import Consumer, Key, KeyOwner, KeyStatus, Team
from bot.registry.store import UnknownTeam, apply_import
from tests.fakes import openai_project_key

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "runbooks" / "examples" / "registry.yaml"


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_example_registry_imports(session: Session, fingerprinter: Fingerprinter) -> None:
    summary = apply_import(session, parse_file(EXAMPLE), fingerprinter)
    assert summary.keys_created == 6 and summary.keys_updated == 0 and summary.teams_created == 3
    key = session.scalars(select(Key).where(Key.name == "payments-openai-prod")).one()
    assert key.redacted == "sk-proj-...Xy9Q"
    assert key.owner_ids() == ["U07ALICE01"]
    assert [c.name for c in key.consumers] == ["checkout-api", "fraud-scorer"]
    assert key.team is not None and key.team.slack_channel == "#payments-oncall"
    assert key.last_rotated_at is not None and key.last_rotated_at.tzinfo is not None


def test_yaml_export_import_round_trip(session: Session, fingerprinter: Fingerprinter) -> None:
    secret = openai_project_key()
    text = (
        EXAMPLE.read_text()
        + f"""
  - name: with-secret
    provider: openai
    secret: {secret}
    team: search
    owners: [U07CAROL03]
"""
    )
    apply_import(session, parse_yaml(text), fingerprinter)
    first = export_records(session)
    exported = to_yaml(first)
    assert secret not in exported and secret[8:40] not in exported
    with_secret = next(k for k in first["keys"] if k["name"] == "with-secret")
    assert with_secret["fingerprint"] == fingerprinter.fingerprint(secret)
    assert with_secret["redacted"] == "sk-proj-..." + secret[-4:]
    summary = apply_import(session, parse_yaml(exported), fingerprinter)
    assert summary.keys_created == 0 and summary.keys_updated == 7
    assert export_records(session) == first


def test_csv_export_import_round_trip(session: Session, fingerprinter: Fingerprinter) -> None:
    apply_import(session, parse_file(EXAMPLE), fingerprinter)
    first = export_records(session)
    csv_text = to_csv(first)
    for model in (KeyOwner, Consumer, Key, Team):
        session.execute(model.__table__.delete())
    apply_import(session, parse_csv(csv_text), fingerprinter)
    assert export_records(session) == first


def test_reimport_replaces_owners_and_consumers(session: Session, fingerprinter: Fingerprinter) -> None:
    apply_import(session, parse_file(EXAMPLE), fingerprinter)
    changed = EXAMPLE.read_text().replace("owners: [U07ALICE01]", "owners: [U07NEWOWN1]", 1)
    apply_import(session, parse_yaml(changed), fingerprinter)
    key = session.scalars(select(Key).where(Key.name == "payments-openai-prod")).one()
    session.refresh(key)
    assert key.owner_ids() == ["U07NEWOWN1"]
    assert _count(session, Key) == 6


BAD_YAML = """\
teams:
  - name: payments
    channel: not a channel
keys:
  - name: good-key
    provider: openai
    team: payments
  - name: bad-provider
    provider: azure
  - name: bad-owner
    owners: [alice]
    rotation_days: -3
  - name: good-key
  - name: typo-field
    enviroment: production
  - name: leaked-in-description
    description: "our key is {secret}"
"""


def test_malformed_yaml_reports_every_problem_with_line_and_field(
    session: Session, fingerprinter: Fingerprinter
) -> None:
    secret = openai_project_key()
    with pytest.raises(RegistryFileError) as caught:
        parse_yaml(BAD_YAML.format(secret=secret), "bad.yaml")
    problems = {(e.line, e.field) for e in caught.value.errors}
    assert (3, "channel") in problems
    assert (9, "provider") in problems
    assert (11, "owners") in problems
    assert (12, "rotation_days") in problems
    assert (13, "name") in problems
    assert (15, "enviroment") in problems
    assert (17, "description") in problems
    messages = " ".join(str(e) for e in caught.value.errors)
    assert "unknown field" in messages and "duplicate of the key on line 5" in messages
    assert secret not in messages and secret[10:30] not in messages
    assert _count(session, Key) == 0


def test_bad_row_in_large_file_imports_nothing(session: Session, fingerprinter: Fingerprinter) -> None:
    apply_import(session, parse_file(EXAMPLE), fingerprinter)
    rows = ["name,provider,environment,owners"]
    rows += [f"bulk-{i},openai,production,U07ALICE01" for i in range(500)]
    rows.insert(300, "bulk-broken,openai,prod,U07ALICE01")
    with pytest.raises(RegistryFileError) as caught:
        parse_csv("\n".join(rows) + "\n")
    assert [(e.line, e.field) for e in caught.value.errors] == [(301, "environment")]
    assert _count(session, Key) == 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("keys: [\n  - name: x\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("keys:\n  - just-a-string\n", "expected a mapping of field: value"),
        ("keys: {name: x}\n", "expected a list"),
        ("people: []\n", "unknown section"),
    ],
)
def test_structurally_broken_yaml(text: str, expected: str) -> None:
    with pytest.raises(RegistryFileError) as caught:
        parse_yaml(text)
    assert expected in str(caught.value.errors[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "header row"),
        ("name,colour\nx,red\n", "unknown column"),
        ("name,provider\nx,openai,extra\n", "more cells than header"),
    ],
)
def test_structurally_broken_csv(text: str, expected: str) -> None:
    with pytest.raises(RegistryFileError) as caught:
        parse_csv(text)
    assert expected in str(caught.value.errors[0])


def test_unknown_file_type_and_binary_file(tmp_path: Path) -> None:
    (tmp_path / "reg.json").write_text("{}")
    (tmp_path / "reg.yaml").write_bytes(b"\xff\xfe\x00binary")
    for name, expected in (
        ("reg.json", ".yaml, .yml or .csv"),
        ("reg.yaml", "not UTF-8"),
        ("nope.yaml", "no such"),
    ):
        with pytest.raises(RegistryFileError) as caught:
            parse_file(tmp_path / name)
        assert expected in str(caught.value.errors[0])


def test_key_referring_to_undefined_team_is_refused(session: Session, fingerprinter: Fingerprinter) -> None:
    parsed = parse_yaml("keys:\n  - name: orphan\n    team: nowhere\n")
    with pytest.raises(UnknownTeam):
        apply_import(session, parsed, fingerprinter)


def test_status_and_tags_survive(session: Session, fingerprinter: Fingerprinter) -> None:
    apply_import(
        session, parse_yaml("keys:\n  - name: k\n    status: compromised\n    tags: [a, b]\n"), fingerprinter
    )
    key = session.scalars(select(Key)).one()
    assert key.status is KeyStatus.COMPROMISED and key.tags == ["a", "b"]


def test_control_characters_are_refused() -> None:
    with pytest.raises(RegistryFileError) as caught:
        parse_yaml('keys:\n  - name: "nul\\0byte"\n')
    assert caught.value.errors[0].field == "name"
    assert "control characters" in caught.value.errors[0].message
