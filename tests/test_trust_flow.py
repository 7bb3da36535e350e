"""Can people trust what keybot says and does? End to end, on SQLite and PostgreSQL:

- a replayed or stale click changes a run at most once, and a decision about another step changes nothing;
- a run never claims success unless keybot itself verified the leaked key dead (or, for a vendor with no
  API, an owner or admin attested it), whatever people click in whatever order (a hypothesis property);
- a secret pasted into any free-text field is stored, shown, posted and logged only in redacted form;
- an incident's lifecycle from the terminal: abort, list, false alarm (restoring the key), refusals;
- a decision by someone not allowed changes no row of the database.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import make_url, select

from bot.access.policy import Policy
from bot.cli.identity import cli_identity
from bot.db.models import Base
from bot.db.session import Database
from bot.incidents import lifecycle
from bot.incidents.models import Incident, IncidentStatus, TimelineEvent
from bot.log import configure_logging
from bot.notifications.models import Notification
from bot.registry.models import Key, KeyStatus
from bot.runbooks import service, waits
from bot.runbooks.context import WaitSettings
from bot.runbooks.engine import Engine, EngineConfig
from bot.runbooks.models import KeyLock, Run, RunStatus, RunStep, StepStatus
from bot.secrets import find_secrets
from bot.slack import ids
from tests.fakes import canary_key
from tests.slack_world import SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import block_actions_body, view_submission_body
from tests.test_crash_recovery import KEYBOT, keybot_env
from tests.world import ADMIN, POLICY, RUNBOOKS, World, unique_name

OUTSIDER, OTHER_OWNER, STARTER = "U0OUTSID1", "U0OTHER01", "U0ONCALL1"
OWNER, BACKUP, REVOKER = "U0OWNER01", "U0BACKUP1", "U0SECOND1"
PEOPLE = (OUTSIDER, OTHER_OWNER, STARTER, OWNER, BACKUP, REVOKER, ADMIN)
RUNBOOK = "revoke-replace-audit-notify"
MARKUP = "done [/] [link=http://evil]x[/link]"


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def start(world: World, key_id: int, actor: str = STARTER, reason: str = "pasted in a public gist") -> str:
    return service.start_run(
        world.database, RUNBOOKS, key_id=key_id, runbook=RUNBOOK, mode="staged", actor=actor, reason=reason,
        policy=POLICY if actor != cli_identity() else Policy(),
    )  # fmt: skip


def run_of(database: Database, run_id: str) -> Run:
    with database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run


def runs_of(database: Database, key_id: int) -> list[str]:
    with database.session() as session:
        return list(session.scalars(select(Run.id).where(Run.key_id == key_id).order_by(Run.created_at)))


def events(database: Database, run_id: str, kind: str) -> list[TimelineEvent]:
    with database.session() as session:
        return list(
            session.scalars(
                select(TimelineEvent).where(TimelineEvent.run_id == run_id, TimelineEvent.kind == kind)
            )
        )


def run_snapshot(database: Database, run_id: str) -> str:
    """The run, its steps, key, lock, incident, timeline and outbox rows as text."""
    with database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        rows: list[Any] = [run, session.get(Key, run.key_id), session.get(KeyLock, run.key_id)]
        rows += session.scalars(select(RunStep).where(RunStep.run_id == run_id).order_by(RunStep.id)).all()
        if run.incident_id is not None:
            rows.append(session.get(Incident, run.incident_id))
            rows += session.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.incident_id == run.incident_id)
                .order_by(TimelineEvent.seq)
            ).all()
        rows += session.scalars(
            select(Notification).where(Notification.run_id == run_id).order_by(Notification.id)
        ).all()
        return json.dumps(
            [
                {c.name: str(getattr(r, c.key, None)) for c in r.__table__.columns} if r is not None else None
                for r in rows
            ]
        )


def dump(database: Database) -> str:
    """Every row of every table, as text."""
    out: list[str] = []
    with database.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                out.append(f"{table.name}: {json.dumps(list(row), default=str)}")
    return "\n".join(out)


def raw_sqlite(database: Database) -> bytes:
    """The SQLite database file and its write-ahead log, byte for byte.

    Read by another process: closing any descriptor of the file in this one would drop every POSIX lock
    SQLite holds on it here, and this process's connections would then read stale snapshots ("POSIX
    advisory locks canceled by a separate thread doing close()", https://www.sqlite.org/howtocorrupt.html).
    """
    path = make_url(database.url).database or ""
    files = [p for p in (path, f"{path}-wal") if Path(p).exists()]
    return subprocess.run(["cat", *files], capture_output=True, check=True).stdout


class Leaked(AssertionError):
    """A secret typed by a person was found where only its redacted form may be."""


def assert_no_leak(where: str, text: str | bytes, canaries: dict[str, str]) -> None:
    """No 16-character piece of any canary's secret part (after `sk-proj-`) appears in `text`."""
    for field, canary in canaries.items():
        body = canary.removeprefix("sk-proj-")
        for i in range(len(body) - 15):
            piece = body[i : i + 16]
            if (piece.encode() in text) if isinstance(text, bytes) else (piece in text):
                raise Leaked(f"the canary typed into {field} leaked into {where}")


def new_canary() -> str:
    value = canary_key()
    found = find_secrets(value)
    assert [(m.kind, m.start, m.end) for m in found] == [("openai_project", 0, len(value))]
    return value


def redacted(canary: str) -> str:
    return f"sk-proj-...{canary[-4:]}"


def cli_env(world: World, admin: bool) -> dict[str, str]:
    """An operator's environment; `admin` makes this OS user a keybot admin (nothing else is configured)."""
    env = keybot_env(world) | {"KEYBOT_LOG_LEVEL": "DEBUG"}
    return env | {"KEYBOT_ADMINS": cli_identity()} if admin else env


def cli(world: World, *args: str, admin: bool = False) -> subprocess.CompletedProcess[str]:
    """The real `keybot` CLI in a subprocess."""
    return subprocess.run(
        [*KEYBOT, *args], capture_output=True, text=True, env=cli_env(world, admin), timeout=120, check=False
    )


def cli_many(world: World, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Commands run at the same time; one ending in "--admin" runs as a keybot admin."""
    procs = []
    for command in commands:
        admin = command[-1] == "--admin"
        args = command[:-1] if admin else command
        env, out = cli_env(world, admin), subprocess.PIPE
        procs.append((args, subprocess.Popen([*KEYBOT, *args], text=True, env=env, stdout=out, stderr=out)))
    results = []
    for args, proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(list(args), proc.returncode, stdout, stderr))
    return results


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def answered(sw: SlackWorld, url: str) -> Callable[[], bool]:
    return lambda: bool(sw.slack.response_posts.get(url))


def status_is(database: Database, run_id: str, *statuses: RunStatus) -> Callable[[], bool]:
    return lambda: run_of(database, run_id).status in statuses


def modal(callback: str, block: str, action: str, text: str, meta: ids.ActionRef, user: str) -> str:
    state = {block: {action: {"type": "plain_text_input", "value": text}}}
    return view_submission_body(callback, state, private_metadata=meta.encode(), user_id=user)


def revoke_body(key_id: int, reason: str, user: str) -> str:
    state = {
        ids.MODE_BLOCK: {ids.MODE_ACTION: {"type": "radio_buttons", "selected_option": {"value": "staged"}}},
        ids.REASON_BLOCK: {ids.REASON_ACTION: {"type": "plain_text_input", "value": reason}},
    }
    meta = ids.ActionRef(kind="key", id=str(key_id)).encode()
    return view_submission_body(ids.REVOKE_MODAL, state, private_metadata=meta, user_id=user)


def submitted(sw: SlackWorld, body: str) -> None:
    response = sw.post(body)
    assert response.status == 200, response.text
    assert response.json() == {"response_action": "clear"}, response.text


def incident_of(database: Database, run_id: str) -> Incident:
    with database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None and run.incident_id is not None
        incident = session.get(Incident, run.incident_id)
        assert incident is not None
        return incident


def key_status(database: Database, key_id: int) -> KeyStatus:
    with database.session() as session:
        key = session.get(Key, key_id)
        assert key is not None
        return key.status


@pytest.fixture
def log_stream() -> Iterator[StringIO]:
    """keybot's own logging (JSON, DEBUG, redacting) into a buffer, as production configures it."""
    stream = StringIO()
    configure_logging("json", "DEBUG", stream)
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


# ---------------------------------------------------------------------------------------------------------
# 1. Replayed and stale decisions
# ---------------------------------------------------------------------------------------------------------


def test_replayed_approve_applies_once_and_a_click_for_another_step_changes_nothing(
    world: World, slack_standin: SlackStandin
) -> None:
    with serving(world, slack_standin) as sw:
        name = unique_name("replay")
        key_id = world.add_key(name, "production")
        run_id = start(world, key_id)
        assert world.engine().execute(run_id) is RunStatus.AWAITING_APPROVAL
        seen = run_of(world.database, run_id).version
        # Record what the app asks the engine to carry on, instead of running it: the approval's own
        # change (and nothing after it) stays observable.
        carried_on: list[str] = []
        submit = sw.ctx.worker.submit
        setattr(sw.ctx.worker, "submit", carried_on.append)  # noqa: B010 - a method, replaced on one object

        value = ids.run_ref(run_id, "revoke_old", seen).encode()
        body = block_actions_body(
            ids.APPROVE, value, user_id=REVOKER, response_url=sw.slack.response_url("replay")
        )
        answers: list[int] = []

        def click() -> None:
            answers.append(sw.post(body).status)

        posts = [threading.Thread(target=click) for _ in range(2)]
        for post in posts:
            post.start()
        for post in posts:
            post.join()
        assert answers == [200, 200]

        def settled() -> bool:
            approved = len(events(world.database, run_id, "step.approved"))
            return approved >= 2 or (approved == 1 and bool(sw.slack.response_posts.get("replay")))

        wait_for("both clicks to be handled", settled)
        assert len(events(world.database, run_id, "step.approved")) == 1
        run = run_of(world.database, run_id)
        assert run.version == seen + 1 and run.status is RunStatus.RUNNING
        assert run.step("revoke_old").approved_by == REVOKER
        told = json.dumps(sw.slack.response_posts["replay"])
        assert "earlier state" in told and "Nothing was changed" in told
        wait_for("the engine to be asked", lambda: bool(carried_on))
        assert carried_on == [run_id]

        world.openai.inject(r"/api_keys/", status=403, times=None, method="DELETE")
        assert world.engine().execute(run_id) is RunStatus.NEEDS_ATTENTION
        current = run_of(world.database, run_id).version
        assert run_of(world.database, run_id).step("revoke_old").status is StepStatus.NEEDS_ATTENTION

        # A Retry for `mint` (an earlier message), with the old version and with the current one.
        for n, stale_version in enumerate((seen, current)):
            before = run_snapshot(world.database, run_id)
            url = f"stale{n}"
            stale = ids.run_ref(run_id, "mint", stale_version).encode()
            sw.post(
                block_actions_body(ids.RETRY, stale, user_id=REVOKER, response_url=sw.slack.response_url(url))
            )
            wait_for("the stale click's answer", answered(sw, url))
            said = json.dumps(sw.slack.response_posts[url])
            assert "earlier state" in said and "Nothing was changed" in said, said
            assert run_snapshot(world.database, run_id) == before
        assert carried_on == [run_id]

        # The same person and button, for the step and version the message now shows: applied, and run.
        setattr(sw.ctx.worker, "submit", submit)  # noqa: B010
        world.openai.faults.clear()
        fresh = ids.run_ref(run_id, "revoke_old", current).encode()
        sw.post(
            block_actions_body(ids.RETRY, fresh, user_id=REVOKER, response_url=sw.slack.response_url("ok"))
        )
        wait_for("the retried run to finish", status_is(world.database, run_id, RunStatus.SUCCEEDED))
        assert len(events(world.database, run_id, "step.retry_requested")) == 1
        assert not world.openai.authenticates(world.keys[name]["value"])


def test_mark_done_sent_three_times_marks_one_step(world: World) -> None:
    key_id = world.add_key(unique_name("thrice"), "staging")
    world.openai.inject(r"^/models$", status=401, times=None)  # the replacement never authenticates
    run_id = start(world, key_id)
    assert world.engine().execute(run_id) is RunStatus.NEEDS_ATTENTION
    run = run_of(world.database, run_id)
    assert run.step("verify_new").status is StepStatus.NEEDS_ATTENTION
    version = run.version
    seen = service.Seen("verify_new", version)
    steps_before = {s.name: (s.status, s.done_by) for s in run.steps}

    barrier = threading.Barrier(3)
    outcomes: list[str] = []

    def click() -> None:
        barrier.wait()
        try:
            service.mark_done(world.database, run_id, OWNER, "checked by hand", policy=POLICY, seen=seen)
            outcomes.append("applied")
        except service.StaleDecision:
            outcomes.append("stale")
        except service.RunRefused as refused:
            outcomes.append(f"refused: {refused}")

    clicks = [threading.Thread(target=click) for _ in range(3)]
    for c in clicks:
        c.start()
    for c in clicks:
        c.join()

    assert sorted(outcomes) == ["applied", "stale", "stale"], outcomes
    run = run_of(world.database, run_id)
    changed = [s.name for s in run.steps if (s.status, s.done_by) != steps_before[s.name]]
    assert changed == ["verify_new"]
    assert run.step("verify_new").output.get("by_hand") is True
    assert run.version == version + 1
    assert len(events(world.database, run_id, "step.marked_done_after_failure")) == 1
    # Once more after the engine moved on: still refused, nothing else marked.
    world.engine().execute(run_id)
    with pytest.raises(service.RunRefused):
        service.mark_done(world.database, run_id, OWNER, "checked by hand", policy=POLICY, seen=seen)
    assert len(events(world.database, run_id, "step.marked_done_after_failure")) == 1


# ---------------------------------------------------------------------------------------------------------
# 2. No false success (property)
# ---------------------------------------------------------------------------------------------------------

FAULTS: dict[str, list[tuple[str, int, str | None]]] = {
    "none": [],
    "revoke refused": [(r"/api_keys/", 403, "DELETE")],
    "revoke down": [(r"/api_keys/", 500, "DELETE")],
    "key lookups down": [(r"/api_keys/", 500, "GET")],
    "replacement rejected": [(r"^/models$", 401, None)],
    "mint refused": [(r"/service_accounts$", 403, "POST")],
}
DECISIONS = (
    "approve",
    "retry",
    "skip",
    "mark_done",
    "confirm",
    "abort",
    *("fitting0", "fitting1", "fitting2") * 2,
)
FITTING = {  # what a person would click next, by the run's state
    RunStatus.AWAITING_APPROVAL: ("approve",),
    RunStatus.NEEDS_ATTENTION: ("retry", "mark_done", "skip"),
    RunStatus.WAITING_MANUAL: ("mark_done", "skip"),
    RunStatus.WAITING: ("confirm",),
}
REASONS = st.one_of(
    st.sampled_from(["done in the console", "deleted it by hand at 03:12", "a\x00b", "\x00", "", "   "]),
    st.text(st.characters(codec="utf-8"), max_size=40),
)
OPS = st.one_of(
    st.tuples(st.just("execute")),
    st.tuples(st.just("execute")),
    st.tuples(st.just("heal")),
    st.tuples(
        st.sampled_from(DECISIONS),
        st.sampled_from(PEOPLE),
        REASONS,
        st.sampled_from(["current", "current", "unbound", "stale"]),
    ),
)
SCENARIOS = st.fixed_dictionaries(
    {
        "provider": st.sampled_from(["openai", "openai", "manual"]),
        "environment": st.sampled_from(["staging", "production"]),
        "fault": st.sampled_from(sorted(FAULTS)),
        "ops": st.lists(OPS, min_size=1, max_size=16),
    }
)
HAPPY = {"provider": "openai", "environment": "staging", "fault": "none", "ops": [("execute",)]}
HEALED = {
    "provider": "openai",
    "environment": "production",
    "fault": "revoke down",
    "ops": [
        ("execute",),
        ("approve", REVOKER, "", "current"),
        ("execute",),
        ("heal",),
        ("retry", BACKUP, "", "current"),
        ("execute",),
    ],
}
BY_HAND = {
    "provider": "openai",
    "environment": "staging",
    "fault": "revoke refused",
    "ops": [
        ("execute",),
        ("mark_done", OWNER, "deleted in console", "current"),  # revoke_old, by hand
        ("execute",),
        ("mark_done", ADMIN, "checked in console", "current"),  # verify_revoked, by hand
        ("execute",),
    ],
}


def by_people(who: str) -> list[tuple[str, ...]]:
    """A manual vendor: a consumer confirms the redeploy, `who` marks each vendor-side step done."""
    return [
        op
        for _ in range(5)
        for op in (
            ("confirm", STARTER, "", "current"),
            ("execute",),
            ("mark_done", who, "in console", "current"),
        )
    ]


BY_PEOPLE = by_people(OWNER)
ATTESTED = {
    "provider": "manual",
    "environment": "staging",
    "fault": "none",
    "ops": [("execute",), *BY_PEOPLE],
}
NOT_ALLOWED_TO_ATTEST = {  # a backup may do the replacement steps, not attest the revocation
    "provider": "manual",
    "environment": "staging",
    "fault": "none",
    "ops": [("execute",), *by_people(BACKUP)],
}
SKIPPED = {
    "provider": "manual",
    "environment": "staging",
    "fault": "none",
    "ops": [("execute",), ("skip", STARTER, "no console access", "current"), ("execute",), *BY_PEOPLE],
}


def fast_engine(world: World) -> Engine:
    """The tests' engine, with retries a hundred times quicker (outages here are on purpose)."""
    config = EngineConfig(
        lease_ttl=timedelta(seconds=30), backoff_scale=5e-5, waits=WaitSettings(quiet_minutes=0)
    )
    return Engine(world.database, RUNBOOKS, world.toolkit(), config, policy=POLICY)


def check_no_false_success(world: World, run_id: str, provider: str, old_secret: str) -> RunStatus:
    """The invariant, at any moment of a run."""
    with world.database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        key = session.get(Key, run.key_id)
        incident = session.get(Incident, run.incident_id)
        assert key is not None and incident is not None
        steps = {s.name: s for s in run.steps}
        if any(s.status is StepStatus.SKIPPED for s in run.steps):
            assert run.status is not RunStatus.SUCCEEDED, "a run with a skipped step claimed success"
        if run.status is RunStatus.SUCCEEDED:
            verified = steps["verify_revoked"]
            assert verified.status is StepStatus.SUCCEEDED
            assert not verified.output.get("by_hand"), "hand-marked revocation check, yet success"
            assert not any(s.output.get("by_hand") for s in run.steps)
            if provider == "manual":
                attested = verified.output.get("attested_by")
                assert attested in (OWNER, ADMIN), f"verify_revoked attested by {attested!r}"
                assert verified.done_by == attested
            else:
                assert verified.done_by is None and "attested_by" not in verified.output
                assert not world.openai.authenticates(old_secret), "success, but the leaked key still works"
                assert key.status is KeyStatus.ACTIVE
            assert incident.status is IncidentStatus.RESOLVED
        elif run.status in (RunStatus.FINISHED_WITH_EXCEPTIONS, RunStatus.ABORTED):
            assert key.status is KeyStatus.COMPROMISED, f"{run.status.value}, yet the key is {key.status}"
            assert not incident.status.closed
        return run.status


def decide(world: World, run_id: str, name: str, op: tuple[Any, ...]) -> service.Decided | None:
    """One person's decision, as Slack or the CLI would send it; None when refused."""
    decision, user, reason, binding = op
    run = run_of(world.database, run_id)
    if decision.startswith("fitting"):
        choices = FITTING.get(run.status, ("approve",))
        decision = choices[int(decision[-1]) % len(choices)]
    current = next((s for s in run.steps if not s.status.done), None)
    seen: service.Seen | None = None
    if binding == "current":
        seen = service.Seen(current.name if current else None, run.version)
    elif binding == "stale":
        seen = service.Seen(
            "mint" if current is None or current.name != "mint" else "assess", run.version - 1
        )
    db = world.database
    try:
        if decision == "approve":
            return service.approve(db, run_id, user, policy=POLICY, seen=seen)
        if decision == "retry":
            return service.retry_step(db, run_id, user, policy=POLICY, seen=seen)
        if decision == "skip":
            return service.skip_step(db, run_id, user, reason, policy=POLICY, seen=seen)
        if decision == "mark_done":
            return service.mark_done(db, run_id, user, reason, policy=POLICY, seen=seen)
        if decision == "confirm":
            return waits.confirm_redeployed(db, run_id, f"api-{name}", user, policy=POLICY)
        return service.abort(db, run_id, user, reason, policy=POLICY)
    except service.RunRefused:
        return None


@pytest.fixture
def outcomes() -> Iterator[list[RunStatus]]:
    seen: list[RunStatus] = []
    yield seen
    # The explicit examples guarantee the checker saw a real success and real exceptions.
    assert {RunStatus.SUCCEEDED, RunStatus.FINISHED_WITH_EXCEPTIONS} <= set(seen), seen


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=SCENARIOS)
@example(scenario=HAPPY)
@example(scenario=HEALED)
@example(scenario=BY_HAND)
@example(scenario=ATTESTED)
@example(scenario=SKIPPED)
@example(scenario=NOT_ALLOWED_TO_ATTEST)
def test_no_false_success_whatever_people_click(
    world: World, outcomes: list[RunStatus], scenario: dict[str, Any]
) -> None:
    world.openai.faults.clear()
    name = unique_name("prop")
    key_id = world.add_key(name, scenario["environment"], provider=scenario["provider"])
    old_secret = world.keys[name]["value"]
    for path, status, method in FAULTS[scenario["fault"]]:
        world.openai.inject(path, status=status, times=None, method=method)
    run_id = start(world, key_id)
    engine = fast_engine(world)
    for op in [*scenario["ops"], ("execute",)]:
        if op[0] == "execute":
            engine.execute(run_id)
        elif op[0] == "heal":
            world.openai.faults.clear()
        elif (decided := decide(world, run_id, name, op)) is not None and decided.proceed:
            check_no_false_success(world, run_id, scenario["provider"], old_secret)
            engine.execute(run_id)  # what Slack and the CLI do after a decision that carries the run on
        check_no_false_success(world, run_id, scenario["provider"], old_secret)
    outcomes.append(check_no_false_success(world, run_id, scenario["provider"], old_secret))
    world.openai.faults.clear()


# ---------------------------------------------------------------------------------------------------------
# 3. Canaries in every free-text field
# ---------------------------------------------------------------------------------------------------------


def assert_stored_only_redacted(database: Database, canaries: dict[str, str]) -> str:
    """No canary in any row of any table (nor, on SQLite, anywhere in the file); each one's redacted form
    in some row (so the field really was exercised). Returns the rows as text."""
    stored = dump(database)
    assert_no_leak("the database", stored, canaries)
    if database.engine.dialect.name == "sqlite":
        assert_no_leak("the SQLite file", raw_sqlite(database), canaries)
    for field, canary in canaries.items():
        assert redacted(canary) in stored, f"{field} never reached the database"
    return stored


def test_secrets_typed_in_slack_are_stored_posted_and_logged_only_redacted(
    world: World, slack_standin: SlackStandin, log_stream: StringIO
) -> None:
    fields = (
        "revoke reason",
        "skip reason",
        "mark-done note",
        "resolve reason",
        "abort reason",
        "false-alarm reason",
    )
    c = canaries = {field: new_canary() for field in fields}
    world.openai.inject(r"/api_keys/", status=403, times=None, method="DELETE")  # revocation needs people
    block, action = ids.INCIDENT_REASON_BLOCK, ids.INCIDENT_REASON_ACTION
    with serving(world, slack_standin) as sw:
        # Revoke (reason), skip revoke_old (reason), mark verify_revoked done (note), resolve (reason).
        a_key = world.add_key(unique_name("canary-a"), "staging")
        submitted(sw, revoke_body(a_key, f"it leaked: {c['revoke reason']} in a gist", STARTER))
        wait_for("the Slack run", lambda: bool(runs_of(world.database, a_key)))
        a_run = runs_of(world.database, a_key)[0]
        wait_for("revoke_old to fail", status_is(world.database, a_run, RunStatus.NEEDS_ATTENTION))
        ref = ids.run_ref(a_run, "revoke_old", run_of(world.database, a_run).version)
        split = c["skip reason"][:60] + "\x00" + c["skip reason"][60:]  # a NUL must not hide a secret
        text = f"deleted by hand: {split}"
        submitted(sw, modal(ids.SKIP_MODAL, ids.SKIP_REASON_BLOCK, ids.SKIP_REASON_ACTION, text, ref, OWNER))
        wait_for(
            "verify_revoked to fail",
            lambda: run_of(world.database, a_run).step("verify_revoked").status is StepStatus.NEEDS_ATTENTION,
        )
        ref = ids.run_ref(a_run, "verify_revoked", run_of(world.database, a_run).version)
        text = f"checked the console {c['mark-done note']}"
        submitted(sw, modal(ids.DONE_MODAL, ids.DONE_NOTE_BLOCK, ids.DONE_NOTE_ACTION, text, ref, OWNER))
        wait_for("exceptions", status_is(world.database, a_run, RunStatus.FINISHED_WITH_EXCEPTIONS))
        incident = incident_of(world.database, a_run)
        ref = ids.ActionRef(kind="incident", id=str(incident.id), extra={"as": "resolve"})
        submitted(sw, modal(ids.INCIDENT_MODAL, block, action, f"ok {c['resolve reason']}", ref, OWNER))
        assert incident_of(world.database, a_run).status is IncidentStatus.RESOLVED

        # Abort (reason), then call the incident a false alarm (reason).
        b_key = world.add_key(unique_name("canary-b"), "staging")
        b_run = start(world, b_key)
        assert world.engine().execute(b_run) is RunStatus.NEEDS_ATTENTION
        text = f"wrong key {c['abort reason']}"
        ref = ids.ActionRef(kind="run", id=b_run)
        submitted(
            sw, modal(ids.ABORT_MODAL, ids.ABORT_REASON_BLOCK, ids.ABORT_REASON_ACTION, text, ref, STARTER)
        )
        ref = ids.ActionRef(
            kind="incident", id=str(incident_of(world.database, b_run).id), extra={"as": "false_alarm"}
        )
        submitted(
            sw, modal(ids.INCIDENT_MODAL, block, action, f"a test key {c['false-alarm reason']}", ref, OWNER)
        )
        assert key_status(world.database, b_key) is KeyStatus.ACTIVE
        time.sleep(0.5)  # follow-up work after the last ack (refreshing the incident's messages)

    assert_stored_only_redacted(world.database, canaries)
    slack = sw.outgoing_text()
    assert_no_leak("Slack", slack, canaries)
    assert_no_leak("the logs", log_stream.getvalue(), canaries)
    shown = ("revoke reason", "skip reason", "abort reason")  # what Slack messages repeat, redacted
    assert all(redacted(c[field]) in slack for field in shown), slack


@pytest.mark.cli_surface
def test_secrets_typed_at_the_terminal_are_stored_shown_and_logged_only_redacted(world: World) -> None:
    fields = ("revoke reason", "mark-done note", "break-glass skip reason")
    c = canaries = {field: new_canary() for field in fields}
    world.openai.inject(r"/api_keys/", status=403, times=None, method="DELETE")  # revocation needs people
    name = unique_name("canary-c")
    key_id = world.add_key(name, "staging")
    results = [cli(world, "revoke", name, "--reason", f"found {c['revoke reason']}", "--yes")]
    assert results[-1].returncode == 3, results[-1].stderr  # revoke_old needs attention
    run_id = runs_of(world.database, key_id)[0]
    results.append(cli(world, "runs", "done", run_id, "--note", f"by hand {c['mark-done note']}", admin=True))
    assert results[-1].returncode == 3, results[-1].stderr  # verify_revoked needs attention
    glass = f"console is down {c['break-glass skip reason']}"
    results.append(cli(world, "runs", "skip", run_id, "--reason", glass, "--break-glass", admin=True))
    assert results[-1].returncode == 3, results[-1].stderr
    run = run_of(world.database, run_id)
    assert run.status is RunStatus.FINISHED_WITH_EXCEPTIONS, (run.attention, [r.stderr for r in results])
    reference = incident_of(world.database, run_id).reference

    shown = cli_many(
        world,
        ("runs", "show", run_id, "--events", "100"),
        ("incidents", "show", reference, "--events", "200"),
        ("runs", "list"),
    )
    assert [r.returncode for r in shown] == [0] * len(shown), [r.stderr for r in shown]
    for result in results + shown:
        assert_no_leak(f"`keybot {' '.join(result.args)}`", result.stdout + result.stderr, canaries)
    assert_stored_only_redacted(world.database, canaries)
    assert redacted(c["break-glass skip reason"]) in shown[0].stdout  # the reasons were shown, redacted
    timeline = shown[1].stdout
    assert all(redacted(c[f]) in timeline for f in fields), timeline


def test_a_secret_cut_by_the_length_limit_is_not_stored_in_part(
    world: World, slack_standin: SlackStandin
) -> None:
    canary = new_canary()
    key_id = world.add_key(unique_name("cut"), "staging")
    run_id = start(world, key_id)
    with serving(world, slack_standin) as sw:
        text = "x" * 420 + " " + canary  # Slack's form allows 500 characters; a forged request more
        ref = ids.ActionRef(kind="run", id=run_id)
        submitted(
            sw, modal(ids.ABORT_MODAL, ids.ABORT_REASON_BLOCK, ids.ABORT_REASON_ACTION, text, ref, STARTER)
        )
    assert run_of(world.database, run_id).status is RunStatus.ABORTED
    assert_no_leak("the database", dump(world.database), {"an abort reason": canary})


# ---------------------------------------------------------------------------------------------------------
# 4. An incident's lifecycle from the terminal
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.cli_surface
def test_incident_lifecycle_from_the_cli(world: World) -> None:
    name = unique_name("life")
    key_id = world.add_key(name, "staging")
    assert key_status(world.database, key_id) is KeyStatus.ACTIVE
    world.openai.inject(r"/api_keys/", status=403, times=None, method="DELETE")
    run_id = start(world, key_id, actor=cli_identity())  # this OS user started it (so may abort it)
    assert world.engine().execute(run_id) is RunStatus.NEEDS_ATTENTION
    reference = incident_of(world.database, run_id).reference

    in_flight, not_allowed = cli_many(
        world,
        ("incidents", "resolve", reference, "--reason", "looks fine", "--admin"),
        ("incidents", "false-alarm", reference, "--reason", "it was a test key"),
    )
    assert in_flight.returncode == 2
    said = " ".join(in_flight.stderr.split())
    assert "still needs attention" in said and f"keybot runs abort {run_id}" in said, said
    assert not_allowed.returncode == 2
    said = " ".join(not_allowed.stderr.split())
    assert "You may not call a false alarm on" in said and "Nothing was changed" in said, said
    assert "<@U0OWNER01>" in said and "<@U0BACKUP1>" in said, said
    assert not incident_of(world.database, run_id).status.closed

    aborted = cli(world, "runs", "abort", run_id, "--reason", MARKUP)
    assert aborted.returncode == 0, aborted.stderr
    assert run_of(world.database, run_id).status is RunStatus.ABORTED
    assert key_status(world.database, key_id) is KeyStatus.COMPROMISED
    assert incident_of(world.database, run_id).status is IncidentStatus.OPEN

    listed, shown = cli_many(world, ("incidents", "list"), ("runs", "show", run_id))
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"{reference}\s.*\sopen\s", listed.stdout), listed.stdout
    assert shown.returncode == 0, shown.stderr
    assert MARKUP in shown.stdout, shown.stdout

    allowed = cli(world, "incidents", "false-alarm", reference, "--reason", "it was a test key", admin=True)
    assert allowed.returncode == 0, allowed.stderr
    assert "status is active again" in " ".join(allowed.stdout.split())
    assert key_status(world.database, key_id) is KeyStatus.ACTIVE
    assert incident_of(world.database, run_id).status is IncidentStatus.FALSE_ALARM
    with world.database.session() as session:
        closing = session.scalars(
            select(TimelineEvent).where(TimelineEvent.kind == "incident.false_alarm")
        ).one()
        assert closing.actor == cli_identity()
        assert closing.data["key_status_restored"] == {"from": "compromised", "to": "active"}

    again = cli(world, "incidents", "resolve", reference, "--reason", "again", admin=True)
    assert again.returncode == 2 and "already false alarm" in " ".join(again.stderr.split())
    assert incident_of(world.database, run_id).status is IncidentStatus.FALSE_ALARM
    assert key_status(world.database, key_id) is KeyStatus.ACTIVE


def test_false_alarm_on_an_older_incident_keeps_the_key_compromised_while_a_newer_one_is_open(
    world: World,
) -> None:
    key_id = world.add_key(unique_name("twice"), "staging")
    world.openai.inject(r"/api_keys/", status=403, times=None, method="DELETE")
    first = start(world, key_id)
    assert world.engine().execute(first) is RunStatus.NEEDS_ATTENTION
    service.abort(world.database, first, OWNER, "will start over", policy=POLICY)
    second = start(world, key_id, reason="leaked again, in CI logs")
    assert world.engine().execute(second) is RunStatus.NEEDS_ATTENTION

    closed = lifecycle.close(
        world.database, incident_of(world.database, first).id, OWNER, "the first report was wrong",
        policy=POLICY, false_alarm=True,
    )  # fmt: skip
    newer = incident_of(world.database, second)
    assert key_status(world.database, key_id) is KeyStatus.COMPROMISED, "the newer leak is still open"
    assert newer.reference in closed.message and "stays compromised" in closed.message

    service.abort(world.database, second, OWNER, "false alarm too", policy=POLICY)
    lifecycle.close(world.database, newer.id, OWNER, "also wrong", policy=POLICY, false_alarm=True)
    assert key_status(world.database, key_id) is KeyStatus.COMPROMISED  # its status before the second


# ---------------------------------------------------------------------------------------------------------
# 5. Refused decisions change nothing
# ---------------------------------------------------------------------------------------------------------


def test_refused_decisions_change_no_row(world: World) -> None:
    world.add_key(unique_name("other"), "production", owner=OTHER_OWNER, backup="U0OTHERBK")
    key_id = world.add_key(unique_name("refuse"), "production")
    world.openai.inject(r"/api_keys/", status=403, times=None, method="DELETE")
    run_id = start(world, key_id)
    engine = world.engine()
    assert engine.execute(run_id) is RunStatus.AWAITING_APPROVAL
    db = world.database
    covered: set[str] = set()

    def refused(
        what: str,
        decision: Callable[..., object],
        *args: Any,
        error: type[Exception] = service.NotAllowed,
        **kw: Any,
    ) -> None:
        before = dump(db)
        with pytest.raises(error):
            decision(db, *args, policy=POLICY, **kw)
        assert dump(db) == before, f"refused {what} changed the database"
        covered.add(getattr(decision, "__name__", "?"))

    version = run_of(db, run_id).version
    for user in (OUTSIDER, OTHER_OWNER, STARTER):  # the starter: two-person rule
        refused(f"approve by {user}", service.approve, run_id, user)
    stale = service.Seen("revoke_old", version - 1)
    refused("stale approve", service.approve, run_id, REVOKER, seen=stale, error=service.StaleDecision)
    service.approve(db, run_id, REVOKER, policy=POLICY, seen=service.Seen("revoke_old", version))
    assert engine.execute(run_id) is RunStatus.NEEDS_ATTENTION  # revoke_old (a safety step) failed

    for user in (OUTSIDER, OTHER_OWNER):
        refused(f"retry by {user}", service.retry_step, run_id, user)
        refused(f"abort by {user}", service.abort, run_id, user, "stop")
    for user in (OUTSIDER, OTHER_OWNER, STARTER, BACKUP, REVOKER):  # a safety step: owners and admins only
        refused(f"skip by {user}", service.skip_step, run_id, user, "by hand")
        refused(f"mark done by {user}", service.mark_done, run_id, user, "by hand")
    # The two-person rule on production: the owner asks (a change), asking again changes nothing.
    assert not service.skip_step(db, run_id, OWNER, "deleted in console", policy=POLICY).proceed
    refused("a repeated request", service.skip_step, run_id, OWNER, "again", error=service.RunRefused)

    service.abort(db, run_id, STARTER, "stop", policy=POLICY)
    incident_id = incident_of(db, run_id).id
    for user in (OUTSIDER, OTHER_OWNER):
        refused(f"resolve by {user}", lifecycle.close, incident_id, user, "fine")
        refused(f"false alarm by {user}", lifecycle.close, incident_id, user, "fine", false_alarm=True)
    assert covered == {"approve", "retry_step", "skip_step", "mark_done", "abort", "close"}
    assert key_status(db, key_id) is KeyStatus.COMPROMISED
