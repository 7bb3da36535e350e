"""The facts behind a draft, from fixed timelines on SQLite and PostgreSQL: timings to the second, people by
role, exposure, exceptions, follow-ups, blaming language; and the draft service around them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.db.base import Base
from bot.db.session import Database
from bot.postmortems import narrative as narrative_module
from bot.postmortems.blame import blaming_phrases
from bot.postmortems.facts import UnknownIncident, build_facts
from bot.postmortems.service import draft_postmortem, manager_summary
from bot.postmortems.types import Narrative
from tests import postmortem_cases as cases
from tests.fakes import canary_key

NOW = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    """The draft service's own behaviour does not depend on the database: these run on SQLite only."""
    database = Database(f"sqlite:///{tmp_path / 'postmortem.db'}")
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def test_staged_timings_people_and_exposure_are_computed_from_the_timeline(database: Database) -> None:
    case = cases.staged(database)
    with database.session() as session:
        facts = build_facts(session, case.incident_id, now=NOW)
    # first sign: the alert at 08:52:00; acknowledged 08:55:30; opened 09:00:00; contained 09:15:06 ...
    assert facts.first_seen_at == datetime(2026, 3, 4, 8, 52, tzinfo=UTC)
    assert facts.timings == {
        "detect": 480.0,
        "acknowledge": 210.0,
        "contain": 1386.0,
        "replace": 1384.0,
        "revoke": 1388.0,
        "verify": 1393.0,
    }
    assert facts.approver == cases.SECOND and facts.mode == "staged" and facts.timezone == "Europe/Paris"
    roles = dict((who, role) for role, who in facts.people)
    assert roles == {
        cases.OWNER: "owner",
        cases.ONCALL: "on-call",
        cases.SECOND: "approver",
        cases.CONSUMER: "consumer contact",
        cases.BACKUP: "backup",
        cases.MANAGER: "manager",
        "keybot": "keybot",
    }
    assert facts.exposure is not None and (facts.exposure.requests, facts.exposure.tokens) == (1250, 360000)
    assert facts.exposure.cost_usd == 4.35 and facts.exposure.baseline_requests == 30.0
    assert facts.exceptions == () and facts.warnings == ()
    engine_lines = [line for line in facts.timeline if "succeeded in" in line.what]
    assert engine_lines and {line.actor for line in engine_lines} == {"keybot"}  # never the person's doing
    assert not any("step.started" in line.what or "effect" in line.what for line in facts.timeline)


def test_emergency_timings_start_at_the_report_when_there_was_no_alert(database: Database) -> None:
    case = cases.emergency(database)
    with database.session() as session:
        facts = build_facts(session, case.incident_id, now=NOW)
    assert facts.timings == {
        "detect": 0.0,
        "acknowledge": 0.0,
        "contain": 40.0,
        "replace": 3900.0,
        "revoke": 45.0,
        "verify": 3908.0,
    }
    assert (
        "Set a rotation policy for pay-prod (no rotation period is recorded)",
        cases.OWNER,
        date(2026, 3, 18),
    ) in [(i.what, i.owner, i.due) for i in facts.follow_ups]


def test_exceptions_hand_marked_steps_and_blaming_notes(database: Database) -> None:
    case = cases.exceptions(database)
    with database.session() as session:
        facts = build_facts(session, case.incident_id, now=NOW)
    assert facts.timings["contain"] is None and facts.timings["verify"] is None  # done by hand, not verified
    assert facts.timings["revoke"] == 662.0
    assert len(facts.exceptions) == 2
    assert "NOT revoked by keybot" in facts.exceptions[0] and "@U0SECOND1" in facts.exceptions[0]
    assert "NOT audited" in facts.exceptions[1] and "usage API down" in facts.exceptions[1]
    due = date(2026, 3, 6)  # two days after the resolve date
    items = {(i.what, i.owner, i.due) for i in facts.follow_ups}
    assert ("Verify “Revoke leaked key”, marked done by hand after it failed", cases.SECOND, due) in items
    assert ("Do or verify “Audit exposure window”, which was skipped", cases.OWNER, due) in items
    assert any("careless" in w and "incident.resolved" in w for w in facts.warnings)
    assert any("should have" in w for w in facts.warnings)
    assert "The console showed the key as disabled at 09:11." in facts.notes


def test_a_false_alarm_has_no_exceptions_and_nothing_contained(database: Database) -> None:
    alarm = cases.false_alarm(database)
    with database.session() as session:
        facts = build_facts(session, alarm.incident_id, now=NOW)
    assert facts.status == "false_alarm" and facts.exceptions == ()
    assert facts.timings["detect"] == 120.0 and facts.timings["acknowledge"] == 60.0
    assert facts.timings["contain"] is None


def test_a_drill_is_labelled(database: Database) -> None:
    drill = cases.drill(database)
    with database.session() as session:
        facts = build_facts(session, drill.incident_id, now=NOW)
    assert facts.reference == "DRILL-00003" and facts.drill and facts.timings["contain"] == 20.0


def test_an_unknown_incident_is_refused(database: Database) -> None:
    with pytest.raises(UnknownIncident, match="no incident INC-00999"), database.session() as session:
        build_facts(session, 999)
    with pytest.raises(UnknownIncident):
        draft_postmortem(database, -7, llm=False)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Bob should have rotated it", ["should have"]),
        ("It was Alice's fault, a careless push", ["Alice's fault", "careless"]),
        (
            "ops FAILED TO notice; human error; mistake by the intern",
            ["FAILED TO", "human error", "mistake by"],
        ),
        ("They didn't bother to check and were negligent", ["didn't bother", "negligent"]),
        ("We blame nobody", ["blame"]),
        ("A blameless review: the push failed; shoulder the load", []),
        ("", []),
    ],
)
def test_blaming_phrases_are_found_on_word_boundaries(text: str, found: list[str]) -> None:
    assert blaming_phrases(text) == found


def test_the_draft_is_saved_under_the_state_dir_or_the_configured_dir(
    sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = cases.staged(sqlite_database)
    draft = draft_postmortem(sqlite_database, case.incident_id, llm=False, now=NOW)
    assert draft.path == tmp_path / "state" / "postmortems" / "INC-00042.md"
    assert draft.path.read_text(encoding="utf-8") == draft.markdown
    monkeypatch.setenv("KEYBOT_POSTMORTEM_DIR", str(tmp_path / "drafts"))
    again = draft_postmortem(sqlite_database, case.incident_id, llm=False, now=NOW)
    assert again.path == tmp_path / "drafts" / "INC-00042.md" and again.markdown == draft.markdown


def test_a_narrative_is_used_labelled_and_checked_for_blame(
    sqlite_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = cases.staged(sqlite_database)
    story = Narrative(
        "A key leaked.",
        "Little.",
        "The on-call should have known.",
        "A gist.",
        ("Quick",),
        ("Slow consumers",),
        ("Quiet hour",),
        "llm:test-model",
    )
    monkeypatch.setattr(
        narrative_module, "narrate", lambda facts, **_: narrative_module.NarrativeResult(story, None)
    )
    draft = draft_postmortem(sqlite_database, case.incident_id, llm=True, save=False, now=NOW)
    assert draft.used_llm and "Draft by llm:test-model — verify before sharing" in draft.markdown
    assert "blaming language in the LLM's root cause: 'should have'" in draft.warnings
    assert "blaming language in the LLM's root cause" in draft.markdown  # the draft carries the warning


@pytest.mark.parametrize("failure", ["problem", "raises"])
def test_without_a_usable_narrative_there_is_still_the_template_draft(
    sqlite_database: Database, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    case = cases.staged(sqlite_database)

    def narrate(facts: object, **_: object) -> narrative_module.NarrativeResult:
        if failure == "raises":
            raise RuntimeError("boom")
        return narrative_module.NarrativeResult(None, "the LLM timed out")

    monkeypatch.setattr(narrative_module, "narrate", narrate)
    draft = draft_postmortem(sqlite_database, case.incident_id, llm=True, save=False, now=NOW)
    plain = draft_postmortem(sqlite_database, case.incident_id, llm=False, save=False, now=NOW)
    assert not draft.used_llm and "Draft by" not in draft.markdown
    assert (
        draft.markdown.replace("## Check before sharing\n\n- " + draft.warnings[0] + "\n\n", "")
        == plain.markdown
    )
    assert ("timed out" if failure == "problem" else "RuntimeError") in draft.warnings[0]


def test_llm_defaults_to_off_without_an_api_key(
    sqlite_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = cases.staged(sqlite_database)
    monkeypatch.setattr(narrative_module, "narrate", lambda *a, **k: pytest.fail("the LLM was called"))
    draft = draft_postmortem(sqlite_database, case.incident_id, save=False, now=NOW)
    assert not draft.used_llm and draft.warnings == ()


def test_secrets_in_stored_rows_never_reach_the_facts_or_the_draft(sqlite_database: Database) -> None:
    """Rows are redacted when written; facts redact again, so even a row written around that stays clean."""
    secret = canary_key()
    case = cases.staged(sqlite_database)
    from bot.incidents import chain
    from bot.incidents.chain import PendingEvent
    from bot.incidents.models import Incident

    with sqlite_database.session() as session:
        incident = session.get(Incident, case.incident_id)
        assert incident is not None
        incident.reason = incident.title = f"leaked {secret}"
        head = chain.head(session, case.incident_id)
        note = PendingEvent("note.added", f"U0OWNER01 {secret}", {"text": f"it was {secret}"}, cases.at(1000))
        chain.write(session, case.incident_id, head, [note])
    with sqlite_database.session() as session:
        facts = build_facts(session, case.incident_id, now=NOW)
    draft = draft_postmortem(sqlite_database, case.incident_id, llm=False, save=False, now=NOW)
    summary = manager_summary(sqlite_database, case.incident_id).text
    for where, text in (("facts", repr(facts)), ("draft", draft.markdown), ("summary", summary)):
        assert secret not in text and secret[-20:] not in text, where
    assert facts.notes[0] == f"it was [REDACTED sk-proj-...{secret[-4:]}]"


def test_an_unregistered_leak_without_a_run_still_gives_a_draft(sqlite_database: Database) -> None:
    """The leak watcher opens incidents with no key and no run: keybot opened it, a person never did."""
    from bot.incidents.service import append_event, open_incident

    with sqlite_database.session() as session:
        incident = open_incident(session, key_id=None, title="Unregistered secret posted in #general",
                                 opened_by="U0POSTER1", reason="leak watcher")  # fmt: skip
        append_event(session, incident.id, "leak.detected", "keybot",
                     {"where": "#general", "redacted": ["sk-proj-...AbCd"]})  # fmt: skip
        incident_id = incident.id
    with sqlite_database.session() as session:
        facts = build_facts(session, incident_id, now=NOW)
    assert facts.key_name is None and facts.mode is None and facts.exposure is None
    assert facts.timings["acknowledge"] is None and facts.timings["detect"] == 0.0
    assert [line.actor for line in facts.timeline] == ["keybot", "keybot"]
    assert [(i.what, i.owner) for i in facts.follow_ups] == [
        ("Find and record the leaked secret's owner in the registry", "U0POSTER1")
    ]
    draft = draft_postmortem(sqlite_database, incident_id, llm=False, save=False, now=NOW)
    assert (
        "unknown (not in the registry)" in draft.markdown
        and "Leak watcher found sk-proj-...AbCd in #general" in draft.markdown
    )
