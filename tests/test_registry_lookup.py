from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from bot.registry.fingerprint import Fingerprinter, FingerprintKeyMismatch
from bot.registry.importer import parse_yaml
from bot.registry.service import KeyFilter, MatchedBy, list_keys, lookup
from bot.registry.store import apply_import
from tests.fakes import openai_project_key, openai_service_account_key

EXAMPLE = Path(__file__).resolve().parents[1] / "runbooks" / "examples" / "registry.yaml"


@pytest.fixture
def loaded(session: Session, fingerprinter: Fingerprinter) -> tuple[Session, Fingerprinter, str]:
    secret = openai_project_key()
    extra = f"""
  - name: registered-by-secret
    provider: openai
    provider_key_id: key_regSecret000001
    secret: {secret}
    team: search
    owners: [U07CAROL03]
  - name: same-tail-other-key
    provider: openai
    redacted: sk-proj-...{secret[-4:]}
    team: search
"""
    apply_import(session, parse_yaml(EXAMPLE.read_text() + extra), fingerprinter)
    return session, fingerprinter, secret


def test_by_name_case_insensitive(loaded: tuple[Session, Fingerprinter, str]) -> None:
    session, fp, _ = loaded
    result = lookup(session, "  Payments-OpenAI-Prod ", fp)
    assert result.matched_by is MatchedBy.NAME and result.unique is not None
    assert result.unique.name == "payments-openai-prod"


def test_by_keybot_id_and_provider_id(loaded: tuple[Session, Fingerprinter, str]) -> None:
    session, fp, _ = loaded
    assert lookup(session, "#3", fp).matched_by is MatchedBy.KEYBOT_ID
    result = lookup(session, "key_src5Tn2WqE8yU4kD", fp)
    assert result.matched_by is MatchedBy.PROVIDER_ID and result.unique is not None
    assert result.unique.name == "search-embeddings-prod"


def test_by_redacted_value_family_prefix(loaded: tuple[Session, Fingerprinter, str]) -> None:
    session, fp, _ = loaded
    for typed in ("sk-...Xy9Q", "sk-proj-...Xy9Q", "sk-proj-…Xy9Q", "sk-proj-****Xy9Q"):
        result = lookup(session, typed, fp)
        assert result.matched_by is MatchedBy.REDACTED, typed
        assert [k.name for k in result.matches] == ["payments-openai-prod"], typed
    assert lookup(session, "sk-svcacct-...Xy9Q", fp).matches == []


def test_pasted_secret_matches_by_fingerprint(loaded: tuple[Session, Fingerprinter, str]) -> None:
    session, fp, secret = loaded
    result = lookup(session, f"  {secret}\n", fp)
    assert result.matched_by is MatchedBy.FINGERPRINT and result.query_was_secret
    assert result.unique is not None and result.unique.name == "registered-by-secret"


def test_ambiguous_redacted_returns_all_candidates(loaded: tuple[Session, Fingerprinter, str]) -> None:
    session, fp, secret = loaded
    result = lookup(session, f"sk-...{secret[-4:]}", fp)
    assert result.ambiguous
    assert sorted(k.name for k in result.matches) == ["registered-by-secret", "same-tail-other-key"]


def test_unregistered_secret_falls_back_to_redacted_and_gives_no_suggestions(
    loaded: tuple[Session, Fingerprinter, str],
) -> None:
    session, fp, _ = loaded
    stranger = openai_service_account_key()
    result = lookup(session, stranger, fp)
    assert result.matches == [] and result.query_was_secret and result.suggestions == []


def test_miss_suggests_close_names(loaded: tuple[Session, Fingerprinter, str]) -> None:
    session, fp, _ = loaded
    result = lookup(session, "paymnts-openai-prd", fp)
    assert result.matches == []
    assert result.suggestions[0] == "payments-openai-prod"


def test_hostile_and_empty_queries(loaded: tuple[Session, Fingerprinter, str]) -> None:
    session, fp, _ = loaded
    for query in ("", "   ", "%", "_", "' OR 1=1 --", "x" * 100_000, "\x00\x01", "<!channel>"):
        result = lookup(session, query, fp)
        assert result.matches == [], query[:20]


def test_list_filters(loaded: tuple[Session, Fingerprinter, str]) -> None:
    session, _, _ = loaded
    assert {k.name for k in list_keys(session, KeyFilter(team="payments"))} == {
        "payments-openai-prod",
        "payments-openai-staging",
    }
    assert {k.name for k in list_keys(session, KeyFilter(owner="U07ERIN005"))} == {
        "platform-ci-deploy-token",
        "platform-stripe-live",
    }
    assert {k.name for k in list_keys(session, KeyFilter(environment="development"))} == {
        "search-reranker-dev"
    }
    overdue = [k.name for k in list_keys(session, KeyFilter(due_within_days=0))]
    assert "payments-openai-staging" in overdue and "search-reranker-dev" not in overdue


def test_changed_fingerprint_key_is_refused(loaded: tuple[Session, Fingerprinter, str]) -> None:
    session, _, _ = loaded
    with pytest.raises(FingerprintKeyMismatch):
        Fingerprinter(b"another-key-another-key-another-key!!").verify_against(session)
