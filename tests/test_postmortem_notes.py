"""Notes on an incident's timeline, which the postmortem draft is redrawn from: the incident's people add
them from Slack ("Add a note…" on the draft and on the incident header) or the CLI; anyone else is refused
and nothing is written; secrets in a note are redacted before they are stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.access.policy import NotAllowed, Policy, Roster
from bot.cli import main
from bot.cli.context import CliError, runtime
from bot.cli.identity import cli_identity
from bot.config import get_settings
from bot.db.migrate import upgrade
from bot.db.session import Database
from bot.incidents.models import TimelineEvent, reference_for
from bot.postmortems.notes import add_note
from bot.postmortems.service import draft_postmortem
from bot.runbooks.refusals import RunRefused
from bot.slack import ids
from tests import postmortem_cases as cases
from tests.fakes import canary_key
from tests.slack_world import SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import block_actions_body, view_submission_body
from tests.test_postmortem_slack import open_incident
from tests.world import World

POLICY = Policy(Roster(admins=frozenset({"U0ADMIN01"})))
STRANGER = "U0STRANGE"


def notes(database: Database, incident_id: int) -> list[str]:
    with database.session() as session:
        rows = session.scalars(
            select(TimelineEvent.data).where(
                TimelineEvent.incident_id == incident_id, TimelineEvent.kind == "note.added"
            )
        )
        return [str(data["text"]) for data in rows]


def events(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(TimelineEvent)) or 0)


def test_the_incidents_people_add_notes_that_the_draft_shows_and_strangers_change_nothing(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYBOT_STATE_DIR", str(tmp_path))
    case = cases.staged(database)
    canary = canary_key()
    add_note(database, case.incident_id, cases.OWNER, f"the key was also in ci.env: {canary}", policy=POLICY)
    (stored,) = notes(database, case.incident_id)
    assert (
        canary not in stored
        and canary[14:40] not in stored
        and stored.startswith("the key was also in ci.env")
    )
    draft = draft_postmortem(database, case.incident_id, llm=False, save=False)
    assert "the key was also in ci.env" in draft.markdown and canary[14:40] not in draft.markdown
    before = events(database)
    with pytest.raises(NotAllowed):
        add_note(database, case.incident_id, STRANGER, "I was here", policy=POLICY)
    for text in ("", "   \n\t"):
        with pytest.raises(RunRefused, match="needs some text"):
            add_note(database, case.incident_id, cases.OWNER, text, policy=POLICY)
    with pytest.raises(RunRefused, match="no incident INC-09999"):
        add_note(database, 9999, cases.OWNER, "x", policy=POLICY)
    assert events(database) == before


@pytest.fixture
def sw(world: World, slack_standin: SlackStandin) -> Iterator[SlackWorld]:
    with serving(world, slack_standin) as served:
        yield served


def submit(sw: SlackWorld, incident_id: int, user: str, text: str) -> dict[str, object]:
    state = {ids.NOTE_BLOCK: {ids.NOTE_ACTION: {"type": "plain_text_input", "value": text}}}
    meta = ids.ActionRef(kind="incident", id=str(incident_id)).encode()
    response = sw.post(view_submission_body(ids.NOTE_MODAL, state, private_metadata=meta, user_id=user))
    assert response.status == 200
    return dict(response.json())


def test_add_a_note_in_slack_opens_the_form_and_records_it_for_the_incidents_people(sw: SlackWorld) -> None:
    incident_id = open_incident(sw.world.database)
    value = ids.ActionRef(kind="incident", id=str(incident_id)).encode()
    body = block_actions_body(
        ids.ADD_NOTE, value, user_id=cases.OWNER, response_url=sw.slack.response_url("x")
    )
    assert sw.post(body).status == 200
    sw.wait(lambda: bool(sw.slack.calls_to("views.open")), what="the note form")
    (opened,) = sw.slack.calls_to("views.open")
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == ids.NOTE_MODAL and "INC-00045" in json.dumps(view)
    assert submit(sw, incident_id, cases.OWNER, "rotated the CI secret too") == {"response_action": "clear"}
    assert notes(sw.world.database, incident_id) == ["rotated the CI secret too"]
    refused = submit(sw, incident_id, STRANGER, "me too")
    assert refused["response_action"] == "errors" and "may" in json.dumps(refused)
    assert notes(sw.world.database, incident_id) == ["rotated the CI secret too"]


def test_keybot_incidents_note_from_the_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    upgrade(database.engine)
    case = cases.staged(database)
    monkeypatch.setenv("DATABASE_URL", database.url)
    monkeypatch.setenv("KEYBOT_ADMINS", cli_identity())
    get_settings.cache_clear()
    runtime.cache_clear()
    try:
        reference = reference_for(case.incident_id)
        result = CliRunner().invoke(main.app, ["incidents", "note", reference, "paged the vendor at 09:20"])
        assert result.exit_code == 0 and f"note added to {reference}" in result.stdout, result.output
        assert notes(database, case.incident_id) == ["paged the vendor at 09:20"]
        missing = CliRunner().invoke(main.app, ["incidents", "note", "INC-9999", "x"])
        assert isinstance(missing.exception, CliError) and "no incident INC-09999" in str(missing.exception)
    finally:
        runtime.cache_clear()
        database.dispose()
