"""Break-glass from a terminal: revoke, runs, audit verify and runbook show as an operator runs them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import identity, main
from bot.cli.context import CliError, runtime
from bot.config import get_settings
from bot.incidents.models import TimelineEvent
from bot.notifications.models import Notification
from bot.runbooks.definitions import load_runbooks
from bot.runbooks.models import Run, RunStatus
from bot.runbooks.render import runbook_document
from tests.test_crash_recovery import keybot, keybot_env, only_run
from tests.world import REPO, World, unique_name

GOLDEN = Path(__file__).parent / "golden"


def as_os_user(
    world: World, monkeypatch: pytest.MonkeyPatch, user: str, **settings: str
) -> Callable[..., Outcome]:
    """The CLI in this process, acting as OS user `user` (identity reads the real uid; tests swap it)."""
    for name, value in {**keybot_env(world), **settings}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    runtime.cache_clear()
    monkeypatch.setattr(identity, "os_user", lambda: user)

    def invoke(*args: str) -> Outcome:
        result = CliRunner().invoke(main.app, list(args))
        if isinstance(result.exception, CliError):  # `keybot` prints these as one line, exit status 2
            return Outcome(2, result.output + str(result.exception))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.output)

    return invoke


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    output: str


@pytest.mark.cli_surface
def test_break_glass_revoke_with_second_person_approval(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique_name("cli")
    world.add_key(name, "production")
    host = identity.host()
    team = {"KEYBOT_REVOKERS": f"cli:alice@{host},cli:bob@{host}"}
    paused = keybot(world, "revoke", name, "--reason", "pasted in a ticket", "--yes")
    assert paused.returncode == 3, paused.stderr
    assert "keybot runs approve" in paused.stderr
    run = only_run(world.database)
    assert (
        run.status is RunStatus.AWAITING_APPROVAL and run.initiated_by == f"cli:{identity.os_user()}@{host}"
    )

    alice = as_os_user(world, monkeypatch, "alice", **team)
    with world.database.session() as session:
        session.get(Run, run.id).initiated_by = f"cli:alice@{host}"  # type: ignore[union-attr]
    self_approve = alice("runs", "approve", run.id)
    assert self_approve.exit_code == 2 and "two-person rule" in self_approve.output.lower()
    assert "--as" not in main_help()
    mallory = as_os_user(world, monkeypatch, "mallory", **team)
    outsider = mallory("runs", "approve", run.id)
    assert outsider.exit_code == 2 and f"cli:bob@{host}" in outsider.output
    assert only_run(world.database).status is RunStatus.AWAITING_APPROVAL

    bob = as_os_user(world, monkeypatch, "bob", **team)
    approved = bob("runs", "approve", run.id)
    assert approved.exit_code == 0, approved.output
    assert "finished" in approved.output and "notification(s) queued" in approved.output
    assert only_run(world.database).status is RunStatus.SUCCEEDED
    shown = keybot(world, "runs", "show", run.id)
    assert (
        shown.returncode == 0
        and "Revoke leaked key" in shown.stdout
        and f"approved by cli:bob@{host}" in shown.stdout
    )
    listed = keybot(world, "runs", "list")
    assert run.id in listed.stdout
    assert world.keys[name]["value"] not in paused.stdout + approved.output + shown.stdout
    verified = keybot(world, "audit", "verify")
    assert verified.returncode == 0 and "every chain intact" in verified.stdout


def test_break_glass_override_is_for_admins_and_is_recorded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique_name("cli")
    world.add_key(name, "production")
    host = identity.host()
    alice = as_os_user(
        world, monkeypatch, "alice", KEYBOT_REVOKERS=f"cli:alice@{host}", KEYBOT_SECURITY_CHANNEL="C0SECURITY"
    )
    assert alice("revoke", name, "--reason", "leak", "--yes").exit_code == 3
    run = only_run(world.database)
    refused = alice("runs", "approve", run.id, "--break-glass", "--reason", "bob is asleep")
    assert refused.exit_code == 2 and only_run(world.database).status is RunStatus.AWAITING_APPROVAL
    no_reason = alice("runs", "approve", run.id, "--break-glass")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output

    admin = as_os_user(
        world, monkeypatch, "alice", KEYBOT_ADMINS=f"cli:alice@{host}", KEYBOT_SECURITY_CHANNEL="C0SECURITY"
    )
    overridden = admin("runs", "approve", run.id, "--break-glass", "--reason", "Slack is down, bob asleep")
    assert overridden.exit_code == 0, overridden.output
    with world.database.session() as session:
        approved = session.scalars(select(TimelineEvent).where(TimelineEvent.kind == "step.approved")).one()
        assert approved.data["break_glass"] == "Slack is down, bob asleep"
        announced = session.scalars(select(Notification).where(Notification.kind == "break_glass")).one()
        assert announced.recipient == "C0SECURITY" and f"cli:alice@{host}" in announced.body


def main_help() -> str:
    return CliRunner().invoke(main.app, ["runs", "approve", "--help"]).output


@pytest.mark.cli_surface
def test_audit_verify_finds_tampering(world: World) -> None:
    name = unique_name("cli")
    world.add_key(name, "staging")
    assert keybot(world, "revoke", name, "--reason", "leak", "--yes").returncode == 0
    with world.database.session() as session:
        event = session.scalars(select(TimelineEvent).where(TimelineEvent.kind == "effect.done")).first()
        assert event is not None
        event.data = {**event.data, "deleted_now": False}
    broken = keybot(world, "audit", "verify")
    assert broken.returncode == 1 and "BROKEN" in broken.stdout and "modified" in broken.stdout


@pytest.mark.cli_surface
def test_refusals_are_one_clear_line(world: World) -> None:
    name = unique_name("cli")
    world.add_key(name, "staging")
    no_confirm = keybot(world, "revoke", name, "--reason", "x")
    assert no_confirm.returncode == 2 and "--yes" in no_confirm.stderr
    unknown = keybot(world, "revoke", "no-such-key", "--reason", "x", "--yes")
    assert unknown.returncode == 2 and "no key matches" in unknown.stderr
    bad_mode = keybot(world, "revoke", name, "--reason", "x", "--yes", "--mode", "yolo")
    assert bad_mode.returncode == 2 and "staged or emergency" in bad_mode.stderr
    for result in (no_confirm, unknown, bad_mode):
        assert "Traceback" not in result.stderr
    missing = keybot(world, "runs", "show", "run_nope")
    assert missing.returncode == 2 and "no run" in missing.stderr
    with world.database.session() as session:
        assert session.scalars(select(Run)).all() == []


def test_runbook_show_matches_golden(world: World) -> None:
    document = runbook_document(load_runbooks(REPO / "runbooks")["revoke-replace-audit-notify"])
    golden = GOLDEN / "runbook-revoke-replace-audit-notify.md"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(document)
    assert document == golden.read_text()
    shown = keybot(world, "runbook", "show", "revoke-replace-audit-notify", "--markdown")
    assert shown.returncode == 0 and shown.stdout.strip() == document.strip()
    assert "second person" in document and "Who is told" in document


def test_every_cli_decision_refuses_an_os_user_who_may_not_and_changes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.registry.models import Key
    from bot.runbooks.models import StepStatus as Step
    from tests.test_permission_matrix import put_run, snapshot

    host = identity.host()
    mallory = as_os_user(world, monkeypatch, "mallory", KEYBOT_REVOKERS=f"cli:alice@{host}")
    ask = {"instructions": "not confirmed", "decide": True}
    why = ("--reason", "x")
    cases = [
        ("runs approve", RunStatus.AWAITING_APPROVAL, "revoke_old", Step.AWAITING_APPROVAL, {}, ()),
        ("runs retry", RunStatus.NEEDS_ATTENTION, "mint", Step.NEEDS_ATTENTION, {}, ()),
        ("runs skip", RunStatus.NEEDS_ATTENTION, "mint", Step.NEEDS_ATTENTION, {}, why),
        ("runs done", RunStatus.WAITING_MANUAL, "mint", Step.WAITING_MANUAL, {}, ("--note", "x")),
        ("runs abort", RunStatus.NEEDS_ATTENTION, "mint", Step.NEEDS_ATTENTION, {}, why),
        ("runs revoke-now", RunStatus.WAITING_MANUAL, "distribute", Step.WAITING_MANUAL, ask, ()),
        ("runs wait-longer", RunStatus.WAITING_MANUAL, "distribute", Step.WAITING_MANUAL, ask, ()),
        ("runs redeployed", RunStatus.WAITING, "distribute", Step.WAITING, {}, ()),
        ("incidents resolve", RunStatus.ABORTED, "mint", Step.NEEDS_ATTENTION, {}, why),
        ("incidents false-alarm", RunStatus.ABORTED, "mint", Step.NEEDS_ATTENTION, {}, why),
    ]
    for command, status, step, step_status, output, extra in cases:
        cell = put_run(world, "production", status, step, step_status, output)
        with world.database.session() as session:
            run, key = session.get(Run, cell.run_id), session.get(Key, cell.key_id)
            assert run is not None and key is not None
            target = f"INC-{run.incident_id:05d}" if command.startswith("incidents") else run.id
            if command == "runs redeployed":
                extra = (key.consumers[0].name,)
        before = snapshot(world, cell.key_id)
        refused = mallory(*command.split(), target, *extra)
        assert refused.exit_code == 2 and "may" in refused.output.lower(), (command, refused.output)
        assert snapshot(world, cell.key_id) == before, command
