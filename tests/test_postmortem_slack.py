"""Postmortem delivery through the real Bolt app with signed requests, on SQLite and PostgreSQL: resolving an
incident in Slack uploads `INC-00045-postmortem.md` into the incident's thread with a Regenerate button;
Regenerate by the approver uploads a new version, by a stranger is refused and uploads nothing; a drill's
draft goes only to its starter; the weekly digest is posted with its chart beside it; the manager summary
is rendered from the template with the approver and the exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.access.policy import NotAllowed, Policy, Roster
from bot.db.session import Database
from bot.incidents.lifecycle import close
from bot.incidents.models import Incident, IncidentStatus
from bot.notifications import render
from bot.notifications.models import Notification, NotificationStatus
from bot.notifications.service import Message, deliver_pending, enqueue
from bot.postmortems.jobs import run_digest
from bot.postmortems.regenerate import check_regenerate, regenerate
from bot.postmortems.settings import PostmortemSettings
from bot.runbooks.models import RunStatus, StepStatus
from bot.runbooks.service import start_run
from bot.slack import ids
from bot.slack.api import SlackAPI
from bot.slack.blocks.messages import notification_blocks
from bot.slack.models import RunMessage
from bot.slack.postmortems import PostmortemSender
from tests.postmortem_cases import (
    MANAGER,
    ONCALL,
    OWNER,
    SECOND,
    STAGED,
    _done,
    add_registry,
    write_incident,
)
from tests.slack_world import SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import block_actions_body, view_submission_body
from tests.test_digest import SLOT, fixed_week
from tests.world import POLICY as WORLD_POLICY
from tests.world import RUNBOOKS, World, unique_name

STRANGER = "U0STRANGE"
CHANNEL = "C0PAYMENTS"
RUN_ID = "run-slack-00045"
POLICY = Policy(Roster(admins=frozenset({"U0ADMIN01"})))
"""No revokers: the starter (ONCALL) and the approver (SECOND) may regenerate for those roles alone."""


def open_incident(database: Database, *, drill: bool = False) -> int:
    """An open incident whose run finished with an exception (the audit step skipped) after SECOND approved
    a step; keybot's incident header is in the team channel."""
    key_id = add_registry(database, drill=drill)
    incident_id = -4 if drill else 45
    events: list[tuple[float, str, str, str | None, dict[str, Any]]] = [
        (0, "incident.opened", ONCALL, None, {"title": "Leaked key pay-prod", "reason": "found in CI logs"}),
        (0, "run.started", ONCALL, None, {"runbook": "revoke-replace-audit-notify", "mode": "staged"}),
        (1, "step.succeeded", ONCALL, "identify", {"seconds": 1.0}),
        (5, "step.approved", SECOND, "revoke_old", {"step": "revoke_old"}),
        (20, "step.succeeded", ONCALL, "revoke_old", {"seconds": 15.0}),
        (700, "step.skipped", OWNER, "audit", {"step": "audit", "reason": "usage API down"}),
        (703, "run.finished_with_exceptions", ONCALL, None, {"missing": ["audit skipped"]}),
    ]
    steps = _done(
        STAGED,
        audit=(StepStatus.SKIPPED, {"skip_reason": "usage API down"}),
        revoke_old=(StepStatus.SUCCEEDED, {"approved_by": SECOND}),
    )
    write_incident(
        database, incident_id=incident_id, key_id=key_id, reason="found in CI logs",
        status=IncidentStatus.OPEN, opened=0, resolved=None, contained=None, events=events,
        run=(RUN_ID, "staged", RunStatus.FINISHED_WITH_EXCEPTIONS, steps), drill=drill,
    )  # fmt: skip
    return incident_id


def with_header(sw: SlackWorld) -> str:
    """keybot's incident header, as the progress publisher posts it; returns its ts (the thread)."""
    header = sw.ctx.api.post_message(CHANNEL, "Incident INC-00045")
    with sw.world.database.session() as session:
        session.add(RunMessage(run_id=RUN_ID, channel=header.channel, header_ts=header.ts))
    return header.ts


def resolve(sw: SlackWorld, incident_id: int, user: str = OWNER) -> None:
    state = {
        ids.INCIDENT_REASON_BLOCK: {ids.INCIDENT_REASON_ACTION: {"type": "plain_text_input", "value": "ok"}}
    }
    meta = ids.ActionRef(kind="incident", id=str(incident_id), extra={"as": "resolve"}).encode()
    response = sw.post(view_submission_body(ids.INCIDENT_MODAL, state, private_metadata=meta, user_id=user))
    assert response.status == 200 and response.json() == {"response_action": "clear"}, response.text


def draft_status(database: Database) -> NotificationStatus | None:
    with database.session() as session:
        found = session.scalars(select(Notification.status).where(Notification.kind == "postmortem_draft"))
        return found.first()


def uploads(sw: SlackWorld) -> list[dict[str, Any]]:
    return [c.args for c in sw.slack.calls_to("files.completeUploadExternal")]


def drafts(sw: SlackWorld) -> list[bytes]:
    return [f["data"] for f in sw.slack.files() if str(f.get("name", "")).endswith("-postmortem.md")]


def regenerate_value(sw: SlackWorld, channel: str) -> str:
    """The Regenerate button's value from the message posted under the draft."""
    for message in reversed(sw.slack.messages(channel)):
        for reply in [message, *message.get("replies", [])]:
            for block in reply.get("blocks") or []:
                for element in block.get("elements") or []:
                    if element.get("action_id") == ids.REGENERATE_POSTMORTEM:
                        return str(element["value"])
    found = json.dumps(sw.slack.calls_to("chat.postMessage")[-1].args)
    assert ids.REGENERATE_POSTMORTEM in found
    return str(json.loads(found)["blocks"][-1]["elements"][0]["value"])


def click(sw: SlackWorld, value: str, user: str, channel: str, ts: str) -> None:
    body = block_actions_body(
        ids.REGENERATE_POSTMORTEM, value, user_id=user, channel_id=channel, message_ts=ts,
        response_url=sw.slack.response_url(user),
    )  # fmt: skip
    assert sw.post(body).status == 200


@pytest.fixture
def sw(world: World, slack_standin: SlackStandin) -> Iterator[SlackWorld]:
    with serving(world, slack_standin) as served:
        yield served


def test_resolving_in_slack_uploads_the_draft_into_the_thread_and_regenerate_is_guarded(
    sw: SlackWorld,
) -> None:
    incident_id = open_incident(sw.world.database)
    thread = with_header(sw)
    resolve(sw, incident_id)
    sw.wait(lambda: draft_status(sw.world.database) is NotificationStatus.SENT, what="the draft delivered")
    (upload,) = uploads(sw)
    assert (upload["channel_id"], upload["thread_ts"]) == (CHANNEL, thread)
    (draft,) = drafts(sw)
    assert b"INC-00045" in draft and b"**DRAFT**" in draft
    assert [f["name"] for f in sw.slack.files()] == ["INC-00045-postmortem.md"]
    with sw.world.database.session() as session:
        row = session.scalars(select(Notification).where(Notification.kind == "postmortem_draft")).one()
        assert row.facts["reference"] == "INC-00045" and row.recipient == "incident-thread"
    value = regenerate_value(sw, CHANNEL)
    assert ids.ActionRef.decode(value) == ids.ActionRef(kind="incident", id="45")

    click(sw, value, STRANGER, CHANNEL, thread)
    sw.wait(lambda: bool(sw.slack.response_posts.get(STRANGER)), what="the refusal")
    refusal = json.dumps(sw.slack.response_posts[STRANGER])
    assert "You may not regenerate" in refusal and f"<@{SECOND}>" in refusal
    assert len(drafts(sw)) == 1  # nothing uploaded

    click(sw, value, SECOND, CHANNEL, thread)  # the approver
    # the bytes arrive before files.completeUploadExternal shares them: wait for both
    sw.wait(lambda: len(drafts(sw)) == 2 and len(uploads(sw)) == 2, what="the regenerated draft")
    assert b"INC-00045" in drafts(sw)[1]
    assert [u["thread_ts"] for u in uploads(sw)] == [thread, thread]
    sw.wait(lambda: bool(sw.slack.response_posts.get(SECOND)), what="the answer")
    assert "new version" in json.dumps(sw.slack.response_posts[SECOND])


def test_a_drills_draft_goes_only_to_its_starter(sw: SlackWorld) -> None:
    """Resolved outside Slack (the domain's `close`, as `keybot incidents resolve` does): still delivered."""
    incident_id = open_incident(sw.world.database, drill=True)
    with_header(sw)
    rt = sw.ctx.runtime
    close(rt.database, incident_id, OWNER, "drill over", policy=rt.policy)
    sw.ctx.worker.deliver()
    sw.wait(lambda: len(drafts(sw)) == 1, what="draft")
    (upload,) = uploads(sw)
    assert upload["channel_id"] == "D" + ONCALL[1:] and not upload.get("thread_ts")  # the starter's DM
    assert b"DRILL-00004" in drafts(sw)[0] and b"**DRILL**" in drafts(sw)[0]
    assert not any(m.get("files") for m in sw.slack.messages(CHANNEL))


def sender(slack: SlackStandin, database: Database) -> PostmortemSender:
    api = SlackAPI(slack.bot_token, base_url=slack.base_url, rate_limit_retries=1)
    return PostmortemSender(api, database, render=notification_blocks)


def test_the_digest_is_posted_with_its_chart_beside_it(
    database: Database, slack_standin: SlackStandin
) -> None:
    fixed_week(database)
    settings = PostmortemSettings(digest_channel="C0MANAGERS", digest_timezone="Europe/Paris")
    assert run_digest(database, SLOT, settings) == "2026-W10"
    assert deliver_pending(database, sender(slack_standin, database)) == (1, 0)
    assert run_digest(database, SLOT, settings) is None
    assert deliver_pending(database, sender(slack_standin, database)) == (0, 0)
    (post,) = slack_standin.calls_to("chat.postMessage")
    assert post.args["channel"] == "C0MANAGERS" and "2026-W10" in json.dumps(post.args["blocks"])
    (upload,) = slack_standin.calls_to("files.completeUploadExternal")
    assert upload.args["channel_id"] == "C0MANAGERS" and not upload.args.get("thread_ts")
    (chart,) = slack_standin.files()
    assert chart["name"] == "keybot-digest-2026-W10.png" and chart["data"].startswith(b"\x89PNG")
    assert "DRILL-" not in json.dumps(post.args)


def test_the_manager_summary_names_the_approver_and_the_exception(
    database: Database, slack_standin: SlackStandin
) -> None:
    incident_id = open_incident(database)
    facts = {"manager": MANAGER, "incident": "INC-00045", "key_name": "pay-prod", "environment": "production",
             "mode": "staged", "runbook": "revoke-replace-audit-notify", "actor": ONCALL}  # fmt: skip
    with database.session() as session:
        enqueue(
            session, [Message("manager_summary", MANAGER, "Incident summary INC-00045", "plain body", facts)],
            dedupe_prefix="summary", incident_id=incident_id, run_id=RUN_ID,
        )  # fmt: skip
    assert deliver_pending(database, sender(slack_standin, database)) == (1, 0)
    (post,) = slack_standin.calls_to("chat.postMessage")
    sent = json.dumps(post.args)
    assert post.args["channel"] == MANAGER
    assert f"<@{SECOND}>" in sent and "audit" in sent.lower() and "plain body" not in sent


@pytest.mark.parametrize(
    ("who", "allowed"),
    [(ONCALL, True), (SECOND, True), (OWNER, True), ("U0BACKUP1", True), ("U0ADMIN01", True),
     (STRANGER, False), (MANAGER, False), ("cli:mallory@box", False)],
)  # fmt: skip
def test_who_may_regenerate_is_decided_in_the_domain(database: Database, who: str, allowed: bool) -> None:
    """Starter, approver, owner, backup and admin may; anyone else is refused before anything is drawn."""
    incident_id = open_incident(database)
    if allowed:
        assert check_regenerate(database, incident_id, who, policy=POLICY) is False
        return
    with pytest.raises(NotAllowed, match="You may not regenerate the postmortem draft"):
        regenerate(database, incident_id, who, policy=POLICY)
    assert list(Path(".").rglob("*.md")) == []  # nothing drawn or saved


def test_a_drills_manager_summary_goes_to_its_starter_labelled(
    database: Database, slack_standin: SlackStandin
) -> None:
    incident_id = open_incident(database, drill=True)
    facts = {"manager": MANAGER, "incident": "DRILL-00004", "key_name": "pay-prod-drill", "drill": True,
             "environment": "production", "mode": "staged", "runbook": "revoke-replace-audit-notify",
             "actor": ONCALL}  # fmt: skip
    messages = render.manager_summary(facts)
    assert [m.recipient for m in messages] == [ONCALL]  # never the manager
    with database.session() as session:
        enqueue(session, messages, dedupe_prefix="summary", incident_id=incident_id, run_id=RUN_ID)
    assert deliver_pending(database, sender(slack_standin, database)) == (1, 0)
    (post,) = slack_standin.calls_to("chat.postMessage")
    sent = json.dumps(post.args)
    assert post.args["channel"] == ONCALL and f"would have gone to @{MANAGER}" in sent and "DRILL" in sent


def test_a_run_that_resolves_its_incident_announces_the_draft(world: World) -> None:
    """The engine's resolve (a run that succeeded) writes the draft row in the same write as the status."""
    key_id = world.add_key(unique_name("pm"), "staging", consumers=[])
    run_id = start_run(
        world.database, RUNBOOKS, key_id=key_id, runbook="revoke-replace-audit-notify", mode="staged",
        actor=ONCALL, reason="found in a gist", policy=WORLD_POLICY,
    )  # fmt: skip
    assert world.engine().execute(run_id) is RunStatus.SUCCEEDED
    with world.database.session() as session:
        incident = session.scalars(select(Incident)).one()
        rows = session.scalars(select(Notification).where(Notification.kind == "postmortem_draft")).all()
        assert incident.status is IncidentStatus.RESOLVED
        assert [(r.incident_id, r.recipient, r.run_id) for r in rows] == [
            (incident.id, "incident-thread", run_id)
        ]
        assert rows[0].dedupe_key == f"postmortem:{incident.id}:postmortem_draft:incident-thread"
