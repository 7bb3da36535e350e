"""Issue 10 findings 3 and 4: an import owns ownership, keybot owns operational state, and `--dry-run`
is the real import's validation, reporting every problem at once. Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.db.session import Database
from bot.incidents.models import TimelineEvent
from bot.incidents.service import open_incident
from bot.registry.fingerprint import Fingerprinter
from bot.registry.importer import parse_file, read_yaml
from bot.registry.models import Key, KeyStatus, Setting
from bot.registry.store import ImportRefused, apply_import
from tests.test_cli import keybot

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "runbooks" / "examples" / "registry.yaml"
ROTATED_AT = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
NEW_FINGERPRINT = "ab" * 32


def _key(session: Session, name: str) -> Key:
    return session.scalars(select(Key).where(Key.name == name)).one()


def _rotate_and_compromise(session: Session) -> None:
    """What keybot writes during incidents: one key rotated, another compromised."""
    session.execute(
        update(Key)
        .where(Key.name == "payments-openai-prod")
        .values(
            provider_key_id="key_NEWafterRotation",
            fingerprint=NEW_FINGERPRINT,
            secret_family="sk-proj-",
            secret_last4="N3wK",
            last_rotated_at=ROTATED_AT,
        )
    )
    session.execute(
        update(Key).where(Key.name == "search-embeddings-prod").values(status=KeyStatus.COMPROMISED)
    )
    session.flush()
    session.expire_all()


def test_reimport_keeps_status_and_fingerprint_keybot_recorded(
    session: Session, fingerprinter: Fingerprinter
) -> None:
    apply_import(session, parse_file(EXAMPLE), fingerprinter)
    session.execute(
        update(Key)
        .where(Key.name == "search-embeddings-prod")
        .values(status=KeyStatus.COMPROMISED, fingerprint=NEW_FINGERPRINT)
    )
    changed = EXAMPLE.read_text().replace("owners: [U07CAROL03]", "owners: [U07NEWOWN1]", 1)
    summary = apply_import(session, read_yaml(changed), fingerprinter)
    assert summary.keys_updated == 6 and summary.state_overridden == 0
    key = _key(session, "search-embeddings-prod")
    assert key.status is KeyStatus.COMPROMISED  # the file states no status: keybot's stands
    assert key.fingerprint == NEW_FINGERPRINT  # nor a fingerprint
    assert key.owner_ids() == ["U07NEWOWN1"]  # but ownership is the file's


def test_reimport_after_rotation_shows_the_diff_and_changes_nothing(
    session: Session, fingerprinter: Fingerprinter
) -> None:
    apply_import(session, parse_file(EXAMPLE), fingerprinter)
    _rotate_and_compromise(session)
    stale = EXAMPLE.read_text().replace("owners: [U07ALICE01]", "owners: [U07NEWOWN1]", 1)
    stale = stale.replace(
        "  - name: search-embeddings-prod\n", "  - name: search-embeddings-prod\n    status: active\n"
    )
    with pytest.raises(ImportRefused) as refused:
        apply_import(session, read_yaml(stale, "registry.yaml"), fingerprinter)
    changes = {(c.key, c.field): c for c in refused.value.changes}
    assert set(changes) == {
        ("payments-openai-prod", "provider_key_id"),
        ("payments-openai-prod", "redacted"),
        ("payments-openai-prod", "last_rotated"),
        ("search-embeddings-prod", "status"),
    }
    provider_id = changes[("payments-openai-prod", "provider_key_id")]
    assert provider_id.line == 18
    assert str(provider_id) == (
        "line 18: payments-openai-prod: provider_key_id: keybot has key_NEWafterRotation, "
        "the file says key_pay9Xq2LmN4sT7vW"
    )
    assert "keybot has compromised, the file says active" in str(
        changes[("search-embeddings-prod", "status")]
    )
    assert refused.value.errors == [] and "--force" in str(refused.value)
    session.expire_all()
    key = _key(session, "payments-openai-prod")
    assert key.provider_key_id == "key_NEWafterRotation" and key.last_rotated_at == ROTATED_AT
    assert key.redacted == "sk-proj-...N3wK" and key.owner_ids() == ["U07ALICE01"]
    assert _key(session, "search-embeddings-prod").status is KeyStatus.COMPROMISED


def test_force_applies_the_file_and_records_it(session: Session, fingerprinter: Fingerprinter) -> None:
    apply_import(session, parse_file(EXAMPLE), fingerprinter)
    _rotate_and_compromise(session)
    key_id = _key(session, "payments-openai-prod").id
    incident = open_incident(session, key_id=key_id, title="leak", opened_by="U07ALICE01", reason="test")
    summary = apply_import(session, parse_file(EXAMPLE), fingerprinter, force=True, actor="cli:ops@host")
    assert summary.state_overridden == 3
    key = _key(session, "payments-openai-prod")
    assert key.provider_key_id == "key_pay9Xq2LmN4sT7vW" and key.redacted == "sk-proj-...Xy9Q"
    forced = session.scalars(
        select(TimelineEvent).where(
            TimelineEvent.incident_id == incident.id, TimelineEvent.kind == "registry.import.forced"
        )
    ).one()
    assert forced.actor == "cli:ops@host"
    assert forced.data["fields"]["provider_key_id"] == {
        "from": "key_NEWafterRotation",
        "to": "key_pay9Xq2LmN4sT7vW",
    }


def test_new_keys_take_their_initial_state_from_the_file(
    session: Session, fingerprinter: Fingerprinter
) -> None:
    apply_import(session, read_yaml("keys:\n  - name: k\n    status: revoked\n"), fingerprinter)
    assert _key(session, "k").status is KeyStatus.REVOKED


BAD_AND_UNKNOWN_TEAM = """\
teams:
  - name: payments
keys:
  - name: good
    team: payments
  - name: orphan
    team: nowhere
  - name: typo
    enviroment: production
"""


@pytest.mark.parametrize("dry_run", [True, False])
def test_dry_run_and_import_report_every_problem_in_one_pass(
    session: Session, fingerprinter: Fingerprinter, dry_run: bool
) -> None:
    with pytest.raises(ImportRefused) as refused:
        apply_import(session, read_yaml(BAD_AND_UNKNOWN_TEAM, "f.yaml"), fingerprinter, dry_run=dry_run)
    assert [str(e) for e in refused.value.errors] == [
        "line 7: team: unknown team 'nowhere' (define it under `teams:`)",
        "line 9: enviroment: unknown field",
    ]
    assert session.scalar(select(func.count(Key.id))) == 0


def test_dry_run_writes_nothing(session: Session, fingerprinter: Fingerprinter) -> None:
    summary = apply_import(session, parse_file(EXAMPLE), fingerprinter, dry_run=True)
    assert (summary.keys_created, summary.teams_created) == (6, 3)
    assert session.scalar(select(func.count(Key.id))) == 0
    assert session.get(Setting, "fingerprint_key_check") is None


def test_cli_dry_run_refuses_what_import_refuses(database: Database, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_AND_UNKNOWN_TEAM)
    for args in (["--dry-run"], []):
        result = keybot(database.url, "registry", "import", *args, str(bad), cwd=tmp_path)
        assert result.returncode == 2, result.stdout
        assert f"{bad}: line 7: team: unknown team 'nowhere'" in result.stderr
        assert f"{bad}: line 9: enviroment: unknown field" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.cli_surface
def test_cli_refuses_a_rollback_until_forced(database: Database, tmp_path: Path) -> None:
    assert keybot(database.url, "registry", "import", str(EXAMPLE), cwd=tmp_path).returncode == 0
    with database.session() as session:
        _rotate_and_compromise(session)
    for args in (["--dry-run"], []):
        refused = keybot(database.url, "registry", "import", *args, str(EXAMPLE), cwd=tmp_path)
        assert refused.returncode == 2
        assert "line 18: payments-openai-prod: provider_key_id: keybot has key_NEWafterRotation" in (
            refused.stderr
        )
        assert "--force" in refused.stderr
    with database.session() as session:
        assert _key(session, "payments-openai-prod").provider_key_id == "key_NEWafterRotation"
    forced = keybot(database.url, "registry", "import", "--force", str(EXAMPLE), cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "3 change(s) to state keybot owns applied" in forced.stdout
    with database.session() as session:
        assert _key(session, "payments-openai-prod").provider_key_id == "key_pay9Xq2LmN4sT7vW"
