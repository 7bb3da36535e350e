"""The per-series state layout and its fixed-size blob, so a clock job can store and resume detectors.

Scalars live in one (FIELDS, n) float64 array, so each field is a contiguous row all series are stepped
through at once; the hour-of-week and hour-of-day profiles are (n, 168) and (n, 24) float32 arrays (NaN
until the hour has been seen once).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

(
    N_OBS, LAST_TS, LEVEL, FAST, RECENT, SCALE, MEAN_ABS, INTFRAC, E_LEVEL, E_FAST,
    L_RES, DRIFT_FAST, DRIFT_BASE, PERSIST, LQ_Z, LQ_D, MEMORY, PEAK,
    ACC_SUM, ACC_N, ACC_BUCKET, PREV_HOUR, EH_NAIVE, EH_DAY, EH_WEEK, SEASON_MEAN, EH_WEEKEND,
) = range(27)  # fmt: skip
FIELDS = 27
WEEK_BUCKETS = 168
DAY_BUCKETS = 48

MAGIC = b"KBD2"
"""Blob version tag: a blob from another layout is refused (fresh state), never misread."""
STATE_BYTES = len(MAGIC) + FIELDS * 8 + (WEEK_BUCKETS + DAY_BUCKETS) * 4

_NAN_START = (PREV_HOUR, EH_NAIVE, EH_DAY, EH_WEEKEND, EH_WEEK, SEASON_MEAN)


def fresh(
    n: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """State for n series that have seen nothing."""
    s = np.zeros((FIELDS, n))
    for field in _NAN_START:
        s[field] = np.nan
    s[ACC_BUCKET] = -1.0
    week = np.full((n, WEEK_BUCKETS), np.nan, dtype=np.float32)
    day = np.full((n, DAY_BUCKETS), np.nan, dtype=np.float32)
    return s, week, day


def encode(
    scalars: npt.NDArray[np.float64], week: npt.NDArray[np.float32], day: npt.NDArray[np.float32]
) -> bytes:
    return (
        MAGIC + scalars.astype("<f8").tobytes() + week.astype("<f4").tobytes() + day.astype("<f4").tobytes()
    )


def decode(
    blob: bytes | None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32], npt.NDArray[np.float32]] | None:
    """The three parts of one series' state, or None for anything that is not a blob of this version."""
    if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) != STATE_BYTES:
        return None
    raw = bytes(blob)
    if not raw.startswith(MAGIC):
        return None
    at = len(MAGIC)
    scalars = np.frombuffer(raw, dtype="<f8", count=FIELDS, offset=at).astype(np.float64)
    at += FIELDS * 8
    week = np.frombuffer(raw, dtype="<f4", count=WEEK_BUCKETS, offset=at).astype(np.float32)
    at += WEEK_BUCKETS * 4
    day = np.frombuffer(raw, dtype="<f4", count=DAY_BUCKETS, offset=at).astype(np.float32)
    return scalars, week, day
