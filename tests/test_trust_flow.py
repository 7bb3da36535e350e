from __future__ import annotations

from sqlalchemy import select

from bot.incidents import lifecycle
from bot.registry.models import Key
from bot.runbooks import service
from bot.runbooks.models import Run, RunStatus
from tests.test_engine import start
from tests.world import POLICY, World, unique_name


def test_fa(world: World) -> None:
    key_id = world.add_key(unique_name(), "staging")
    world.openai.inject(r"/api_keys/", status=403, times=None, method="DELETE")
    r1 = start(world, key_id)
    assert world.engine().execute(r1) is RunStatus.NEEDS_ATTENTION
    service.abort(world.database, r1, "U0OWNER01", "x", policy=POLICY)
    r2 = start(world, key_id)
    assert world.engine().execute(r2) is RunStatus.NEEDS_ATTENTION
    with world.database.session() as s:
        i1 = s.get(Run, r1).incident_id
        print("before", s.get(Key, key_id).status)
    print(lifecycle.close(world.database, i1, "U0OWNER01", "nah", policy=POLICY, false_alarm=True))
    with world.database.session() as s:
        print("after", s.get(Key, key_id).status, s.get(Run, r2).status)
