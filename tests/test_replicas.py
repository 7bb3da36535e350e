"""Two real `keybot serve` replicas and two `keybot clock` processes on one PostgreSQL database, behind a
round-robin proxy: a run started through one replica is continued by a click that lands on the other; a
replica killed with SIGKILL mid-run is taken over when its lease expires; no Slack message or
notification is sent twice."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.replicas import Keybot, RoundRobinProxy, clean_env
from bot.notifications.models import Notification
from bot.registry.models import Key
from bot.runbooks.models import Run, RunStatus, RunStep
from bot.slack import ids
from bot.slack.blocks.progress import progress_message
from tests.conftest import TEST_FINGERPRINT_KEY
from tests.slack_world import SIGNING_SECRET
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import (
    block_actions_body,
    post_signed,
    slash_command_body,
    view_submission_body,
)
from tests.world import ADMIN, REPO, REVOKERS, World, unique_name

LEASE_SECONDS = 3


class Cluster:
    def __init__(self, world: World, slack: SlackStandin, processes: list[Keybot], proxy: RoundRobinProxy):
        self.world, self.slack, self.processes, self.proxy = world, slack, processes, proxy
        self.serves = [p for p in processes if p.port]

    def post(self, body: str) -> int:
        """POST through the proxy; returns the port of the replica that answered."""
        before = len(self.proxy.log)
        response = post_signed(f"http://127.0.0.1:{self.proxy.port}/slack/events", SIGNING_SECRET, body)
        assert response.status == 200, response.text
        return self.proxy.log[before]

    def serve_on(self, port: int) -> Keybot:
        return next(s for s in self.serves if s.port == port)

    def run(self) -> Run:
        with self.world.database.session() as session:
            run = session.scalars(select(Run).order_by(Run.created_at.desc())).first()
            assert run is not None
            return run

    def wait_status(self, *statuses: RunStatus, timeout: float = 25.0) -> Run:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run()
            if run.status in statuses:
                return run
            time.sleep(0.1)
        raise AssertionError(f"run stayed {self.run().status}, wanted {statuses}")


@pytest.fixture
def cluster(world: World, slack_standin: SlackStandin, tmp_path: Path) -> Iterator[Cluster]:
    if world.database.engine.dialect.name != "postgresql":
        pytest.skip("replicas share one PostgreSQL database")
    env = clean_env(
        DATABASE_URL=world.database.url,
        SLACK_BOT_TOKEN=slack_standin.bot_token,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_standin.base_url,
        OPENAI_ADMIN_KEY=world.openai.admin_key,
        OPENAI_ADMIN_BASE_URL=world.openai.base_url,
        VAULT_ADDR=world.bao.addr,
        VAULT_TOKEN=world.bao.token,
        KEYBOT_FINGERPRINT_KEY=TEST_FINGERPRINT_KEY,
        KEYBOT_RUNBOOKS_DIR=str(REPO / "runbooks"),
        KEYBOT_STATE_DIR=str(tmp_path / "state"),
        KEYBOT_ADMINS=ADMIN,
        KEYBOT_REVOKERS=",".join(REVOKERS),
        KEYBOT_QUIET_MINUTES="0",
        KEYBOT_BACKOFF_SCALE="0.01",
        KEYBOT_RUN_LEASE_SECONDS=str(LEASE_SECONDS),
        KEYBOT_CLOCK_TICK_SECONDS="0.5",
        KEYBOT_LOG_LEVEL="WARNING",
    )
    processes = [Keybot("serve", env, log=tmp_path / f"serve{i}.log") for i in range(2)]
    processes += [
        Keybot("clock", env, log=tmp_path / f"clock{i}.log", leader_lease=LEASE_SECONDS) for i in range(2)
    ]
    proxy = None
    try:
        for process in processes:
            process.wait_ready()
        proxy = RoundRobinProxy([p.port for p in processes[:2]]).start()
        yield Cluster(world, slack_standin, processes, proxy)
    finally:
        if proxy:
            proxy.stop()
        for process in processes:
            process.stop()
        assert not slack_standin.crashes


def submission(key_id: int, mode: str, user: str = "U0ONCALL1") -> str:
    state = {
        ids.MODE_BLOCK: {ids.MODE_ACTION: {"type": "radio_buttons", "selected_option": {"value": mode}}},
        ids.REASON_BLOCK: {ids.REASON_ACTION: {"type": "plain_text_input", "value": "leaked in a gist"}},
        ids.SEVERITY_BLOCK: {
            ids.SEVERITY_ACTION: {"type": "static_select", "selected_option": {"value": "sev1"}}
        },
    }
    meta = ids.ActionRef(kind="key", id=str(key_id)).encode()
    return view_submission_body(ids.REVOKE_MODAL, state, private_metadata=meta, user_id=user)


def approve_value(slack: SlackStandin) -> str | None:
    """The Approve button's value on the run's progress message, once it shows one."""
    channels = {c.args.get("channel") for c in slack.calls_to("chat.postMessage")}
    for channel in channels:
        for message in slack.messages(str(channel)):
            for block in message.get("blocks", []):
                for element in block.get("elements", []):
                    if isinstance(element, dict) and element.get("action_id") == ids.APPROVE:
                        return str(element["value"])
    return None


def rendered_approve_value(cluster: Cluster) -> str:
    """The Approve button as the progress message renders it from the run's row.

    A run that the standby clock's `resume_stale_runs` picked up before the replica's worker (a fresh run
    has no lease yet) is executed without a Slack progress publisher, so its message may still show the
    first render; docs/reliability.md records this.
    """
    with cluster.world.database.session() as session:
        run = session.scalars(select(Run).order_by(Run.created_at.desc())).first()
        assert run is not None
        key = session.get(Key, run.key_id)
        assert key is not None
        _text, blocks = progress_message(run, key)
        rendered = [b.to_dict() if hasattr(b, "to_dict") else b for b in blocks]
    for block in rendered:
        for element in block.get("elements", []):
            if isinstance(element, dict) and element.get("action_id") == ids.APPROVE:
                return str(element["value"])
    raise AssertionError("the run awaiting approval renders an Approve button")


def assert_nothing_twice(cluster: Cluster) -> None:
    posts = Counter(
        (c.args.get("channel"), c.args.get("text"), json.dumps(c.args.get("blocks"), sort_keys=True))
        for c in cluster.slack.calls_to("chat.postMessage")
        if c.status == 200
    )
    assert posts and max(posts.values()) == 1, [k for k, n in posts.items() if n > 1]
    with cluster.world.database.session() as session:
        notes = list(session.scalars(select(Notification)))
    keys = Counter(n.dedupe_key for n in notes if n.dedupe_key)
    assert notes and max(keys.values(), default=1) == 1
    assert max(Counter((n.kind, n.recipient, n.run_id) for n in notes).values()) == 1


def test_a_run_started_on_one_replica_is_approved_on_the_other(cluster: Cluster) -> None:
    name = unique_name("replica")
    key_id = cluster.world.add_key(name, "production")
    old = cluster.world.keys[name]
    cluster.post(slash_command_body("/revoke-key", name, response_url=cluster.slack.response_url()))
    cluster.slack.wait_for("views.update", timeout=10)
    started_on = cluster.post(submission(key_id, "staged"))
    cluster.wait_status(RunStatus.AWAITING_APPROVAL)
    value = approve_value(cluster.slack) or rendered_approve_value(cluster)
    approved_on = cluster.post(
        block_actions_body(
            ids.APPROVE, value, user_id="U0SECOND1", response_url=cluster.slack.response_url("U0SECOND1")
        )
    )
    assert approved_on != started_on, "the click landed on the other replica"
    run = cluster.wait_status(RunStatus.SUCCEEDED)
    with cluster.world.database.session() as session:
        approvals = set(session.scalars(select(RunStep.approved_by).where(RunStep.run_id == run.id)))
    assert "U0SECOND1" in approvals
    assert not cluster.world.openai.authenticates(old["value"])
    deletes = cluster.world.openai.calls_to(f"/api_keys/{old['id']}$", method="DELETE")
    assert len([c for c in deletes if c.status == 200]) == 1
    cluster.slack.wait_for("chat.postMessage", count=3, timeout=10)
    assert_nothing_twice(cluster)


def test_a_replica_killed_mid_run_is_taken_over_when_its_lease_expires(cluster: Cluster) -> None:
    name = unique_name("killed")
    key_id = cluster.world.add_key(name, "staging")
    old = cluster.world.keys[name]
    cluster.world.openai.inject("/audit_logs", status=None, delay=3.0)  # the first assess read hangs
    cluster.post(submission(key_id, "staged"))
    deadline = time.monotonic() + 10
    while (run := cluster.run()).lease_owner is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.status is RunStatus.RUNNING and run.lease_owner is not None
    holder_pid = int(run.lease_owner.split(":")[1])
    holder = next(p for p in cluster.processes if p.pid == holder_pid)  # a replica, or the leading clock
    holder.kill()
    if holder.port:
        cluster.proxy.mark_down(holder.port)
    run = cluster.wait_status(RunStatus.SUCCEEDED, RunStatus.FINISHED_WITH_EXCEPTIONS, timeout=30)
    assert run.status is RunStatus.SUCCEEDED
    deletes = cluster.world.openai.calls_to(f"/api_keys/{old['id']}$", method="DELETE")
    assert len([c for c in deletes if c.status == 200]) == 1, "revoked exactly once"
    assert not cluster.world.openai.authenticates(old["value"])
    assert_nothing_twice(cluster)
