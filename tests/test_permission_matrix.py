"""The permission matrix, through the real Slack surface: every decision × every kind of person.

Each cell gets its own key and a run put in the state the decision applies to, then one signed
`block_actions` or forged `view_submission` request from that person. Exactly the expected cells change
the run; every other cell is refused with a reason naming who may, and changes no row of that key's runs,
steps, incident, timeline, lock, registry row or outbox (compared before and after).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from bot.incidents.models import Incident, TimelineEvent
from bot.notifications.models import Notification
from bot.registry.models import Key
from bot.runbooks import service
from bot.runbooks.models import KeyLock, Run, RunStatus, RunStep, StepStatus
from bot.slack import ids
from tests.slack_world import SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import block_actions_body, view_submission_body
from tests.world import POLICY, World, unique_name

OUTSIDER, OTHER_OWNER, STARTER = "U0OUTSID1", "U0OTHER01", "U0STARTR1"
OWNER, BACKUP, REVOKER, ADMIN = "U0OWNER01", "U0BACKUP1", "U0SECOND1", "U0ADMIN01"
CONTACT = "U0CONSUME1"  # the contact of the key's one consumer
PEOPLE = {
    "outsider": OUTSIDER,
    "another team's owner": OTHER_OWNER,
    "starter": STARTER,
    "owner": OWNER,
    "backup": BACKUP,
    "revoker": REVOKER,
    "admin": ADMIN,
    "consumer's contact": CONTACT,
}
STAFF = {"owner", "backup", "revoker", "admin"}
MATRIX: dict[str, set[str]] = {
    "start": STAFF,
    "rotate": STAFF,
    "approve": STAFF,
    "retry": STAFF | {"starter"},
    "skip": STAFF | {"starter"},
    "skip safety step": {"owner", "admin"},
    "mark done": STAFF | {"starter"},
    "mark done safety step": {"owner", "admin"},
    "abort": STAFF | {"starter"},
    "resolve": STAFF,
    "false alarm": STAFF,
    "revoke now": STAFF | {"starter"},
    "wait longer": STAFF | {"starter"},
    "redeployed": STAFF | {"starter", "consumer's contact"},
}
"""Who may do what (revokers configured: U0SECOND1; admins: U0ADMIN01; the key owned by U0OWNER01)."""


@pytest.fixture
def sw(world: World, slack_standin: SlackStandin) -> Iterator[SlackWorld]:
    with serving(world, slack_standin, revokers=REVOKER, admins=ADMIN) as served:
        served.world.add_key(unique_name("other"), "production", owner=OTHER_OWNER, backup="U0OTHERBK")
        yield served


def snapshot(world: World, key_id: int) -> str:
    """Every row that belongs to the key, as text: equal before and after means nothing changed."""
    with world.database.session() as session:
        runs = session.scalars(select(Run).where(Run.key_id == key_id)).all()
        run_ids = [r.id for r in runs]
        incident_ids = [r.incident_id for r in runs if r.incident_id is not None]
        rows: list[Any] = [session.get(Key, key_id), session.get(KeyLock, key_id), *runs]
        rows += session.scalars(select(RunStep).where(RunStep.run_id.in_(run_ids))).all()
        rows += session.scalars(select(Incident).where(Incident.id.in_(incident_ids))).all()
        rows += session.scalars(
            select(TimelineEvent).where(TimelineEvent.incident_id.in_(incident_ids))
        ).all()
        rows += session.scalars(select(Notification).where(Notification.run_id.in_(run_ids))).all()
        return json.dumps(
            [
                {c.name: str(getattr(r, c.key, None)) for c in r.__table__.columns} if r is not None else None
                for r in rows
            ],
            sort_keys=True,
        )


@dataclass
class Cell:
    key_id: int
    run_id: str | None
    request: str  # the signed body
    asynchronous: bool  # a button (answered later through response_url) or a modal (answered at once)


def put_run(
    world: World,
    environment: str,
    status: RunStatus,
    step: str,
    step_status: StepStatus,
    output: dict[str, Any] | None = None,
) -> Cell:
    """A run on a new key, started by STARTER, paused at `step` (earlier steps done)."""
    key_id = world.add_key(unique_name("cell"), environment)
    run_id = service.start_run(
        world.database, world_runbooks(), policy=POLICY, key_id=key_id, runbook="revoke-replace-audit-notify",
        mode="staged", actor=ADMIN, reason="matrix",
    )  # fmt: skip
    with world.database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.initiated_by, run.status, run.version = STARTER, status, 5
        reached = False
        for s in run.steps:
            if s.name == step:
                s.status, reached = step_status, True
                s.output = output or {}
            elif not reached:
                s.status = StepStatus.SUCCEEDED
        if status is RunStatus.ABORTED:
            run.finished_at = run.created_at
            session.query(KeyLock).filter(KeyLock.key_id == key_id).delete()
    return Cell(key_id, run_id, "", False)


def world_runbooks() -> Any:
    from tests.world import RUNBOOKS

    return RUNBOOKS


def button(action: str, value: str, user: str, sw: SlackWorld) -> str:
    return block_actions_body(action, value, user_id=user, response_url=sw.slack.response_url(user))


def modal(callback: str, block: str, action: str, text: str, meta: ids.ActionRef, user: str) -> str:
    state = {block: {action: {"type": "plain_text_input", "value": text}}}
    return view_submission_body(callback, state, private_metadata=meta.encode(), user_id=user)


def build(decision: str, user: str, sw: SlackWorld) -> Cell:
    w = sw.world
    if decision == "start":
        key_id = w.add_key(unique_name("cell"), "production")
        state = {
            ids.MODE_BLOCK: {
                ids.MODE_ACTION: {"type": "radio_buttons", "selected_option": {"value": "staged"}}
            },
            ids.REASON_BLOCK: {ids.REASON_ACTION: {"type": "plain_text_input", "value": "leaked"}},
        }
        meta = ids.ActionRef(kind="key", id=str(key_id)).encode()
        return Cell(
            key_id,
            None,
            view_submission_body(ids.REVOKE_MODAL, state, private_metadata=meta, user_id=user),
            False,
        )
    if decision == "rotate":
        key_id = w.add_key(unique_name("cell"), "production")
        return Cell(
            key_id,
            None,
            button(ids.ROTATE_NOW, ids.ActionRef(kind="key", id=str(key_id)).encode(), user, sw),
            True,
        )
    if decision == "approve":
        cell = put_run(
            w, "production", RunStatus.AWAITING_APPROVAL, "revoke_old", StepStatus.AWAITING_APPROVAL
        )
        cell.request = button(ids.APPROVE, ids.run_ref(cell.run_id or "", "revoke_old", 5).encode(), user, sw)
        cell.asynchronous = True
        return cell
    if decision == "retry":
        cell = put_run(w, "production", RunStatus.NEEDS_ATTENTION, "mint", StepStatus.NEEDS_ATTENTION)
        cell.request = button(ids.RETRY, ids.run_ref(cell.run_id or "", "mint", 5).encode(), user, sw)
        cell.asynchronous = True
        return cell
    if decision in ("skip", "skip safety step"):
        step = "mint" if decision == "skip" else "revoke_old"
        cell = put_run(w, "staging", RunStatus.NEEDS_ATTENTION, step, StepStatus.NEEDS_ATTENTION)
        meta = ids.run_ref(cell.run_id or "", step, 5)
        cell.request = modal(
            ids.SKIP_MODAL, ids.SKIP_REASON_BLOCK, ids.SKIP_REASON_ACTION, "by hand", meta, user
        )
        return cell
    if decision in ("mark done", "mark done safety step"):
        step = "mint" if decision == "mark done" else "revoke_old"
        cell = put_run(w, "staging", RunStatus.WAITING_MANUAL, step, StepStatus.WAITING_MANUAL)
        meta = ids.run_ref(cell.run_id or "", step, 5)
        cell.request = modal(ids.DONE_MODAL, ids.DONE_NOTE_BLOCK, ids.DONE_NOTE_ACTION, "did it", meta, user)
        return cell
    if decision in ("revoke now", "wait longer"):
        asked = {"instructions": "2 consumer(s) have not confirmed", "decide": True}
        cell = put_run(
            w, "production", RunStatus.WAITING_MANUAL, "distribute", StepStatus.WAITING_MANUAL, asked
        )
        action = ids.REVOKE_NOW if decision == "revoke now" else ids.WAIT_LONGER
        cell.request = button(action, ids.run_ref(cell.run_id or "", "distribute", 5).encode(), user, sw)
        cell.asynchronous = True
        return cell
    if decision == "redeployed":
        waiting = {"waiting": "waiting for 1 of 1 consumer(s)"}
        cell = put_run(w, "production", RunStatus.WAITING, "distribute", StepStatus.WAITING, waiting)
        with w.database.session() as session:
            key = session.get(Key, cell.key_id)
            assert key is not None
            consumer = key.consumers[0].name
        ref = ids.ActionRef(kind="run", id=cell.run_id or "", step="distribute", extra={"consumer": consumer})
        cell.request = button(ids.REDEPLOYED, ref.encode(), user, sw)
        cell.asynchronous = True
        return cell
    if decision == "abort":
        cell = put_run(w, "production", RunStatus.NEEDS_ATTENTION, "mint", StepStatus.NEEDS_ATTENTION)
        meta = ids.ActionRef(kind="run", id=cell.run_id or "")
        cell.request = modal(
            ids.ABORT_MODAL, ids.ABORT_REASON_BLOCK, ids.ABORT_REASON_ACTION, "oops", meta, user
        )
        return cell
    cell = put_run(w, "production", RunStatus.ABORTED, "mint", StepStatus.NEEDS_ATTENTION)
    with w.database.session() as session:
        run = session.get(Run, cell.run_id)
        assert run is not None and run.incident_id is not None
        incident_id = run.incident_id
    as_ = "false_alarm" if decision == "false alarm" else "resolve"
    meta = ids.ActionRef(kind="incident", id=str(incident_id), extra={"as": as_})
    cell.request = modal(
        ids.INCIDENT_MODAL, ids.INCIDENT_REASON_BLOCK, ids.INCIDENT_REASON_ACTION, "ok", meta, user
    )
    return cell


def settle(sw: SlackWorld, user: str, before: str, key_id: int, asynchronous: bool) -> str:
    """For a button: wait until the person was answered or the key's rows changed."""
    if not asynchronous:
        return snapshot(sw.world, key_id)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = snapshot(sw.world, key_id)
        if now != before or sw.slack.response_posts.get(user):
            time.sleep(0.2)  # a refusal is answered after nothing was written; give a write time to show
            return snapshot(sw.world, key_id)
        time.sleep(0.05)
    raise AssertionError(f"no answer for {user}")


def reply_text(sw: SlackWorld, user: str, response: Any) -> str:
    return json.dumps(sw.slack.response_posts.get(user, [])) + response.text


@pytest.mark.parametrize("decision", sorted(MATRIX))
def test_exactly_the_expected_cells_are_allowed(sw: SlackWorld, decision: str) -> None:
    allowed_roles = MATRIX[decision]
    for role, user in PEOPLE.items():
        sw.slack.response_posts.pop(user, None)
        cell = build(decision, user, sw)
        before = snapshot(sw.world, cell.key_id)
        response = sw.post(cell.request)
        assert response.status == 200, response.text
        after = settle(sw, user, before, cell.key_id, cell.asynchronous)
        if role in allowed_roles:
            assert after != before, (
                f"{decision} by {role} should have been applied: {reply_text(sw, user, response)}"
            )
        else:
            assert after == before, f"{decision} by {role} changed rows"
            said = reply_text(sw, user, response)
            assert "may" in said.lower() or "two-person" in said.lower(), (decision, role, said)


REFUSALS: dict[str, Callable[..., Any]] = {}
