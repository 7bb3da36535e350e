"""Break-glass from a terminal: revoke, runs, audit verify and runbook show as an operator runs them."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from bot.incidents.models import TimelineEvent
from bot.runbooks.definitions import load_runbooks
from bot.runbooks.models import Run, RunStatus
from bot.runbooks.render import runbook_document
from tests.test_crash_recovery import keybot, only_run
from tests.world import REPO, World, unique_name

GOLDEN = Path(__file__).parent / "golden"


def test_break_glass_revoke_with_second_person_approval(world: World) -> None:
    name = unique_name("cli")
    world.add_key(name, "production")
    paused = keybot(world, "revoke", name, "--reason", "pasted in a ticket", "--yes", "--as", "cli:alice")
    assert paused.returncode == 3, paused.stderr
    assert "keybot runs approve" in paused.stderr
    run = only_run(world.database)
    assert run.status is RunStatus.AWAITING_APPROVAL
    self_approve = keybot(world, "runs", "approve", run.id, "--as", "cli:alice")
    assert self_approve.returncode == 2 and "two-person rule" in self_approve.stderr
    approved = keybot(world, "runs", "approve", run.id, "--as", "cli:bob")
    assert approved.returncode == 0, approved.stderr
    assert "finished" in approved.stdout and "notification(s) queued" in approved.stdout
    assert only_run(world.database).status is RunStatus.SUCCEEDED
    shown = keybot(world, "runs", "show", run.id)
    assert (
        shown.returncode == 0
        and "Revoke leaked key" in shown.stdout
        and "approved by cli:bob" in shown.stdout
    )
    listed = keybot(world, "runs", "list")
    assert run.id in listed.stdout
    assert world.keys[name]["value"] not in paused.stdout + approved.stdout + shown.stdout
    verified = keybot(world, "audit", "verify")
    assert verified.returncode == 0 and "every chain intact" in verified.stdout


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
