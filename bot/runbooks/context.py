"""What an action sees: facts about the key, the run's persisted context, and the tools to act with."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, bindparam, select

from bot.providers.base import KeyProvider, KeyRef, ProviderError, SecretStore
from bot.registry.fingerprint import Fingerprinter
from bot.registry.models import Consumer, Key, KeyOwner, OwnerRole, Team, redacted_form_of
from bot.runbooks import failpoints
from bot.runbooks.journal import Journal
from bot.runbooks.models import RunStatus
from bot.runbooks.run_context import RunContext
from bot.secrets import redact

DEFAULT_VAULT_PREFIX = "secret/keybot"
KEYS = cast(Table, Key.__table__)
TEAMS = cast(Table, Team.__table__)
OWNERS = cast(Table, KeyOwner.__table__)
CONSUMERS = cast(Table, Consumer.__table__)

KEY_FACTS = (
    select(
        KEYS,
        TEAMS.c.name.label("team_name"),
        TEAMS.c.slack_channel,
        TEAMS.c.manager_slack_id,
        OWNERS.c.id.label("owner_row"),
        OWNERS.c.slack_user_id,
        OWNERS.c.role,
        CONSUMERS.c.id.label("consumer_row"),
        CONSUMERS.c.name.label("consumer_name"),
        CONSUMERS.c.contact,
    )
    .select_from(
        KEYS.outerjoin(TEAMS, KEYS.c.team_id == TEAMS.c.id)
        .outerjoin(OWNERS, OWNERS.c.key_id == KEYS.c.id)
        .outerjoin(CONSUMERS, CONSUMERS.c.key_id == KEYS.c.id)
    )
    .where(KEYS.c.id == bindparam("key_id"))
)
"""Key `:key_id` with its team, owners and consumers joined: one row per (owner, consumer) pair."""


class StepFailed(Exception):
    """A permanent failure a human must look at; the message says what happened and what to do."""


class RunAborted(Exception):
    """Someone aborted the run while a step was under way; no further outside change is made."""


class NeedsHuman(Exception):
    """The step cannot be automated for this key; the message is the checklist for the human."""


class WaitFor(Exception):
    """The step is waiting for people or time: the run pauses holding no thread and no lease, and the
    clock runs the step again at `until` (or sooner, when the event it waits for arrives)."""

    def __init__(self, until: datetime, why: str) -> None:
        super().__init__(why)
        self.until = until


class NeedsDecision(Exception):
    """A person must choose how the step goes on (e.g. "Revoke now" or "Wait longer"); the message asks."""


@dataclass(frozen=True)
class WaitSettings:
    """How long staged mode waits for consumers before it asks the on-call (minutes, per environment)."""

    deadlines: dict[str, float] = field(default_factory=lambda: {"production": 60.0, "default": 30.0})
    quiet_minutes: float = 15.0  # the old key's traffic stayed at zero this long: consumers have moved
    poll_seconds: float = 60.0  # how often a waiting step looks at traffic again

    def deadline_minutes(self, environment: str) -> float:
        return self.deadlines.get(environment, self.deadlines.get("default", 30.0))


@dataclass(frozen=True)
class KeyFacts:
    """A snapshot of the registry row, so actions never hold a database session across outside calls."""

    id: int
    name: str
    provider: str
    provider_key_id: str | None
    project: str | None
    environment: str
    vault_path: str
    redacted: str | None
    owners: list[str]
    backups: list[str]
    team: str | None
    team_channel: str | None
    manager: str | None
    consumers: list[tuple[str, str | None]]
    created_at: datetime
    last_rotated_at: datetime | None
    status: str = field(
        default="active", compare=False
    )  # the registry status when read (a false alarm restores the one before the run)

    @classmethod
    def load(cls, conn: Connection, key_id: int) -> KeyFacts | None:
        """The same snapshot read with one Core query (the ORM's loading costs more than the rows)."""
        return cls.from_rows(conn.execute(KEY_FACTS, {"key_id": key_id}).all())

    @classmethod
    def from_rows(cls, rows: Sequence[Row[Any]]) -> KeyFacts | None:
        if not rows:
            return None
        key = rows[0]
        owners = {r.owner_row: (r.slack_user_id, r.role) for r in rows if r.owner_row is not None}
        consumers = {r.consumer_row: (r.consumer_name, r.contact) for r in rows if r.consumer_row is not None}
        ordered_owners = [owners[i] for i in sorted(owners)]
        return cls(
            id=key.id,
            name=key.name,
            provider=key.provider,
            provider_key_id=key.provider_key_id,
            project=key.project,
            environment=key.environment,
            vault_path=key.vault_path or f"{DEFAULT_VAULT_PREFIX}/{key.name}",
            redacted=redacted_form_of(key.secret_family, key.secret_last4),
            owners=[user for user, role in ordered_owners if role == OwnerRole.OWNER],
            backups=[user for user, role in ordered_owners if role == OwnerRole.BACKUP],
            team=key.team_name,
            team_channel=key.slack_channel,
            manager=key.manager_slack_id,
            consumers=[consumers[i] for i in sorted(consumers)],
            created_at=key.created_at,
            last_rotated_at=key.last_rotated_at,
            status=str(getattr(key.status, "value", key.status)),
        )

    @property
    def ref(self) -> KeyRef:
        return KeyRef(self.provider_key_id, self.project, self.redacted, self.name)


@dataclass
class Toolkit:
    """The outside systems a run may touch; the sandbox swaps these for local stand-ins in drills."""

    providers: dict[str, KeyProvider]
    store: SecretStore | None
    fingerprinter: Fingerprinter


@dataclass
class StepContext:
    journal: Journal
    toolkit: Toolkit
    run_id: str
    runbook: str
    mode: str
    step: str
    incident_id: int | None
    actor: str
    drill: bool
    key: KeyFacts
    state: RunContext
    completed: dict[str, str] = field(default_factory=dict)  # action -> step status, for invariant checks
    waits: WaitSettings = field(default_factory=WaitSettings)

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}-{self.step}"

    @property
    def provider(self) -> KeyProvider | None:
        return self.toolkit.providers.get(self.key.provider)

    @property
    def store(self) -> SecretStore:
        if self.toolkit.store is None:
            raise StepFailed(
                "no Vault is configured (VAULT_ADDR): keybot needs it to hold the replacement key"
            )
        return self.toolkit.store

    def record(self, kind: str, data: dict[str, Any] | None = None) -> None:
        """Put an event on the incident timeline; it is written with the run's next transition."""
        self.journal.event(kind, data, step=self.step, actor=self.actor)

    @contextmanager
    def effect(self, name: str, **target: Any) -> Iterator[dict[str, Any]]:
        """Record the intent before an outside change and the outcome after it, whatever happens.

        The intent (and everything recorded before it) is committed before the change is made; the
        outcome goes out with the next write, which always comes before the next outside change.
        """
        self.record("effect.intent", {"effect": name, **target})
        if self.journal.commit() is RunStatus.ABORTED:
            self.record("effect.cancelled", {"effect": name, "why": "the run was aborted"})
            raise RunAborted(name)
        outcome: dict[str, Any] = {}
        try:
            yield outcome
        except ProviderError as error:
            self.record(
                "effect.failed", {"effect": name, "error": redact(str(error)), "kind": error.kind.value}
            )
            raise
        failpoints.hit(f"effect:{name}")
        self.record("effect.done", {"effect": name, **target, **outcome})
