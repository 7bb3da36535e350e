"""keybot's per-version bookkeeping in a KV v2 secret's ``custom_metadata``: the model and its rules.

Split out of :mod:`bot.providers.vault` to keep each file short. Pure functions over the JSON of one
``<mount>/metadata/<path>`` read: no Vault calls here. The map is only a cache of re-derivable facts
(each version's data carries ``keybot_run``/``key_id``, and KV's own version metadata says what is
destroyed or deleted), so KV's flags always win over a recorded state.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from bot.providers.base import ProviderErrorKind, StoredVersion
from bot.providers.vault_errors import fail

__all__ = [
    "CURRENT",
    "DELETED",
    "DESTROYED",
    "EXTERNAL",
    "LEAKED",
    "MAX_CUSTOM_KEYS",
    "PENDING",
    "PREVIOUS",
    "UNRECORDED",
    "Labels",
    "Meta",
    "finish",
    "labelled",
    "parse_meta",
    "promoted",
]

MAX_CUSTOM_KEYS = 64  # Vault and OpenBao reject a custom_metadata map with more entries
PENDING, CURRENT, PREVIOUS, LEAKED = "pending", "current", "previous", "leaked"
DESTROYED, DELETED, EXTERNAL, UNRECORDED = "destroyed", "deleted", "external", "unrecorded"
_DROPPABLE = frozenset({DESTROYED, DELETED, EXTERNAL, PREVIOUS})
_VERSION_KEY = re.compile(r"^v(\d+)_")
Labels = tuple[str | None, str | None]  # (keybot_run, key_id) as found in a version's data


@dataclass(frozen=True)
class Meta:
    """One read of ``<mount>/metadata/<path>``."""

    latest: int
    cas_version: int | None  # OpenBao's metadata check-and-set counter; None on HashiCorp Vault
    custom: dict[str, str]
    known: tuple[int, ...]
    destroyed: frozenset[int]
    deleted: frozenset[int]

    def recorded(self, n: int, field: str) -> str | None:
        return self.custom.get(f"v{n}_{field}")

    def state(self, n: int) -> str:
        """KV's own destroyed/deleted flags win over the (possibly stale) recorded state."""
        if n in self.destroyed or n in self.deleted:
            return DESTROYED if n in self.destroyed else DELETED
        rec = self.recorded(n, "state")
        return UNRECORDED if rec is None or rec in (DESTROYED, DELETED) else rec

    def current(self) -> int | None:
        return _int(self.custom.get("current_version"))

    def stored(self, where: str, n: int, labels: Labels | None = None) -> StoredVersion:
        """Version `n` as the engine sees it; `labels` were read from the data of an unrecorded version."""
        run, key_id = labels or (self.recorded(n, "run"), self.recorded(n, "key_id"))
        state = self.state(n)
        if labels is not None and state == UNRECORDED:
            state = PENDING if run else EXTERNAL
        return StoredVersion(where, n, key_id, run, state)


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _is_past(stamp: object) -> bool:
    if not isinstance(stamp, str) or not stamp:
        return False
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= datetime.now(UTC)
    except ValueError:
        return True


def parse_meta(data: dict[str, Any]) -> Meta:
    versions = cast(dict[str, dict[str, Any]], data.get("versions") or {})
    known = tuple(sorted(int(n) for n in versions))
    return Meta(
        latest=int(data.get("current_version") or 0),
        cas_version=_int(data["current_metadata_version"]) if "current_metadata_version" in data else None,
        custom={str(k): str(v) for k, v in (data.get("custom_metadata") or {}).items()},
        known=known,
        destroyed=frozenset(n for n in known if versions[str(n)].get("destroyed")),
        deleted=frozenset(n for n in known if _is_past(versions[str(n)].get("deletion_time"))),
    )


def promoted(meta: Meta, version: int) -> dict[str, str]:
    """`version` becomes current; the old current becomes previous (a leaked one stays leaked)."""
    custom = dict(meta.custom)
    for n in meta.known:
        if n != version and custom.get(f"v{n}_state") == CURRENT:
            custom[f"v{n}_state"] = PREVIOUS
    return {**custom, f"v{version}_state": CURRENT, "current_version": str(version)}


def labelled(meta: Meta, labels: dict[int, Labels], owner: str | None) -> dict[str, str]:
    """Record versions found only by the labels in their data (a crash before the metadata write)."""
    custom = dict(meta.custom)
    for n, (run, key_id) in labels.items():
        if meta.recorded(n, "state") is None and n in meta.known:
            custom[f"v{n}_state"] = PENDING if run else EXTERNAL
            custom.update({f"v{n}_run": run} if run else {})
            custom.update({f"v{n}_key_id": key_id} if run and key_id else {})
    return {**custom, "owner": owner} if owner else custom


def finish(custom: dict[str, str], meta: Meta) -> dict[str, str]:
    """Drop entries of versions KV no longer keeps, recompute the summary keys, stay under the key limit."""
    kept = {k: v for k, v in custom.items() if not (m := _VERSION_KEY.match(k)) or int(m[1]) in meta.known}
    view = dataclasses.replace(meta, custom=kept)
    current = view.current()
    states = {view.state(n) for n in meta.known}
    summary = {
        "managed_by": "keybot",
        "state": next((s for s in (LEAKED, PENDING) if s in states), CURRENT if current else ""),
        "key_id": (view.recorded(current, "key_id") or "") if current else "",
    }
    kept = {k: v for k, v in kept.items() if k not in summary} | {k: v for k, v in summary.items() if v}
    for n in meta.known:
        if len(kept) > MAX_CUSTOM_KEYS and n != current and view.state(n) in _DROPPABLE:
            kept = {k: v for k, v in kept.items() if not k.startswith(f"v{n}_")}
    if len(kept) > MAX_CUSTOM_KEYS:
        raise fail(
            ProviderErrorKind.PERMANENT,
            f"more versions than custom_metadata can track ({MAX_CUSTOM_KEYS} keys)",
        )
    return kept
