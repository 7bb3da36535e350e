"""A streaming anomaly detector for many series at once, one small fixed-size state per series.

Every series (one per key and metric) is stepped together: `DetectorBank.step` runs a fixed number of
numpy array operations over all n series, never a Python loop over series or points. The score of a point
uses that point and earlier points only. How it works and why: docs/detection.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bot.detection.anomaly.config import DetectorConfig
from bot.detection.anomaly.state import (
    ACC_BUCKET,
    ACC_N,
    ACC_SUM,
    DRIFT_BASE,
    DRIFT_FAST,
    E_FAST,
    E_LEVEL,
    EH_DAY,
    EH_NAIVE,
    EH_WEEK,
    EH_WEEKEND,
    FAST,
    INTFRAC,
    L_RES,
    LAST_TS,
    LEVEL,
    LQ_D,
    LQ_Z,
    MEAN_ABS,
    MEMORY,
    N_OBS,
    PEAK,
    PERSIST,
    PREV_HOUR,
    RECENT,
    SCALE,
    SEASON_MEAN,
    STATE_BYTES,
    WEEK_BUCKETS,
    decode,
    encode,
    fresh,
)

Floats = npt.NDArray[np.float64]

MAX_ABS = 1e30
"""Values beyond this magnitude are unusable (scored 0, state unchanged): no real usage reaches it."""
WARM_START = 10
"""Observations before residuals are winsorised (the scale is not known yet)."""
RECENT_ALPHA = 0.1
QUANTILE_EARLY = 50.0
QUANTILE_MAX_RATE = 0.1
"""The running quantiles learn fast at first (step 50/n, at most 0.1) and then at `quantile_rate`, so a
heavy-tailed series is calibrated early yet an unfolding anomaly barely moves the tolerance."""
LEARN_CEILING = 2.0
FAR_STEP = 0.25
"""Points past LEARN_CEILING times a running quantile are anomalies first: they raise it at a quarter
step, so a bad first day or an incident barely blunts the detector, yet recurring spikes are learned."""
PROFILE_CLIP = 4.0
"""Hour means for the profiles are clipped at this many times the winsorising width around the prediction."""
SEASON_MEAN_ALPHA = 0.0005
"""The seasonal profile's own slow mean (~1.4 days): the drift statistic removes only the seasonal swing."""
INT_ALPHA = 0.01
HOUR = 3600.0
WEEKEND_START = 120
"""Hour-of-week bucket of Saturday 00:00 UTC."""
MONDAY_OFFSET_HOURS = 72
"""1970-01-01 was a Thursday: shifting by three days makes hour-of-week bucket 0 Monday 00:00 UTC."""


def _weights(err: Floats) -> Floats:
    """Inverse squared running error; NaN (a predictor with nothing to say yet) weighs nothing."""
    w = 1.0 / (err * err + 1e-300)
    return np.where(np.isnan(w), 0.0, w)


def _day_bucket(week_bucket: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Hour of day, split into weekdays (0-23) and weekends (24-47): a Monday is predicted from the
    Friday before it, not from the Sunday."""
    return week_bucket % 24 + 24 * (week_bucket >= WEEKEND_START)


def _rate(alpha: float, n_obs: Floats) -> Floats:
    """An EWMA rate that starts as a running mean, so early estimates are not stuck at the first value."""
    return np.maximum(alpha, 1.0 / np.maximum(n_obs, 1.0))


class DetectorBank:
    """Streaming detector state for n independent series (one per key x metric), stepped together."""

    STATE_BYTES: int = STATE_BYTES

    def __init__(self, n: int, config: DetectorConfig | None = None) -> None:
        if n < 0:
            raise ValueError("n must be >= 0")
        self.config = config or DetectorConfig()
        self._s, self._week, self._day = fresh(n)
        self._s[LQ_Z], self._s[LQ_D] = np.log(self.config.spike_floor), np.log(self.config.drift_floor)
        self._rows = np.arange(n)

    @property
    def n(self) -> int:
        return int(self._rows.size)

    @property
    def nbytes(self) -> int:
        """Memory held by the state arrays of all n series."""
        return int(self._s.nbytes + self._week.nbytes + self._day.nbytes)

    def step(self, values: npt.ArrayLike, timestamps: npt.ArrayLike) -> Floats:
        """Score one tick for every series, then fold it into the state. NaN (or inf, or beyond `MAX_ABS`)
        means no observation: that series' state is unchanged and its score is 0."""
        c = self.config
        s, rows = self._s, self._rows
        x = np.broadcast_to(np.asarray(values, dtype=np.float64), (self.n,))
        ts = np.broadcast_to(np.asarray(timestamps, dtype=np.float64), (self.n,))
        with np.errstate(all="ignore"):
            ok = np.isfinite(x) & (np.abs(x) <= MAX_ABS) & np.isfinite(ts)
            x = np.where(ok, x, 0.0)
            n_obs = s[N_OBS]
            first = ok & (n_obs == 0)
            ts = np.where(ok, ts, s[LAST_TS])
            for field in (LEVEL, FAST, RECENT, DRIFT_FAST, DRIFT_BASE):
                s[field] = np.where(first, x, s[field])
            s[MEAN_ABS] = np.where(first, np.abs(x), s[MEAN_ABS])
            s[LAST_TS] = np.where(first, ts, s[LAST_TS])
            dt = np.maximum(ts - s[LAST_TS], 0.0)

            week_b = ((np.floor(ts / HOUR) + MONDAY_OFFSET_HOURS) % WEEK_BUCKETS).astype(np.intp)
            new_hour = (week_b != s[ACC_BUCKET]) | (dt >= HOUR)  # a gap of exactly a week is a new hour too
            self._fold_hours(ok & (s[ACC_N] > 0) & new_hour)

            # Seasonal part: hour-of-week and hour-of-day profiles, weighed by their hourly errors, and
            # trusted (g) only as far as they beat "same as the previous hour".
            p_week = self._week[rows, week_b].astype(np.float64)
            day_b = _day_bucket(week_b)
            p_day = self._day[rows, day_b].astype(np.float64)
            p_day = np.where(np.isnan(p_day), self._day[rows, (day_b + 24) % 48], p_day)  # other day type
            w_week = np.where(np.isnan(p_week), 0.0, _weights(s[EH_WEEK]))
            own, other = (
                np.where(day_b >= 24, s[EH_WEEKEND], s[EH_DAY]),
                np.where(day_b >= 24, s[EH_DAY], s[EH_WEEKEND]),
            )
            w_day = np.where(np.isnan(p_day), 0.0, _weights(np.where(np.isnan(own), other, own)))
            w_season = w_week + w_day
            season = (w_week * np.nan_to_num(p_week) + w_day * np.nan_to_num(p_day)) / w_season
            season = np.where(w_season > 0, season, 0.0)
            w_naive = np.where(np.isnan(s[EH_NAIVE]), 0.0, _weights(s[EH_NAIVE]))
            g = np.where(w_season > 0, w_season / (w_season + w_naive), 0.0)
            g = np.nan_to_num(g, nan=0.0)

            w_l, w_f = _weights(s[E_LEVEL]), _weights(s[E_FAST])
            plain = (w_l * s[LEVEL] + w_f * s[FAST]) / (w_l + w_f)
            plain = np.where(np.isfinite(plain), plain, s[LEVEL])
            seasonal = season + s[L_RES]
            pred = g * seasonal + (1.0 - g) * plain

            is_count = s[INTFRAC] > 0.98
            floor = 1e-3 * s[MEAN_ABS] + 1e-9
            floor = np.where(is_count, np.maximum(floor, np.sqrt(np.abs(pred) + 1.0)), floor)
            scale = np.maximum(s[SCALE], floor)
            k = np.where(n_obs < WARM_START, np.inf, c.clip_sigmas * scale)

            z = (x - pred) / scale
            season_mean = np.where(w_season > 0, s[SEASON_MEAN], 0.0)
            season_mean = np.where(np.isnan(season_mean), season, season_mean)
            adjusted = x - g * (season - season_mean)
            drift_fast = s[DRIFT_FAST] + _rate(c.drift_fast_alpha, n_obs) * (adjusted - s[DRIFT_FAST])
            drift_gain = np.sqrt((2 - c.drift_fast_alpha) / c.drift_fast_alpha)
            drift = (drift_fast - s[DRIFT_BASE]) / scale * drift_gain
            if c.two_sided:
                v_z, v_d = np.abs(z), np.abs(drift)
            else:
                v_z, v_d = np.maximum(z, 0.0), np.maximum(drift, 0.0)
            q_z, q_d = np.exp(s[LQ_Z]), np.exp(s[LQ_D])
            excess = np.nan_to_num(np.maximum(v_z / q_z, v_d / q_d), nan=1.0, posinf=1e300)
            u = np.log2(np.maximum(excess, 1.0))

            memory = s[MEMORY] * np.exp2(-dt / c.quiet_half_life_s)
            memory = np.where(memory < c.episode_end, 0.0, memory)
            # Inside an episode only a markedly worse point scores: one page (one detection) per episode.
            u_eff = np.where((u >= memory + c.worse_by) | (memory == 0.0), u, 0.0)
            warm = ok & (n_obs >= c.warmup_points)
            score = np.where(warm, 1.0 - np.exp(-c.sharpness * u_eff * u_eff), 0.0)
            fired = score >= c.fired_score
            # A jump that persists would drive the drift statistic further than the spike statistic:
            # the episode's memory covers that in advance, so a plateau after a jump stays quiet.
            plateau = np.log2(np.maximum(np.nan_to_num(v_z * drift_gain / q_d, posinf=1e300), 1.0))
            episode = np.maximum(np.maximum(memory, u), plateau)
            s[MEMORY] = np.where(ok, np.where(fired, episode, memory), s[MEMORY])
            peak = s[PEAK] * np.exp2(-dt / c.peak_half_life_s)
            s[PEAK] = np.where(ok, np.maximum(peak, np.where(warm, u, 0.0)), s[PEAK])

            def move(field: int, target: Floats, alpha: float) -> None:
                s[field] = np.where(ok, s[field] + _rate(alpha, n_obs) * (target - s[field]), s[field])

            def err(p: Floats) -> Floats:
                return np.abs(np.clip(x - p, -k, k))

            move(E_LEVEL, err(s[LEVEL]), c.error_alpha)
            move(E_FAST, err(s[FAST]), c.error_alpha)
            move(SCALE, 1.2533 * err(pred), c.scale_alpha)
            move(LEVEL, s[LEVEL] + np.clip(x - s[LEVEL], -k, k), c.level_alpha)
            move(FAST, s[FAST] + np.clip(x - s[FAST], -k, k), c.fast_alpha)
            s[L_RES] = np.where(
                ok & (w_season > 0), s[L_RES] + c.fast_alpha * np.clip(x - seasonal, -k, k), s[L_RES]
            )
            move(RECENT, x, RECENT_ALPHA)
            move(MEAN_ABS, np.abs(x), c.scale_alpha)
            s[INTFRAC] = np.where(
                ok,
                s[INTFRAC] + np.where(first, 1.0, INT_ALPHA) * ((x == np.round(x)) - s[INTFRAC]),
                s[INTFRAC],
            )
            s[DRIFT_FAST] = np.where(ok, drift_fast, s[DRIFT_FAST])
            s[SEASON_MEAN] = np.where(
                ok & (w_season > 0), season_mean + SEASON_MEAN_ALPHA * (season - season_mean), s[SEASON_MEAN]
            )
            move(DRIFT_BASE, s[DRIFT_BASE] + np.clip(adjusted - s[DRIFT_BASE], -k, k), c.drift_base_alpha)

            persist = np.where(v_d > q_d, s[PERSIST] + 1.0, 0.0)
            reanchor = ok & (persist >= c.reanchor_points)
            s[PERSIST] = np.where(ok, np.where(reanchor, 0.0, persist), s[PERSIST])
            s[DRIFT_BASE] = np.where(reanchor, s[DRIFT_FAST], s[DRIFT_BASE])
            s[LEVEL] = np.where(reanchor, s[RECENT], s[LEVEL])

            eta = np.clip(QUANTILE_EARLY / (n_obs + 1.0), c.quantile_rate, QUANTILE_MAX_RATE) * (
                n_obs >= WARM_START
            )
            up, down = eta * c.quantile, eta * (1.0 - c.quantile)
            for field, v, lo in ((LQ_Z, v_z, c.spike_floor), (LQ_D, v_d, c.drift_floor)):
                lq = s[field]
                q = np.exp(lq)
                change = np.where(v > q, np.where(v > LEARN_CEILING * q, FAR_STEP * up, up), -down)
                stepped = np.maximum(lq + change, np.log(lo))
                s[field] = np.where(ok, stepped, lq)

            wide = PROFILE_CLIP * k  # profiles must learn sharp daily steps, yet not a leak's spike
            # Clipped around both the blend and the profile (a step the profile knows is not clipped); the
            # first visit of an hour, with no profile yet, is taken as it comes.
            low = np.where(w_season > 0, np.minimum(pred, season) - wide, -np.inf)
            high = np.where(w_season > 0, np.maximum(pred, season) + wide, np.inf)
            s[ACC_SUM] = np.where(ok, s[ACC_SUM] + np.clip(x, low, high), s[ACC_SUM])
            s[ACC_N] = np.where(ok, s[ACC_N] + 1.0, s[ACC_N])
            s[ACC_BUCKET] = np.where(ok, week_b, s[ACC_BUCKET])
            s[LAST_TS] = ts
            s[N_OBS] = n_obs + ok
        result: Floats = np.clip(np.nan_to_num(score, nan=0.0), 0.0, 1.0)
        return result

    def _fold_hours(self, fold: npt.NDArray[np.bool_]) -> None:
        """An hour just ended for these series: its mean scores the hourly predictors (the profiles and
        "same as the previous hour"), then moves the profiles. Profiles only ever hold finished hours, so
        they predict from earlier days and weeks, never from the hour in progress."""
        idx = np.flatnonzero(fold)
        if idx.size == 0:
            return
        s, c = self._s, self.config
        a = c.hour_error_alpha
        mean = s[ACC_SUM, idx] / s[ACC_N, idx]
        wb = s[ACC_BUCKET, idx].astype(np.intp)
        naive = s[EH_NAIVE, idx]
        prior = np.abs(mean - s[PREV_HOUR, idx])
        s[EH_NAIVE, idx] = np.where(np.isnan(naive), prior, naive + a * (prior - naive))
        fallback = 1.5 * np.nan_to_num(s[EH_NAIVE, idx], nan=np.inf)
        db = _day_bucket(wb)
        weekend = db >= 24
        other_day = self._day[idx, (db + 24) % 48].astype(np.float64)
        day_error = np.where(weekend, s[EH_WEEKEND, idx], s[EH_DAY, idx])
        other_error = np.where(weekend, s[EH_DAY, idx], s[EH_WEEKEND, idx])
        errors = []
        for profile, bucket, alpha, current, backup, prior in (
            (self._week, wb, c.week_alpha, s[EH_WEEK, idx], np.full(idx.size, np.nan), fallback),
            (
                self._day,
                db,
                c.day_alpha,
                day_error,
                other_day,
                np.where(np.isnan(other_error), fallback, other_error),
            ),
        ):
            old = profile[idx, bucket].astype(np.float64)
            predicted = np.where(
                np.isnan(old), backup, old
            )  # what the step predicted from, fallback included
            e = np.where(np.isnan(current), prior, current)
            errors.append(np.where(np.isnan(predicted), current, e + a * (np.abs(mean - predicted) - e)))
            profile[idx, bucket] = np.where(np.isnan(old), mean, old + alpha * (mean - old))
        s[EH_WEEK, idx] = errors[0]
        s[EH_DAY, idx] = np.where(weekend, s[EH_DAY, idx], errors[1])
        s[EH_WEEKEND, idx] = np.where(weekend, errors[1], s[EH_WEEKEND, idx])
        s[PREV_HOUR, idx] = mean
        s[ACC_SUM, idx] = 0.0
        s[ACC_N, idx] = 0.0

    def absorb(self, mask: npt.ArrayLike) -> None:
        """ "Expected" feedback: the traffic just seen was the owner's. For these series the level moves to
        the recent level, the change statistics restart, and every tolerance rises so that the recent peak
        sits below it by `absorb_margin`: the same pattern stays quiet, a markedly larger one still pages,
        and the tolerances sink back over the following days."""
        m = np.broadcast_to(np.asarray(mask, dtype=bool), (self.n,))
        s, c = self._s, self.config
        raise_by = np.where(m, s[PEAK] * np.log(2.0) + np.log(c.absorb_margin), 0.0)
        for field in (LQ_Z, LQ_D):
            s[field] = s[field] + raise_by
        for field in (LEVEL, FAST):
            s[field] = np.where(m, s[RECENT], s[field])
        s[DRIFT_BASE] = np.where(m, s[DRIFT_FAST], s[DRIFT_BASE])
        for field in (PERSIST, MEMORY, PEAK):
            s[field] = np.where(m, 0.0, s[field])

    def baseline(self) -> Floats:
        """The current expected value per series (for charts and DMs): the slow level, NaN before any data."""
        s = self._s
        return np.where(s[N_OBS] > 0, s[LEVEL], np.nan)

    def export(self) -> list[bytes]:
        """One fixed-size blob (`STATE_BYTES`) per series."""
        return [encode(self._s[:, i], self._week[i], self._day[i]) for i in range(self.n)]

    @classmethod
    def restore(cls, blobs: Sequence[bytes | None], config: DetectorConfig | None = None) -> DetectorBank:
        """A bank from exported blobs; None, or a blob of the wrong size or version, gives fresh state."""
        bank = cls(len(blobs), config)
        for i, blob in enumerate(blobs):
            decoded = decode(blob)
            if decoded is not None:
                bank._s[:, i], bank._week[i], bank._day[i] = decoded
        return bank


def score_series(
    timestamps: Sequence[int] | npt.ArrayLike,
    values: Sequence[float] | npt.ArrayLike,
    config: DetectorConfig | None = None,
) -> Floats:
    """One series through a `DetectorBank(1)`: what `keybot detect score` runs, point by point."""
    ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    xs = np.asarray(values, dtype=np.float64).reshape(-1)
    if ts.size != xs.size:
        raise ValueError("timestamps and values differ in length")
    bank = DetectorBank(1, config)
    out = np.zeros(xs.size)
    for i in range(xs.size):
        out[i] = bank.step(xs[i : i + 1], ts[i])[0]
    return out


__all__ = ["DetectorBank", "DetectorConfig", "score_series"]
