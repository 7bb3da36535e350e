"""The leak watcher's domain service without Slack: what a leak changes, and where Revoke… leads."""

from __future__ import annotations

import json

from sqlalchemy import select

from bot.access.policy import Actor
from bot.detection.leaks import find_leaks_with_fingerprints
from bot.detection.service import DETECTED, record_leaks, revoke_target
from bot.incidents.models import Incident, TimelineEvent
from bot.registry.models import Key, KeyStatus
from tests.fakes import canary_key
from tests.world import ADMIN, POLICY, World, unique_name


def test_record_leaks_compromises_registered_keys_and_opens_one_incident_for_the_rest(world: World) -> None:
    name = unique_name()
    world.add_key(name, "staging")
    registered, loose_1, loose_2 = world.keys[name]["value"], canary_key(), canary_key()
    text = f"{registered}\n{loose_1} and again {loose_1}\n{loose_2}"
    with world.database.session() as session:
        found = find_leaks_with_fingerprints(session, text, world.fingerprinter)
        recorded = record_leaks(session, found, where="#general", poster="U0POSTER1")
    assert len(found) == 3 and recorded.incident_id is not None and len(recorded.compromised) == 1
    with world.database.session() as session:
        key = session.scalars(select(Key).where(Key.name == name)).one()
        assert key.status is KeyStatus.COMPROMISED
        incident = session.get(Incident, recorded.incident_id)
        assert (
            incident is not None
            and incident.key_id is None
            and incident.reference == recorded.incident_reference
        )
        [event] = session.scalars(
            select(TimelineEvent).where(
                TimelineEvent.incident_id == incident.id, TimelineEvent.kind == DETECTED
            )
        ).all()
        stored = json.dumps(event.data)
        assert len(event.data["secrets"]) == 2
        for value in (registered, loose_1, loose_2):
            assert value not in stored and value[8:40] not in stored
        assert {s["fingerprint"] for s in event.data["secrets"]} == {
            world.fingerprinter.fingerprint(loose_1),
            world.fingerprinter.fingerprint(loose_2),
        }


def test_only_registered_secrets_open_no_incident(world: World) -> None:
    name = unique_name()
    world.add_key(name, "staging")
    with world.database.session() as session:
        found = find_leaks_with_fingerprints(session, world.keys[name]["value"], world.fingerprinter)
        assert record_leaks(session, found, where="#general", poster="U0POSTER1").incident_id is None


def test_revoke_target_prefers_a_key_registered_since_the_leak(world: World) -> None:
    project = world.openai.add_project("p")
    live = world.openai.add_key(project["id"], "k")
    with world.database.session() as session:
        found = find_leaks_with_fingerprints(session, live["value"], world.fingerprinter)
        recorded = record_leaks(session, found, where="#general", poster="U0POSTER1")
    assert recorded.incident_id is not None
    fingerprint = found[0].fingerprint
    providers = world.toolkit().providers
    first = revoke_target(
        world.database, providers, recorded.incident_id, fingerprint, policy=POLICY, actor=Actor(ADMIN)
    )
    again = revoke_target(
        world.database, providers, recorded.incident_id, fingerprint, policy=POLICY, actor=Actor(ADMIN)
    )
    assert first.key_id is not None and again.key_id == first.key_id, "registered once, found again"
    unknown = revoke_target(
        world.database, providers, recorded.incident_id, "0" * 64, policy=POLICY, actor=Actor(ADMIN)
    )
    assert unknown.key_id is None and "no record" in unknown.message
