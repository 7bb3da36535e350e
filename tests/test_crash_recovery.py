"""`keybot revoke` killed with SIGKILL at every step boundary, then resumed by another process.

Mid-effect kills are resumed with `keybot runs resume`; step-boundary kills by this test process's engine
(the same code, without paying for another interpreter start).

After recovery: the old key was deleted exactly once, Vault holds exactly one replacement version, exactly
one replacement service account exists, no notification was queued twice, and the timeline verifies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy import select

from bot.db.session import Database
from bot.incidents.service import verify_chain
from bot.notifications.models import Notification
from bot.runbooks.models import Run, RunStatus
from tests.conftest import TEST_FINGERPRINT_KEY
from tests.test_engine import vault_versions
from tests.world import REPO, RUNBOOKS, World, unique_name

KEYBOT = [sys.executable, "-c", "from bot.cli.main import main; main()"]
STAGED = RUNBOOKS["revoke-replace-audit-notify"].modes["staged"]
EFFECTS = ["replacement.mint", "provider.revoke", "vault.cleanup"]
CRASH_POINTS = [f"after:{s}" for s in STAGED] + [f"effect:{e}" for e in EFFECTS]
CRASH_POINTS += ["mint:minted", "cleanup:promoted"]  # between the two outside changes of one effect


def keybot_env(world: World, failpoint: str | None = None) -> dict[str, str]:
    """The environment an operator would set, pointing at this test's stand-ins and database."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VAULT_", "OPENAI_", "KEYBOT_"))
    }
    env.update(
        DATABASE_URL=world.database.url,
        OPENAI_ADMIN_KEY=world.openai.admin_key,
        OPENAI_ADMIN_BASE_URL=world.openai.base_url,
        VAULT_ADDR=world.bao.addr,
        VAULT_TOKEN=world.bao.token,
        KEYBOT_RUNBOOKS_DIR=str(REPO / "runbooks"),
        KEYBOT_FINGERPRINT_KEY=TEST_FINGERPRINT_KEY,
        KEYBOT_BACKOFF_SCALE="0.01",
        KEYBOT_QUIET_MINUTES="0",
        KEYBOT_LOG_FORMAT="json",
        COLUMNS="200",
    )
    if failpoint:
        env["KEYBOT_FAILPOINTS"] = failpoint
    return env


def keybot(world: World, *args: str, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KEYBOT, *args],
        capture_output=True,
        text=True,
        env=keybot_env(world, failpoint),
        timeout=120,
        check=False,
    )


def only_run(database: Database) -> Run:
    with database.session() as session:
        return session.scalars(select(Run)).one()


POSTGRES_POINTS = {"after:mint", "after:revoke_old", *(f"effect:{e}" for e in EFFECTS)}
"""SQLite takes every crash point; PostgreSQL the three outside effects and two step boundaries (its
single-statement writes are the same at every boundary), which keeps the suite within its time budget."""


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_sigkill_then_resume(world: World, point: str) -> None:
    if world.database.engine.dialect.name == "postgresql" and point not in POSTGRES_POINTS:
        pytest.skip("PostgreSQL takes the effects and two step boundaries; SQLite takes every point")
    name = unique_name("crash")
    world.add_key(name, "staging")
    old = world.keys[name]
    killed = keybot(world, "revoke", name, "--reason", "leaked in CI logs", "--yes", failpoint=point)
    assert killed.returncode == -signal.SIGKILL, (point, killed.stdout[-2000:], killed.stderr[-2000:])
    run = only_run(world.database)
    if point.startswith("effect:"):
        resumed = keybot(world, "runs", "resume", run.id)
        assert resumed.returncode == 0, (point, resumed.stdout[-2000:], resumed.stderr[-2000:])
    else:
        assert world.engine().execute(run.id) is RunStatus.SUCCEEDED, point
    assert only_run(world.database).status is RunStatus.SUCCEEDED

    deletes = [
        c for c in world.openai.calls_to(f"/api_keys/{old['id']}$", method="DELETE") if c.status == 200
    ]
    assert len(deletes) == 1, point
    assert not world.openai.authenticates(old["value"])
    versions = vault_versions(world, name)
    assert len(versions) == 2, (point, versions)
    assert versions[1]["destroyed"] is True and versions[2]["destroyed"] is False
    accounts = [a for a in world.openai.service_accounts.values() if a.name.startswith("keybot-")]
    assert len(accounts) == 1, point
    with world.database.session() as session:
        sent = Counter((n.kind, n.recipient) for n in session.scalars(select(Notification)))
        checked, breaks = verify_chain(session)
    assert sent and max(sent.values()) == 1, sent
    assert checked > 0 and breaks == []


def test_two_revokes_of_one_key_at_once(world: World) -> None:
    """Both processes start together: exactly one runs, the other is told who holds the key.

    The winner's first read of the audit log (a run's assess step; the preflight both make before opening
    does not read it) is held for a few seconds, so the winner still holds the key when the loser asks,
    however fast the run or slow the loser's start.
    """
    name = unique_name("race")
    world.add_key(name, "staging")
    world.openai.inject("/audit_logs", status=None, delay=4.0)
    env_args = ("revoke", name, "--reason", "race", "--yes")
    procs = [
        subprocess.Popen(
            [*KEYBOT, *env_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=keybot_env(world),
        )
        for _ in range(2)
    ]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    codes = sorted(r[2] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[2] == 2)
    assert "is already being handled by run" in loser[1] and "cli:" in loser[1]
    deletes = [c for c in world.openai.calls_to(f"/api_keys/{world.keys[name]['id']}$", method="DELETE")]
    assert len([c for c in deletes if c.status == 200]) == 1
