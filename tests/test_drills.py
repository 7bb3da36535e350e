"""Drills are drills from the first screen (issue 10, finding 6), through the real Slack app and sandbox,
on SQLite and PostgreSQL:

- the modal says DRILL from its title on, and its incident is `DRILL-n`, never a real `INC-n` number;
- a drill of a production key stops for a second person's approval, labelled as a drill approval;
- drill copies never show in registry lists, exports, lookups, suggestions or rotation-due lists;
- only the starter is messaged, each message labelled with whom it would have gone to;
- when the drill ends (succeeded or aborted) its copy key, sandbox key and Vault secret are gone,
  while the run and the incident timeline stay.
"""

from __future__ import annotations

import json
from typing import Any

import hvac.exceptions
import pytest
from sqlalchemy import select

from bot.incidents.lifecycle import parse_reference
from bot.incidents.models import Incident, TimelineEvent
from bot.incidents.service import open_incident
from bot.notifications.models import Notification
from bot.registry.export import export_records
from bot.registry.models import Key, KeyStatus
from bot.registry.service import KeyFilter, list_keys, lookup, suggest
from bot.runbooks.models import Run, RunStatus
from bot.sandbox.sandbox import Sandbox
from bot.slack import ids
from bot.slack.blocks.progress import progress_message
from tests.slack_world import SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import block_actions_body, view_submission_body
from tests.world import World, unique_name

STARTER, SECOND = "U0ONCALL1", "U0SECOND1"
OWNER, BACKUP, MANAGER, CONSUMER = "U0OWNER01", "U0BACKUP1", "U0MANAGER1", "U0CONSUME1"


def _drill_body(key_id: int, user: str = STARTER) -> str:
    state = {
        ids.MODE_BLOCK: {ids.MODE_ACTION: {"type": "radio_buttons", "selected_option": {"value": "staged"}}},
        ids.REASON_BLOCK: {ids.REASON_ACTION: {"type": "plain_text_input", "value": "quarterly drill"}},
    }
    meta = ids.ActionRef(kind="key", id=str(key_id), extra={"drill": "1"}).encode()
    return view_submission_body(ids.REVOKE_MODAL, state, private_metadata=meta, user_id=user)


def _start_drill(sw: SlackWorld, key_id: int) -> Run:
    response = sw.post(_drill_body(key_id))
    assert response.json() == {"response_action": "clear"}, response.text
    sw.wait(lambda: sw.run_status() is RunStatus.AWAITING_APPROVAL, what="the drill to stop for approval")
    return sw.latest_run()


def _texts(view: dict[str, Any]) -> str:
    return json.dumps(view)


def _copy(sw: SlackWorld, run: Run) -> Key:
    with sw.world.database.session() as session:
        key = session.get(Key, run.key_id)
        assert key is not None
        session.expunge(key)
        return key


def _sandbox(sw: SlackWorld) -> Sandbox:
    sandbox = sw.ctx.runtime.__dict__.get("sandbox")
    assert isinstance(sandbox, Sandbox)
    return sandbox


def _vault_has(sandbox: Sandbox, path: str) -> bool:
    mount, _, rest = path.partition("/")
    try:
        sandbox.bao.client().secrets.kv.v2.read_secret_metadata(path=rest, mount_point=mount)
    except hvac.exceptions.InvalidPath:
        return False
    return True


@pytest.fixture
def drill_world(world: World, slack_standin: SlackStandin) -> Any:
    with serving(world, slack_standin) as sw:
        yield sw
        sandbox = sw.ctx.runtime.__dict__.get("sandbox")
        if sandbox is not None:
            sandbox.stop()


def test_a_production_drill_says_so_everywhere_is_approved_and_leaves_nothing_behind(
    drill_world: SlackWorld,
) -> None:
    sw, world = drill_world, drill_world.world
    name = unique_name("drillprod")
    real_id = world.add_key(
        name, "production", consumers=[(f"api-{name}", CONSUMER), (f"job-{name}", CONSUMER)]
    )

    # The first screens: the Loading modal and the form both say DRILL.
    form = sw.ctx.revoke_view_for(STARTER, f"--drill {name}")
    assert form["title"]["text"] == "DRILL: revoke a key"
    assert form["submit"]["text"] == "Start drill"
    assert "Drill: rehearsal on a sandbox copy; nothing real is touched" in _texts(form)
    real_form = sw.ctx.revoke_view_for(STARTER, name)
    assert "DRILL" not in real_form["title"]["text"] and "Drill:" not in _texts(real_form)

    run = _start_drill(sw, real_id)
    assert run.drill and run.step("revoke_old").status.value == "awaiting_approval"
    copy = _copy(sw, run)
    assert copy.drill and copy.id != real_id and copy.environment == "production"
    _, blocks = progress_message(run, copy)
    assert "[DRILL] Drill approval" in json.dumps(blocks)

    with world.database.session() as session:
        incident = session.get(Incident, run.incident_id)
        assert incident is not None and incident.drill
        assert incident.reference == "DRILL-00001" and incident.title.startswith("[DRILL]")
        assert parse_reference("DRILL-00001") == incident.id
        # Drill copies are in no registry view while the drill runs.
        assert copy.name not in [k.name for k in list_keys(session, KeyFilter())]
        assert copy.name not in [k.name for k in list_keys(session, KeyFilter(owner=OWNER))]
        assert copy.name not in [k.name for k in list_keys(session, KeyFilter(due_within_days=100000))]
        assert not lookup(session, copy.name, world.fingerprinter).matches
        assert not lookup(session, f"#{copy.id}", world.fingerprinter).matches
        assert copy.name not in suggest(session, name)
        assert copy.name not in json.dumps(export_records(session), default=str)
        assert [k.id for k in lookup(session, name, world.fingerprinter).matches] == [real_id]
        # A real incident opened after the drill is INC-00001: the drill took no real number.
        real = open_incident(session, key_id=real_id, title="real", opened_by=STARTER, reason="real leak")
        assert real.reference == "INC-00001"

    # The approval is rehearsed: a second person approves, as for the real thing.
    approve = ids.run_ref(run.id, "revoke_old", run.version).encode()
    sw.post(
        block_actions_body(ids.APPROVE, approve, user_id=SECOND, response_url=sw.slack.response_url("ok"))
    )
    sw.wait(lambda: sw.run_status() is RunStatus.SUCCEEDED, what="the drill to succeed")

    # Only the starter is messaged, each message saying whom it would have gone to.
    sw.wait(lambda: _cleaned(sw, run.key_id), what="the drill's cleanup")
    with world.database.session() as session:
        sent = list(session.scalars(select(Notification).where(Notification.run_id == run.id)))
        events = list(
            session.scalars(select(TimelineEvent).where(TimelineEvent.incident_id == run.incident_id))
        )
        real_key = session.get(Key, real_id)
        assert real_key is not None and real_key.status is KeyStatus.ACTIVE
        assert real_key.provider_key_id == world.keys[name]["id"]
    assert sent and {n.recipient for n in sent} == {STARTER}
    labels = [n.body.splitlines()[0] for n in sent]
    for person in (OWNER, BACKUP, MANAGER):
        assert f"(drill: would have gone to @{person})" in labels
    assert labels.count(f"(drill: would have gone to @{CONSUMER})") == 2  # one per consumer
    assert any(label.startswith("(drill: would have gone to #C0TEAM") for label in labels)
    assert all(n.subject.startswith("[DRILL]") for n in sent)
    assert world.openai.authenticates(world.keys[name]["value"])  # the real key was never touched

    # Cleaned up: the copy is retired (kept for the run's history), its sandbox key and secret are gone.
    copy_after = _copy(sw, run)
    assert copy_after.status is KeyStatus.REVOKED and copy_after.fingerprint is None
    assert not copy_after.owners and not copy_after.consumers
    sandbox = _sandbox(sw)
    assert copy.provider_key_id not in sandbox.openai.keys
    assert not {k.name for k in sandbox.openai.keys.values()} & {copy.name}
    assert copy.vault_path is not None and not _vault_has(sandbox, copy.vault_path)
    kinds = [e.kind for e in events]
    assert kinds[-2:] == ["incident.resolved", "drill.cleaned_up"] and "run.succeeded" in kinds


def _cleaned(sw: SlackWorld, key_id: int) -> bool:
    with sw.world.database.session() as session:
        key = session.get(Key, key_id)
        return key is not None and key.fingerprint is None


def test_an_aborted_drill_is_cleaned_up_too(drill_world: SlackWorld) -> None:
    sw, world = drill_world, drill_world.world
    name = unique_name("drillabort")
    real_id = world.add_key(name, "production")
    run = _start_drill(sw, real_id)
    copy = _copy(sw, run)
    sandbox = _sandbox(sw)
    assert copy.provider_key_id in sandbox.openai.keys and copy.vault_path
    assert _vault_has(sandbox, copy.vault_path)

    state = {ids.ABORT_REASON_BLOCK: {ids.ABORT_REASON_ACTION: {"type": "plain_text_input", "value": "done"}}}
    meta = ids.ActionRef(kind="run", id=run.id).encode()
    response = sw.post(view_submission_body(ids.ABORT_MODAL, state, private_metadata=meta, user_id=STARTER))
    assert response.json() == {"response_action": "clear"}, response.text
    sw.wait(lambda: _cleaned(sw, run.key_id), what="the aborted drill's cleanup")

    assert sw.run_status() is RunStatus.ABORTED
    assert copy.provider_key_id not in sandbox.openai.keys
    assert not _vault_has(sandbox, copy.vault_path)
    with world.database.session() as session:
        assert session.scalars(select(Run).where(Run.id == run.id)).one().key_id == copy.id  # history kept
        assert not session.scalars(select(Notification).where(Notification.recipient != STARTER)).all()
