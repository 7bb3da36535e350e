"""The bulk executor on its own: one outcome per distinct key, never an exception, even when workers fail."""

from __future__ import annotations

from bot.runbooks.bulk import BulkRequest, Outcome, revoke_many
from bot.runbooks.engine import Engine

REQUEST = BulkRequest("revoke-replace-audit-notify", "emergency", "U0ONCALL1", "leaked .env")


def broken_factory() -> Engine:
    raise RuntimeError("VAULT_ADDR is not reachable")


def test_a_worker_that_cannot_start_reports_every_key_it_took() -> None:
    seen: list[Outcome] = []
    outcomes = revoke_many([3, 1, 3, 2], REQUEST, broken_factory, threads=2, on_outcome=seen.append)
    assert sorted(o.key_id for o in outcomes) == [1, 2, 3]
    assert all(o.status == "error" and "VAULT_ADDR is not reachable" in o.detail for o in outcomes)
    assert sorted(o.key_id for o in seen) == [1, 2, 3]


def test_processes_that_cannot_start_report_too() -> None:
    outcomes = revoke_many(range(5), REQUEST, broken_factory, processes=2, threads=2)
    assert sorted(o.key_id for o in outcomes) == list(range(5))
    assert {o.status for o in outcomes} == {"error"}


def test_nothing_to_do() -> None:
    assert revoke_many([], REQUEST, broken_factory) == []
