"""One detection pass: step every monitored key's detector over the minutes it has not seen, and raise
alerts for scores at or above the environment's threshold, and for novel source addresses and models.

Per metric, all keys of a batch share one `DetectorBank`, stepped a minute at a time across keys (a key
not yet at that minute gets NaN: its state is untouched). Work is bounded: at most
KEYBOT_ALERT_CATCHUP_MINUTES per key per pass (a key further behind skips ahead), keys in batches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from bot.alerts.models import DetectorState
from bot.alerts.opening import Finding, raise_alerts
from bot.alerts.settings import AlertSettings
from bot.db.session import Database
from bot.detection.anomaly.detector import DetectorBank
from bot.registry.models import Key, KeyStatus, Setting
from bot.usage.service import latest_complete_minute, monitored_keys, series, sightings_since
from bot.usage.types import METRICS, Sighting

MINUTE = timedelta(minutes=1)
KEY_BATCH = 2000
SETTLE_MINUTES = 1
NOVELTY_CURSOR = "alerts.novelty_since"
NOVELTY_LABELS = {"ip": "new source address", "model": "new model"}


@dataclass
class DetectionResult:
    keys: int = 0
    minutes: int = 0
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    signalled: list[int] = field(default_factory=list)  # keys with a finding, suppressed ones included


@dataclass
class _Batch:
    key_ids: list[int]
    starts: list[datetime]
    blobs: dict[str, list[bytes | None]]
    absorb: np.ndarray
    fresh: np.ndarray  # no state yet: start at the key's first used minute, not at a run of zeros


def run_detection(database: Database, now: datetime, settings: AlertSettings) -> DetectionResult:
    """Step the detectors up to the newest complete minute, then open or update alerts."""
    result = DetectionResult()
    with database.session() as session:
        environments = _watched(session, monitored_keys(session))
        latest = _settled(latest_complete_minute(session), now)
    findings: list[Finding] = []
    if latest is not None and environments:
        ids = sorted(environments)
        for i in range(0, len(ids), KEY_BATCH):
            found, minutes = _detect_batch(database, ids[i : i + KEY_BATCH], latest, environments, settings)
            findings.extend(found)
            result.minutes = max(result.minutes, minutes)
        result.keys = len(ids)
    findings.extend(_novelty(database, now, settings, set(environments)))
    result.signalled = sorted({f.key_id for f in findings})
    for alert_id, outcome in raise_alerts(database, findings, now, settings).items():
        (result.opened if outcome == "opened" else result.updated).append(alert_id)
    return result


def _settled(latest: datetime | None, now: datetime) -> datetime | None:
    """The newest minute that is over, plus SETTLE_MINUTES for late lines: a minute still being written
    would be scored on part of its traffic (a false drop), and its later lines never scored at all."""
    if latest is None:
        return None
    last_settled = now.replace(second=0, microsecond=0) - (SETTLE_MINUTES + 1) * MINUTE
    return min(latest, last_settled)


def _watched(session: Session, key_ids: Sequence[int]) -> dict[int, str]:
    """{key id: environment} for the keys that can be paged (no drills, nothing revoked)."""
    if not key_ids:
        return {}
    found: dict[int, str] = {}
    for i in range(0, len(key_ids), 900):
        rows = session.execute(
            select(Key.id, Key.environment).where(
                Key.id.in_(list(key_ids[i : i + 900])), Key.drill.is_(False), Key.status != KeyStatus.REVOKED
            )
        ).all()
        found.update({key_id: env for key_id, env in rows})
    return found


def _load(session: Session, key_ids: list[int], latest: datetime, catchup: int) -> _Batch:
    rows = session.scalars(select(DetectorState).where(DetectorState.key_id.in_(key_ids))).all()
    by_key: dict[int, dict[str, DetectorState]] = defaultdict(dict)
    for row in rows:
        by_key[row.key_id][row.metric] = row
    floor = latest - (catchup - 1) * MINUTE
    starts, absorb, fresh = [], np.zeros(len(key_ids), dtype=bool), np.zeros(len(key_ids), dtype=bool)
    blobs: dict[str, list[bytes | None]] = {m: [] for m in METRICS}
    for i, key_id in enumerate(key_ids):
        states = by_key.get(key_id, {})
        seen = [s.last_minute for s in states.values() if s.last_minute is not None]
        starts.append(max(floor, min(seen) + MINUTE) if seen else floor)
        fresh[i] = not seen
        absorb[i] = any(s.absorb_pending for s in states.values())
        for metric in METRICS:
            state = states.get(metric)
            blobs[metric].append(state.blob if state is not None else None)
    return _Batch(key_ids, starts, blobs, absorb, fresh)


def _detect_batch(
    database: Database,
    key_ids: list[int],
    latest: datetime,
    environments: dict[int, str],
    settings: AlertSettings,
) -> tuple[list[Finding], int]:
    with database.session() as session:
        batch = _load(session, key_ids, latest, settings.catchup_minutes)
        first = min(batch.starts)
        if first > latest:
            return [], 0
        block = series(session, key_ids, first, latest + MINUTE)
    n, minutes = len(key_ids), block.minutes
    start_at = np.array([(s - first) // MINUTE for s in batch.starts])
    used = np.any(np.stack([block.values[m] != 0 for m in METRICS]), axis=0)
    first_use = np.where(used.any(axis=1), used.argmax(axis=1), len(minutes))
    start_at = np.where(batch.fresh, np.maximum(start_at, first_use), start_at)
    skip = int(start_at.min()) if n else len(minutes)
    thresholds = np.array([settings.threshold_for(environments[k]) for k in key_ids])
    best = {m: np.zeros(n) for m in METRICS}
    at = {m: np.zeros(n, dtype=np.intp) for m in METRICS}
    value = {m: np.zeros(n) for m in METRICS}
    base = {m: np.zeros(n) for m in METRICS}
    exported: dict[str, list[bytes]] = {}
    for metric in METRICS:
        bank = DetectorBank.restore(batch.blobs[metric])
        if batch.absorb.any():
            bank.absorb(batch.absorb)
        data = block.values[metric]
        for j in range(skip, len(minutes)):
            minute = minutes[j]
            observed = np.where(start_at <= j, data[:, j], np.nan)
            expected = bank.baseline()
            scores = bank.step(observed, minute.timestamp())
            higher = scores > best[metric]
            best[metric] = np.where(higher, scores, best[metric])
            at[metric] = np.where(higher, j, at[metric])
            value[metric] = np.where(higher, observed, value[metric])
            base[metric] = np.where(higher, expected, base[metric])
        exported[metric] = bank.export()
    _save(database, key_ids, exported, latest, batch.absorb)
    findings = []
    for i, key_id in enumerate(key_ids):
        fired = [m for m in METRICS if best[m][i] >= thresholds[i]]
        if not fired:
            continue
        fired.sort(key=lambda m: -best[m][i])
        top = fired[0]
        findings.append(
            Finding(
                key_id=key_id,
                minute=minutes[int(at[top][i])],
                score=float(best[top][i]),
                signals=tuple(fired),
                observed={m: round(float(value[m][i]), 6) for m in fired},
                baseline={m: round(float(np.nan_to_num(base[m][i])), 6) for m in fired},
            )
        )
    return findings, len(minutes) - skip


def _save(
    database: Database,
    key_ids: list[int],
    exported: dict[str, list[bytes]],
    latest: datetime,
    applied: np.ndarray,
) -> None:
    """Replace the batch's states; feedback given while this pass ran stays pending for the next one."""
    with database.session() as session:
        pending = set(
            session.scalars(
                select(DetectorState.key_id).where(
                    DetectorState.key_id.in_(key_ids), DetectorState.absorb_pending.is_(True)
                )
            )
        )
        session.execute(delete(DetectorState).where(DetectorState.key_id.in_(key_ids)))
        rows = [
            {
                "key_id": key_id,
                "metric": metric,
                "blob": exported[metric][i],
                "last_minute": latest,
                "absorb_pending": key_id in pending and not bool(applied[i]),
            }
            for i, key_id in enumerate(key_ids)
            for metric in METRICS
        ]
        session.execute(insert(DetectorState), rows)


def _novelty(database: Database, now: datetime, settings: AlertSettings, watched: set[int]) -> list[Finding]:
    """A source address or model new on a key (past its learning day) is a signal of its own."""
    with database.session() as session:
        cursor = session.get(Setting, NOVELTY_CURSOR)
        since = datetime.fromisoformat(cursor.value) if cursor else now - settings.catchup_minutes * MINUTE
        seen: list[Sighting] = sightings_since(session, since)
        if seen:
            newest = (max(s.first_seen for s in seen) + timedelta(microseconds=1)).isoformat()
            if cursor is None:
                session.add(Setting(name=NOVELTY_CURSOR, value=newest))
            else:
                cursor.value = newest
        elif cursor is None:
            session.add(Setting(name=NOVELTY_CURSOR, value=since.isoformat()))
    by_key: dict[int, list[Sighting]] = defaultdict(list)
    for sighting in seen:
        if sighting.key_id in watched or _pageable(database, sighting.key_id):
            by_key[sighting.key_id].append(sighting)
    return [
        Finding(
            key_id=key_id,
            minute=max(s.first_seen for s in items),
            score=1.0,
            signals=tuple(f"{NOVELTY_LABELS[s.kind]} {s.value}" for s in items),
            observed={},
            baseline={},
        )
        for key_id, items in by_key.items()
    ]


def _pageable(database: Database, key_id: int) -> bool:
    with database.session() as session:
        return bool(_watched(session, [key_id]))
