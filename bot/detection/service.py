"""What the leak watcher does about a leak, whatever surface saw it: mark registered keys compromised, open
an unowned incident for unregistered secrets, and later turn that incident into something revocable.

Nothing here knows about Slack: the caller passes where the text was seen (``where``) and who posted it.
The incident keeps each unregistered secret's kind, redacted form and keyed fingerprint (never its value),
which is all a Revoke button needs to find the key again: in the registry, or at the provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.access.policy import Actor, Decision, NotAllowed, Policy, Subject
from bot.db.session import Database
from bot.detection.leaks import FoundLeak
from bot.incidents.models import Incident, TimelineEvent
from bot.incidents.service import append_event, open_incident
from bot.log import get_logger
from bot.providers.base import KeyProvider, KeyRef, ProviderError
from bot.registry.models import Key, KeyStatus

log = get_logger(__name__)
DETECTED = "leak.detected"
REGISTERED = "leak.registered"
WATCHER = "keybot"
#: The owner of an unregistered key is unknown, so it is treated as production: approval is two-person.
UNKNOWN_ENVIRONMENT = "production"


@dataclass(frozen=True)
class Recorded:
    """What :func:`record_leaks` changed: the incident opened for unregistered secrets, if any."""

    incident_id: int | None = None
    incident_reference: str | None = None
    compromised: tuple[int, ...] = ()


def record_leaks(session: Session, found: Sequence[FoundLeak], *, where: str, poster: str) -> Recorded:
    """Registered keys become ``compromised``; unregistered secrets share one new unowned incident."""
    compromised = []
    for leak in found:
        key = session.get(Key, leak.hit.key_id) if leak.hit.key_id is not None else None
        if key is not None and key.status is KeyStatus.ACTIVE:
            key.status = KeyStatus.COMPROMISED
            compromised.append(key.id)
    unowned = [leak for leak in found if leak.hit.key_id is None]
    if not unowned:
        return Recorded(compromised=tuple(compromised))
    incident = open_incident(
        session,
        key_id=None,
        title=f"Unregistered secret posted in {where}"[:300],
        opened_by=poster,
        reason="leak watcher",
        severity="sev2",
    )
    secrets = [
        {
            "kind": leak.hit.kind,
            "provider": leak.hit.provider,
            "family": leak.family,
            "last4": leak.last4,
            "redacted": leak.hit.redacted,
            "fingerprint": leak.fingerprint,
        }
        for leak in unowned
    ]
    append_event(
        session,
        incident.id,
        DETECTED,
        WATCHER,
        {
            "where": where,
            "kinds": [s["kind"] for s in secrets],
            "redacted": [s["redacted"] for s in secrets],
            "secrets": secrets,
        },
    )
    return Recorded(incident.id, incident.reference, tuple(compromised))


@dataclass(frozen=True)
class RevokeTarget:
    """What a Revoke button on an unregistered secret leads to: a registered key, or what to do by hand."""

    key_id: int | None
    message: str
    refused: bool = False  # the person may not start a revoke: nothing was looked up


def _recorded_secret(session: Session, incident_id: int, fingerprint: str) -> dict[str, Any] | None:
    events = session.scalars(
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident_id, TimelineEvent.kind == DETECTED)
        .order_by(TimelineEvent.seq)
    )
    for event in events:
        for secret in (event.data or {}).get("secrets") or []:
            if isinstance(secret, dict) and secret.get("fingerprint") == fingerprint:
                return secret
    return None


def revoke_target(
    database: Database,
    providers: Mapping[str, KeyProvider],
    incident_id: int,
    fingerprint: str,
    *,
    policy: Policy,
    actor: Actor,
) -> RevokeTarget:
    """Find the key behind an unregistered leaked secret so it can be revoked through the runbook.

    Only someone who may start a revoke of an unowned production key may ask (nothing is looked up or
    registered otherwise). In order: a key registered since (same fingerprint); else the provider's key with
    that redacted value, which is then registered as an unowned production key (so the two-person rule
    applies) linked to the incident; else a message saying exactly what to do by hand.
    """
    try:
        policy.check(Decision.START, actor, Subject("an unregistered leaked key", UNKNOWN_ENVIRONMENT))
    except NotAllowed as refused:
        return RevokeTarget(None, str(refused), refused=True)
    with database.session() as session:
        incident = session.get(Incident, incident_id)
        secret = _recorded_secret(session, incident_id, fingerprint) if incident is not None else None
        if incident is None or secret is None:
            return RevokeTarget(
                None, "keybot has no record of that leak; run `/revoke-key` with the key's name."
            )
        reference = incident.reference
        registered = session.scalars(select(Key.id).where(Key.fingerprint == fingerprint)).first()
        if registered is not None:
            return RevokeTarget(registered, f"{secret['redacted']} is registered.")
    redacted, provider_name = str(secret["redacted"]), str(secret["provider"])
    provider = providers.get(provider_name)
    by_hand = (
        f"Revoke `{redacted}` in the {provider_name} console now, then register its replacement "
        f"(`keybot registry import`) and resolve {reference} with what you did."
    )
    if provider is None:
        return RevokeTarget(None, f"keybot cannot revoke {provider_name} keys itself. {by_hand}")
    try:
        live = provider.find(KeyRef(None, None, redacted))
    except ProviderError as error:
        log.warning("leaked key lookup failed", provider=provider_name, kind=error.kind.value)
        return RevokeTarget(
            None, f"{provider_name} could not be asked about `{redacted}`: {error}. {by_hand}"
        )
    if live is None:
        return RevokeTarget(
            None,
            f"{provider_name} has no live key `{redacted}` that keybot's admin key can see: it may already "
            f"be revoked, or live in another organization. {by_hand}",
        )
    return RevokeTarget(_register(database, incident_id, reference, secret, live.id, live.project), "")


def _register(
    database: Database,
    incident_id: int,
    reference: str,
    secret: dict[str, Any],
    provider_key_id: str,
    project: str | None,
) -> int:
    """Register the provider's key as unowned and compromised, so the revoke runbook can act on it."""
    name = f"leaked-{secret['provider']}-{secret['last4']}-{reference}".lower()[:200]
    with database.session() as session:
        existing = session.scalars(select(Key).where(Key.fingerprint == secret["fingerprint"])).first()
        if existing is not None:
            return existing.id
        key = Key(
            name=name,
            provider=str(secret["provider"]),
            provider_key_id=provider_key_id,
            project=project,
            environment=UNKNOWN_ENVIRONMENT,
            secret_family=str(secret["family"])[:32],
            secret_last4=str(secret["last4"])[:8],
            fingerprint=str(secret["fingerprint"]),
            status=KeyStatus.COMPROMISED,
            tags=["leak-watcher"],
            description=f"Found at {secret['provider']} by the leak watcher for {reference}; owner unknown.",
        )
        session.add(key)
        session.flush()
        incident = session.get(Incident, incident_id)
        if incident is not None and incident.key_id is None:
            incident.key_id = key.id
        append_event(session, incident_id, REGISTERED, WATCHER, {"key": name, "redacted": secret["redacted"]})
        return key.id
