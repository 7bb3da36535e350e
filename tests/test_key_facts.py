"""The engine's snapshot of a registry key, read with Core, says what the ORM row says."""

from __future__ import annotations

from bot.registry.models import Consumer, Key, KeyOwner, OwnerRole
from bot.runbooks.context import KeyFacts
from tests.world import World, unique_name


def test_core_snapshot_matches_the_orm_row(world: World) -> None:
    key_id = world.add_key(unique_name("facts"), "staging")
    with world.database.session() as session:
        key = session.get(Key, key_id)
        assert key is not None
        session.add_all(
            [
                KeyOwner(key_id=key_id, slack_user_id="U0OWNER02", role=OwnerRole.OWNER),
                KeyOwner(key_id=key_id, slack_user_id="U0BACKUP2", role=OwnerRole.BACKUP),
                Consumer(key_id=key_id, name="batch-jobs", contact=None),
            ]
        )
    with world.database.session() as session:
        key = session.get(Key, key_id)
        assert key is not None
        loaded = KeyFacts.load(session.connection(), key_id)
        assert loaded is not None and key.team is not None

    assert (loaded.id, loaded.name, loaded.provider, loaded.environment) == (
        key_id,
        key.name,
        key.provider,
        "staging",
    )
    assert (loaded.provider_key_id, loaded.project, loaded.vault_path) == (
        key.provider_key_id,
        key.project,
        key.vault_path,
    )
    assert (loaded.team, loaded.team_channel) == (key.team.name, key.team.slack_channel)
    assert (loaded.created_at, loaded.last_rotated_at, loaded.redacted) == (
        key.created_at,
        key.last_rotated_at,
        key.redacted,
    )
    assert loaded.owners == ["U0OWNER01", "U0OWNER02"] and loaded.backups == ["U0BACKUP1", "U0BACKUP2"]
    assert loaded.consumers[-1] == ("batch-jobs", None)
    assert loaded.team_channel and loaded.manager == "U0MANAGER1"
    assert loaded.redacted is not None and "..." in loaded.redacted


def test_an_unknown_key_has_no_snapshot(world: World) -> None:
    with world.database.session() as session:
        assert KeyFacts.load(session.connection(), 987654321) is None
