"""Finding keys the way people name them at 3 a.m.: a name, an id, a redacted value or the secret itself."""

from __future__ import annotations

import difflib
import enum
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, joinedload

from bot.db.base import utcnow
from bot.registry.fingerprint import Fingerprinter
from bot.registry.models import Key, KeyOwner, KeyStatus, Team
from bot.secrets import find_secrets, parse_redacted

MAX_QUERY_LENGTH = 1000
SUGGESTION_POOL = 5000
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
KEYBOT_ID = re.compile(r"^#?(\d{1,12})$")
# Long, space-free tokens are treated as possibly-secret even when no known format matches.
SECRET_LIKE = re.compile(r"^[A-Za-z0-9_\-+/=.]{24,}$")


class MatchedBy(enum.StrEnum):
    FINGERPRINT = "fingerprint"
    REDACTED = "redacted value"
    PROVIDER_ID = "provider key id"
    KEYBOT_ID = "keybot id"
    NAME = "name"
    NOTHING = "nothing"


@dataclass
class Lookup:
    """The keys a query matched, how, and close names when it matched none."""

    matches: list[Key] = field(default_factory=list)
    matched_by: MatchedBy = MatchedBy.NOTHING
    suggestions: list[str] = field(default_factory=list)
    query_was_secret: bool = False

    @property
    def unique(self) -> Key | None:
        return self.matches[0] if len(self.matches) == 1 else None

    @property
    def ambiguous(self) -> bool:
        return len(self.matches) > 1


NOT_DRILL = Key.drill.is_(False)
WITH_CARD = (joinedload(Key.owners), joinedload(Key.consumers))
"""A looked-up key is shown as its card (owners, consumers): one joined query instead of three, which
halved the CPU of a `/revoke-key` lookup (docs/reliability.md)."""
"""Drill copies (bot/sandbox/drill.py) are never found, suggested, listed or due."""


def _family_compatible(query_prefix: str, family: str | None) -> bool:
    if family is None:
        return True
    return family.startswith(query_prefix) or query_prefix.startswith(family)


def _by_redacted(session: Session, prefix: str, suffix: str) -> list[Key]:
    rows = (
        session.scalars(select(Key).where(Key.secret_last4 == suffix[-4:], NOT_DRILL).order_by(Key.id))
        .unique()
        .all()
    )
    return [k for k in rows if _family_compatible(prefix, k.secret_family)]


def lookup(session: Session, query: str, fingerprinter: Fingerprinter) -> Lookup:
    """Resolve what a person typed; the query may be a live secret, so it is never logged or echoed."""
    text = CONTROL_CHARS.sub("", query).strip()[:MAX_QUERY_LENGTH]
    if not text:
        return Lookup()
    found = find_secrets(text)
    if found or SECRET_LIKE.match(text):
        secret = found[0].value if found else text
        same_secret = (
            session.scalars(
                select(Key)
                .where(Key.fingerprint == fingerprinter.fingerprint(secret), NOT_DRILL)
                .options(*WITH_CARD)
            )
            .unique()
            .all()  # not first(): a joined collection is complete only once every row is read
        )
        if same_secret:
            return Lookup([same_secret[0]], MatchedBy.FINGERPRINT, query_was_secret=True)
        if found:
            same_tail = _by_redacted(session, found[0].family, found[0].last4)
            return Lookup(
                same_tail, MatchedBy.REDACTED if same_tail else MatchedBy.NOTHING, query_was_secret=True
            )
    redacted = parse_redacted(text)
    if redacted is not None:
        candidates = _by_redacted(session, *redacted)
        if candidates:
            return Lookup(candidates, MatchedBy.REDACTED)
    if found:
        return Lookup(query_was_secret=True)
    id_match = KEYBOT_ID.match(text)
    if id_match:
        key = session.get(Key, int(id_match.group(1)))
        if key is not None and not key.drill:
            return Lookup([key], MatchedBy.KEYBOT_ID)
    by_provider = (
        session.scalars(
            select(Key).where(Key.provider_key_id == text, NOT_DRILL).options(*WITH_CARD).order_by(Key.id)
        )
        .unique()
        .all()
    )
    if by_provider:
        return Lookup(list(by_provider), MatchedBy.PROVIDER_ID)
    by_name = (
        session.scalars(
            select(Key)
            .where(func.lower(Key.name) == text.lower(), NOT_DRILL)
            .options(*WITH_CARD)
            .order_by(Key.id)
        )
        .unique()
        .all()
    )
    if by_name:
        return Lookup(list(by_name), MatchedBy.NAME)
    if SECRET_LIKE.match(text) and not _looks_like_name(text):
        return Lookup(query_was_secret=True)
    return Lookup(suggestions=suggest(session, text))


def _looks_like_name(text: str) -> bool:
    """Key names (`payments-openai-prod`) are long but worded; an unknown random token gets no suggestions."""
    return bool(re.fullmatch(r"[A-Za-z0-9]+([_.-][A-Za-z0-9]+)*", text)) and not re.search(
        r"[A-Za-z0-9]{20,}", text
    )


def suggest(session: Session, text: str, limit: int = 5) -> list[str]:
    """Close key names: a bounded pool of plausible names, then difflib ranks them."""
    lowered = text.lower()
    tokens = [t for t in re.split(r"[^a-z0-9]+", lowered) if len(t) >= 3][:4]
    conditions = [func.lower(Key.name).like(f"%{t}%") for t in tokens] or [
        func.lower(Key.name).like(f"{lowered[:2]}%")
    ]
    pool = session.scalars(select(Key.name).where(or_(*conditions), NOT_DRILL).limit(SUGGESTION_POOL)).all()
    return difflib.get_close_matches(lowered, list(pool), n=limit, cutoff=0.5) or list(pool[:limit])


@dataclass(frozen=True)
class KeyFilter:
    team: str | None = None
    owner: str | None = None
    environment: str | None = None
    due_within_days: int | None = None
    status: KeyStatus | None = None


def rotation_due_at(key: Key) -> datetime | None:
    if key.rotation_days is None:
        return None
    return (key.last_rotated_at or key.created_at) + timedelta(days=key.rotation_days)


def list_keys(session: Session, filters: KeyFilter, limit: int = 1000) -> list[Key]:
    statement: Select[Key] = select(Key).where(NOT_DRILL).order_by(Key.name)
    if filters.team:
        statement = statement.join(Team, Key.team_id == Team.id).where(Team.name == filters.team)
    if filters.owner:
        statement = statement.where(
            Key.id.in_(select(KeyOwner.key_id).where(KeyOwner.slack_user_id == filters.owner))
        )
    if filters.environment:
        statement = statement.where(Key.environment == filters.environment)
    if filters.status:
        statement = statement.where(Key.status == filters.status)
    if filters.due_within_days is None:
        return list(session.scalars(statement.limit(limit)).unique())
    horizon = utcnow() + timedelta(days=filters.due_within_days)
    due = []
    for key in session.scalars(statement.where(Key.rotation_days.is_not(None))).unique():
        when = rotation_due_at(key)
        if when is not None and when <= horizon and key.status != KeyStatus.REVOKED:
            due.append(key)
    due.sort(key=lambda k: rotation_due_at(k) or horizon)
    return due[:limit]
