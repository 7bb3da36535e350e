"""The detector's tunables: one set of defaults for every key and metric, nothing key-specific.

Scales never appear here: every statistic is measured in units of the series' own robust scale and then
against the series' own running 99.9th percentile of that statistic, so one threshold fits a key doing
three requests an hour and one doing a million tokens a minute. See docs/detection.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorConfig:
    """Defaults tuned for per-minute key traffic and for 5-minute public benchmark series alike."""

    warmup_points: int = 120
    """No score above 0 before this many observations: early estimates are not trusted to page."""
    level_alpha: float = 0.02
    """The slow level predictor's EWMA rate (per point)."""
    fast_alpha: float = 0.3
    """The fast level predictor's EWMA rate: it wins on random-walk-like series."""
    scale_alpha: float = 0.01
    """Rate of the robust scale (mean absolute residual, winsorised)."""
    error_alpha: float = 0.02
    """Rate of each predictor's running absolute error, which sets its weight in the blend."""
    day_alpha: float = 0.3
    """How much one finished hour moves its hour-of-day profile bucket."""
    week_alpha: float = 0.5
    """How much one finished hour moves its hour-of-week profile bucket."""
    hour_error_alpha: float = 0.05
    """Rate of the hourly errors that decide whether seasonality explains the data (per finished hour)."""
    drift_fast_alpha: float = 0.1
    drift_base_alpha: float = 0.005
    """The drift statistic compares a short mean (~10 points) with a slow baseline (~200 points) of the
    deseasonalised series: it sees level shifts and ramps the fast predictor would follow."""
    clip_sigmas: float = 4.0
    """Residuals are winsorised at this many scales before they update any state (outliers move it little)."""
    quantile: float = 0.999
    """Each statistic is compared with its own running quantile at this level."""
    quantile_rate: float = 0.01
    """Log-space step of the running quantile: rises fast on exceedances, sinks slowly."""
    spike_floor: float = 2.0
    drift_floor: float = 3.0
    """Lowest running quantiles allowed: a calm Gaussian series must still go past these to score."""
    reanchor_points: int = 30
    """After this many points in a row past the drift quantile, the baseline jumps to the recent level: a
    new level becomes normal instead of paging forever."""
    sharpness: float = 3.0
    """score = 1 - exp(-sharpness * u^2), u = log2(excess over the quantile): twice the quantile -> 0.95."""
    fired_score: float = 0.95
    """A score at or above this opens an episode: later points score 0 unless they beat the episode's peak
    by `worse_by` (then they score in full, and become the new peak)."""
    worse_by: float = 1.0
    """"Markedly worse", in u units: 1.0 = twice as far past the quantile as the episode's peak."""
    quiet_half_life_s: float = 3600.0
    """The episode memory halves every this many seconds, so a later separate incident scores again."""
    episode_end: float = 1e-3
    """The episode is over once its memory has decayed below this (about ten half-lives after a page)."""
    peak_half_life_s: float = 6 * 3600.0
    """Half-life of the recent peak that `absorb` uses to raise the tolerance."""
    absorb_margin: float = 1.25
    """After `absorb`, the absorbed pattern sits this factor below the quantiles."""
    two_sided: bool = True
    """Drops are anomalies too (public benchmarks); False scores only rises."""
