"""A seeded, labelled set of per-minute key-traffic scenarios: what a leak looks like, and what it does not.

Every scenario has the same length and start (a Monday, 00:00 UTC), so the whole set is stepped through
one `DetectorBank` at once. Anomalies sit in the second week, after a week of history to learn from.
Labelled windows are half-open minute index ranges [start, end).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

START = 1_767_571_200  # 2026-01-05 00:00 UTC, a Monday
MINUTES_PER_DAY = 1440
DAYS = 13
LENGTH = DAYS * MINUTES_PER_DAY


@dataclass(frozen=True)
class Scenario:
    name: str
    values: npt.NDArray[np.float64]
    windows: tuple[tuple[int, int], ...]
    """Labelled anomaly windows, minute indexes [start, end); empty for a clean control."""


def timestamps(length: int = LENGTH) -> npt.NDArray[np.int64]:
    return START + 60 * np.arange(length, dtype=np.int64)


def _minute_of_day(length: int) -> npt.NDArray[np.int64]:
    return np.arange(length) % MINUTES_PER_DAY


def _weekday(length: int) -> npt.NDArray[np.int64]:
    return (np.arange(length) // MINUTES_PER_DAY) % 7


def _at(day: int, hour: float) -> int:
    return int(day * MINUTES_PER_DAY + hour * 60)


Rng = np.random.Generator
Builder = Callable[[Rng, int], tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]]


def _diurnal(length: int, low: float, high: float) -> npt.NDArray[np.float64]:
    """A smooth day curve peaking mid-afternoon UTC."""
    phase = 2 * np.pi * (_minute_of_day(length) / MINUTES_PER_DAY - 0.375)
    return low + (high - low) * 0.5 * (1 + np.cos(phase - np.pi))


def _business(length: int, busy: float, idle: float) -> npt.NDArray[np.float64]:
    hour = _minute_of_day(length) / 60
    working = (_weekday(length) < 5) & (hour >= 9) & (hour < 17)
    return np.where(working, busy, idle)


def leak_spike(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    rate = _diurnal(length, 10, 30)
    t0 = _at(9, 3.25)
    rate[t0 : t0 + 30] *= 10
    return rng.poisson(rate).astype(np.float64), ((t0, t0 + 30),)


def slow_ramp(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    level = np.full(length, 200.0)
    t0 = _at(10, 2.0)
    level[t0:] += np.minimum(np.arange(length - t0) / 180, 1.0) * 600
    return rng.normal(level, 15.0), ((t0, t0 + 180),)


def weekly_clean(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    rate = _diurnal(length, 20, 80) * np.where(_weekday(length) < 5, 1.0, 0.2)
    return rng.poisson(rate).astype(np.float64), ()


def weekly_anomaly(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    """The second Saturday afternoon at weekday volume: normal on a Tuesday, not on a weekend."""
    rate = _diurnal(length, 20, 80) * np.where(_weekday(length) < 5, 1.0, 0.2)
    t0 = _at(12, 13.0)
    rate[t0 : t0 + 120] *= 5
    return rng.poisson(rate).astype(np.float64), ((t0, t0 + 120),)


def business_hours(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    return rng.poisson(_business(length, 60, 3)).astype(np.float64), ()


def night_spike(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    rate = _business(length, 60, 3)
    t0 = _at(11, 3.0)
    rate[t0 : t0 + 20] = 60
    return rng.poisson(rate).astype(np.float64), ((t0, t0 + 20),)


def burst_401(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    rate = np.full(length, 0.05)
    t0 = _at(9, 10.5)
    rate[t0 : t0 + 15] = 30
    return rng.poisson(rate).astype(np.float64), ((t0, t0 + 15),)


def noisy_low_volume(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    bursty = rng.poisson(0.3, length) * rng.integers(1, 4, length)
    return bursty.astype(np.float64), ()


def quiet_key_active(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    rate = np.full(length, 1 / 120)
    t0 = _at(10, 4.0)
    rate[t0:] = 15
    return rng.poisson(rate).astype(np.float64), ((t0, t0 + 60),)


def low_volume_leak(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    rate = np.full(length, 0.5)
    t0 = _at(11, 15.0)
    rate[t0 : t0 + 45] = 8
    return rng.poisson(rate).astype(np.float64), ((t0, t0 + 45),)


def gaussian_clean(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    return rng.normal(5000.0, 300.0, length), ()


def heavy_tail_clean(rng: Rng, length: int) -> tuple[npt.NDArray[np.float64], tuple[tuple[int, int], ...]]:
    """Cost per minute: lognormal, with the odd expensive call."""
    return np.round(rng.lognormal(-3.0, 0.8, length), 6), ()


BUILDERS: dict[str, Builder] = {
    "leak spike": leak_spike,
    "slow ramp": slow_ramp,
    "weekly seasonality": weekly_clean,
    "weekly seasonality + anomaly": weekly_anomaly,
    "business hours": business_hours,
    "business hours + night spike": night_spike,
    "401 burst": burst_401,
    "noisy low-volume key": noisy_low_volume,
    "quiet key suddenly active": quiet_key_active,
    "low-volume key leak": low_volume_leak,
    "clean control (gaussian)": gaussian_clean,
    "clean control (heavy tail)": heavy_tail_clean,
}


def scenarios(seed: int = 12, length: int = LENGTH) -> list[Scenario]:
    """Every scenario, each from its own stream of the seed so adding one never changes the others."""
    out = []
    for i, (name, build) in enumerate(BUILDERS.items()):
        values, windows = build(np.random.default_rng([seed, i]), length)
        out.append(Scenario(name, values, windows))
    return out
