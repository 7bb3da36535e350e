"""Golden files for each template over fixed timelines (tests/postmortem_cases.py), on SQLite and PostgreSQL.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_postmortem_golden.py``.
Drills are drafted and labelled like any incident; they never go to managers (S's delivery enforces that),
but their summary is still rendered labelled, so a leak of one would say what it is.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.db.session import Database
from bot.postmortems.service import draft_postmortem, manager_summary
from bot.postmortems.templating import render
from tests.postmortem_cases import BUILDERS, CASES
from tests.test_postmortem_templates import digest_context

GOLDEN = Path(__file__).parent / "golden" / "postmortems"
NOW = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden {path}; run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.mark.parametrize("case", CASES)
def test_postmortem_and_manager_summary_match_their_golden_files(database: Database, case: str) -> None:
    built = BUILDERS[case](database)
    draft = draft_postmortem(database, built.incident_id, llm=False, save=False, now=NOW)
    check_golden(f"{case}.postmortem.md", draft.markdown)
    check_golden(f"{case}.manager_summary.md", manager_summary(database, built.incident_id).text)
    assert draft.path is None and not draft.used_llm
    assert ("DRILL" in draft.markdown.split("\n", 1)[0]) is (case == "drill")


def test_the_weekly_digest_matches_its_golden_file() -> None:
    check_golden("weekly_digest.md", render("weekly_digest.md.j2", digest_context()).text)
