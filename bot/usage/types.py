"""The usage domain's value types: what callers hand in (`UsageLine`) and what they read back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np

METRICS: tuple[str, ...] = ("requests", "tokens", "cost_usd", "status_401", "status_429")
"""The per-minute series the detector watches; `series()` returns one array per name."""

STATUS_CLASSES: tuple[str, ...] = ("2xx", "401", "403", "429", "4xx", "5xx", "other")
"""Status codes are counted in these fixed classes, one column each, so concurrent writers can add to
them in one portable statement (a JSON of arbitrary codes could only be merged read-modify-write)."""

SightingKind = Literal["ip", "model"]


def status_class(code: str) -> str:
    """`"401"` → `"401"`, `"404"` → `"4xx"`, `"503"` / `"5xx"` → `"5xx"`; anything else → `"other"`."""
    text = code.strip().lower()
    if text in ("401", "403", "429"):
        return text
    if len(text) == 3 and text[0] in "245" and (text[1:].isdigit() or text[1:] == "xx"):
        return f"{text[0]}xx"
    return "other"


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class UsageLine:
    """One accepted ingest line or poll bucket, resolved to a registry key; `minute` is floored on write."""

    key_id: int
    minute: datetime
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    status: Mapping[str, int] = field(default_factory=dict)
    source_ip: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Sighting:
    """The first time a source address or model was seen on a key.

    `baseline` sightings were made while the key's history of that kind was still being learnt (its first
    day): they describe normal traffic and are not a novelty signal. `sightings_since` leaves them out.
    """

    key_id: int
    kind: SightingKind
    value: str
    first_seen: datetime
    baseline: bool = False


@dataclass(frozen=True)
class RecordResult:
    """What one write did: lines taken, (key, minute) rows written, sightings that were new."""

    lines: int
    rows: int
    new_sightings: tuple[Sighting, ...] = ()


@dataclass(frozen=True)
class SeriesBlock:
    """Per-minute values of several keys: `values[metric][i, j]` is key_ids[i] in minutes[j]."""

    key_ids: list[int]
    minutes: list[datetime]
    values: dict[str, np.ndarray]
