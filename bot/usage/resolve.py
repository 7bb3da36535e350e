"""Which registry key an ingest line names: `#12`/12, a name, a provider key id, a redacted form or a
fingerprint. Never a secret: a key field that looks like one is refused, and never repeated back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.registry.models import Key
from bot.secrets import contains_secret, parse_redacted

KEYBOT_ID = re.compile(r"^#?(\d{1,12})$")
FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
SAFE_TO_SHOW = re.compile(r"^[#A-Za-z0-9_.:/-]{1,80}$")
LONG_RANDOM = re.compile(r"[A-Za-z0-9]{24,}")
MAX_REF = 200
VALUE_REFUSED = (
    "the key field looks like a secret; send the key's id, name, redacted form or fingerprint instead"
)


class Unresolved(ValueError):
    """The line names no single registry key; the message is safe to send back."""


def shown(ref: str) -> str:
    """`ref` quoted when it is safe to repeat, else a placeholder (it may be a secret we do not know)."""
    if SAFE_TO_SHOW.match(ref) and not LONG_RANDOM.search(ref) and not contains_secret(ref):
        return repr(ref)
    return "(value not shown)"


@dataclass
class KeyResolver:
    """Resolves key references for one request or file; each distinct reference is looked up once."""

    session: Session
    _cache: dict[object, int | str] = field(default_factory=dict)
    stamps: dict[object, datetime] = field(default_factory=dict)
    """Parsed `ts` values of this request (gateways send many lines per second): parsed once."""

    def resolve(self, ref: object) -> int:
        """The key id, or raises Unresolved."""
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise Unresolved("key must be a string (name, #id, redacted form, fingerprint) or an integer id")
        hit = self._cache.get(ref)
        if hit is None:
            hit = self._cache[ref] = self._lookup(ref)
        if isinstance(hit, str):
            raise Unresolved(hit)
        return hit

    def _lookup(self, ref: int | str) -> int | str:
        if isinstance(ref, int):
            return self._by_id(ref) if 0 < ref < 10**12 else f"no key #{ref}"
        text = ref.strip()
        if not text:
            return "key is empty"
        if len(text) > MAX_REF or contains_secret(text):
            return VALUE_REFUSED if contains_secret(text) else f"key is longer than {MAX_REF} characters"
        if found := KEYBOT_ID.match(text):
            return self._by_id(int(found.group(1)))
        live = Key.drill.is_(False)
        if FINGERPRINT.match(text):
            by_print = self.session.scalars(select(Key.id).where(Key.fingerprint == text, live)).first()
            if by_print is not None:
                return by_print
        if (redacted := parse_redacted(text)) is not None:
            prefix, suffix = redacted
            rows = self.session.execute(
                select(Key.id, Key.secret_family).where(Key.secret_last4 == suffix[-4:], live)
            ).all()
            ids = [
                i
                for i, family in rows
                if family is None or family.startswith(prefix) or prefix.startswith(family)
            ]
            if len(ids) == 1:
                return ids[0]
            if ids:
                return f"{shown(text)} matches {len(ids)} keys; send the key's #id"
        rows = self.session.execute(
            select(Key.id, Key.provider_key_id)
            .where(or_(Key.provider_key_id == text, func.lower(Key.name) == text.lower()), live)
            .limit(10)
        ).all()
        by_provider = [i for i, provider_id in rows if provider_id == text]
        for ids in (by_provider, [i for i, _p in rows]):  # a provider key id wins over a name
            if len(ids) == 1:
                return ids[0]
            if ids:
                return f"{shown(text)} matches several keys; send the key's #id"
        return f"unknown key {shown(text)}"

    def _by_id(self, key_id: int) -> int | str:
        found = self.session.scalars(select(Key.id).where(Key.id == key_id, Key.drill.is_(False))).first()
        return found if found is not None else f"no key #{key_id}"
