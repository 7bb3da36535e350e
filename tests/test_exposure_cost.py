"""What a leak cost comes from the provider's costs API; when it cannot be read, it is "unknown", never 0.

The usage API has no prices, so summing its buckets' cost always gave 0 USD: a manager read "cost 0 USD"
for a key that was being abused.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.db.base import utcnow
from bot.registry.models import Key
from bot.runbooks.models import Run, RunStatus
from tests.world import World, unique_name


def _emergency(world: World, name: str) -> Run:
    with world.database.session() as session:
        key_id = session.scalar(select(Key.id).where(Key.name == name))
    assert key_id is not None
    engine = world.engine()
    opened = engine.start(
        key_id=key_id, runbook="revoke-replace-audit-notify", mode="emergency", actor="U0ONCALL1",
        reason="abused", severity="sev1",
    )  # fmt: skip
    assert engine.execute(opened) is RunStatus.SUCCEEDED
    with world.database.session() as session:
        run = session.get(Run, opened.state.id)
        assert run is not None
        session.expunge(run)
        return run


def test_the_cost_while_exposed_comes_from_the_costs_api(world: World) -> None:
    name = unique_name("cost")
    key_id = world.add_key(name, "staging")
    with world.database.session() as session:  # registered an hour ago, abused half an hour ago
        key = session.get(Key, key_id)
        assert key is not None
        key.created_at = utcnow() - timedelta(hours=1)
    minute = (int(time.time()) - 1800) // 60 * 60
    world.openai.add_usage(world.keys[name]["id"], minute, 2_000_000, 100_000, 40)
    run = _emergency(world, name)
    exposure = run.context["exposure"]
    assert exposure["cost_usd"] is not None and exposure["cost_usd"] > 0
    assert world.openai.calls_to("/organization/costs")


def test_an_unreadable_cost_is_unknown_and_does_not_stop_the_run(world: World) -> None:
    name = unique_name("cost")
    world.add_key(name, "staging")
    world.openai.inject("/organization/costs", 500, times=None)
    run = _emergency(world, name)
    assert run.context["exposure"]["cost_usd"] is None


@pytest.mark.parametrize("cost, shown", [(None, "unknown"), (0.0, "0.0 USD"), (4.17, "4.17 USD")])
def test_cost_text_never_prints_none(cost: float | None, shown: str) -> None:
    from bot.notifications.render import cost_text

    assert cost_text(cost) == shown
