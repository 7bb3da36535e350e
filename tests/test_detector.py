"""The streaming detector: invariants, what it fires on, what it stays quiet on, feedback and persistence.

One module fixture steps the whole labelled scenario set once (every scenario in one bank); the
behaviour tests read their scenario's scores from it, so the suite stays cheap.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.detection.anomaly.config import DetectorConfig
from bot.detection.anomaly.detector import DetectorBank, score_series
from bot.detection.anomaly.evaluate import Evaluation, episodes, judge, score_all
from bot.detection.anomaly.scenarios import MINUTES_PER_DAY, Scenario, scenarios

PAGE = 0.95
T0 = 1_767_571_200  # a Monday 00:00 UTC


@pytest.fixture(scope="module")
def scored() -> dict[str, tuple[Scenario, np.ndarray]]:
    items = scenarios(12)
    scores = score_all(items)
    return {item.name: (item, scores[i]) for i, item in enumerate(items)}


def _minutes(values: np.ndarray) -> np.ndarray:
    return T0 + 60 * np.arange(values.size)


# --- invariants -------------------------------------------------------------------------------------

SMALL = DetectorConfig(warmup_points=5)
reals = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-5, max_value=50).map(float),
)


@settings(max_examples=30, deadline=None)
@given(values=st.lists(reals, min_size=1, max_size=40), cut=st.integers(min_value=1, max_value=40))
def test_scores_lie_in_0_1_and_use_past_points_only(values: list[float], cut: int) -> None:
    ts = T0 + 60 * np.arange(len(values))
    whole = score_series(ts, values, SMALL)
    assert whole.shape == (len(values),)
    assert np.all((whole >= 0) & (whole <= 1))
    cut = min(cut, len(values))
    assert np.array_equal(score_series(ts[:cut], values[:cut], SMALL), whole[:cut])


def test_hostile_values_never_crash_and_unusable_points_score_zero_and_change_nothing() -> None:
    rng = np.random.default_rng(3)
    bank = DetectorBank(6)
    columns = [
        rng.normal(0, 1, 300),  # centred on zero
        -rng.normal(1e6, 1e3, 300),  # negative and large
        np.full(300, 7.0),  # constant
        np.zeros(300),  # all zeros
        rng.normal(1e25, 1e23, 300),  # huge but usable
        rng.normal(5, 1, 300),
    ]
    matrix = np.stack(columns)
    for t in range(300):
        scores = bank.step(matrix[:, t], T0 + 60 * t)
        assert np.all((scores >= 0) & (scores <= 1))
    assert np.all(np.isfinite(bank.baseline()))
    before = bank.export()
    bad = np.array([np.nan, np.inf, -np.inf, 1e308, -1e300, np.nan])
    assert np.array_equal(bank.step(bad, T0 + 60 * 300), np.zeros(6))
    assert bank.export() == before
    assert np.array_equal(bank.step(np.full(6, 3.0), np.nan), np.zeros(6))  # a NaN timestamp too
    assert bank.export() == before


def test_constant_series_is_quiet_until_it_changes() -> None:
    values = np.full(400, 12.0)
    values[350] = 60.0
    scores = score_series(_minutes(values), values)
    assert scores[:350].max() == 0.0
    assert scores[350] >= PAGE


def test_warm_up_gives_no_scores_before_enough_history() -> None:
    values = np.r_[np.full(50, 10.0), np.full(10, 1e6)]
    assert score_series(_minutes(values), values).max() == 0.0


def test_an_empty_bank_and_a_baseline_before_data() -> None:
    assert DetectorBank(0).step(np.zeros(0), T0).shape == (0,)
    assert np.isnan(DetectorBank(2).baseline()).all()


# --- what it fires on -----------------------------------------------------------------------------


def test_a_spike_pages_at_its_first_minute_and_then_stays_quiet_for_the_hour() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(100, 10, 600)
    values[400:430] += 200  # a 30-minute burst
    scores = score_series(_minutes(values), values)
    assert scores[:400].max() < PAGE
    assert scores[400] >= PAGE
    assert episodes(scores[400:460], PAGE, merge_minutes=0) == [0]  # no storm over the following hour


def test_inside_an_episode_only_a_markedly_worse_point_scores() -> None:
    """One detection per incident: the rest of a burst, and a larger spike that does not beat the episode by
    twice, score 0 (a benchmark's threshold sweep sees no second detection either); a spike that does, two
    hours later, pages in full."""
    rng = np.random.default_rng(5)
    values = rng.normal(100, 10, 600)
    values[400:430] += 200
    values[500] += 700
    values[520] += 800
    scores = score_series(_minutes(values), values)
    assert scores[400] >= PAGE
    assert scores[401:520].max() == 0.0
    assert scores[520] >= PAGE


def test_a_level_shift_pages_then_becomes_the_new_normal() -> None:
    rng = np.random.default_rng(6)
    values = rng.normal(50, 4, 900)
    values[500:] += 30
    scores = score_series(_minutes(values), values)
    assert scores[:500].max() < PAGE
    assert scores[500:505].max() >= PAGE
    assert scores[520:].max() < PAGE  # adapted: the new level no longer pages


def test_irregular_intervals_and_gaps_still_page_on_a_spike_only() -> None:
    rng = np.random.default_rng(11)
    gaps = rng.integers(30, 600, 800)
    gaps[300] = 7 * 24 * 3600  # a week-long outage
    ts = T0 + np.cumsum(gaps)
    values = rng.normal(30, 3, 800)
    values[rng.random(800) < 0.05] = np.nan  # missing ticks
    values[600] = 150.0
    scores = score_series(ts, values)
    assert scores[600] >= PAGE
    assert np.delete(scores, 600).max() < PAGE


def test_the_leak_spike_scenario_pages_once(scored: dict[str, tuple[Scenario, np.ndarray]]) -> None:
    item, scores = scored["leak spike"]
    (start, end) = item.windows[0]
    assert episodes(scores[start:end], PAGE) == [0]
    assert episodes(scores[start : start + 60], PAGE, merge_minutes=0) == [0]


def test_a_slow_ramp_pages_within_the_hour(scored: dict[str, tuple[Scenario, np.ndarray]]) -> None:
    item, scores = scored["slow ramp"]
    start, _end = item.windows[0]
    assert scores[MINUTES_PER_DAY:start].max() < PAGE
    assert scores[start : start + 60].max() >= PAGE


def test_business_hours_are_learned_but_a_night_spike_pages(
    scored: dict[str, tuple[Scenario, np.ndarray]],
) -> None:
    _clean, clean_scores = scored["business hours"]
    assert clean_scores[7 * MINUTES_PER_DAY :].max() < PAGE  # after a week: 9:00 and 17:00 are normal
    item, scores = scored["business hours + night spike"]
    start, end = item.windows[0]
    assert scores[start:end].max() >= PAGE
    assert scores[7 * MINUTES_PER_DAY : start].max() < PAGE


def test_a_weekend_at_weekday_volume_pages(scored: dict[str, tuple[Scenario, np.ndarray]]) -> None:
    item, scores = scored["weekly seasonality + anomaly"]
    start, end = item.windows[0]
    assert scores[start:end].max() >= PAGE
    assert scores[7 * MINUTES_PER_DAY : start].max() < PAGE


def test_a_low_volume_key_does_not_page_on_its_noise(scored: dict[str, tuple[Scenario, np.ndarray]]) -> None:
    item, scores = scored["noisy low-volume key"]
    assert not item.windows
    assert len(episodes(scores[MINUTES_PER_DAY:], PAGE)) <= 1
    rng = np.random.default_rng(8)
    poisson = rng.poisson(0.4, 4000).astype(float)
    assert score_series(_minutes(poisson), poisson).max() < PAGE


def test_a_401_burst_on_a_mostly_zero_series_pages(scored: dict[str, tuple[Scenario, np.ndarray]]) -> None:
    item, scores = scored["401 burst"]
    start, _end = item.windows[0]
    assert scores[start : start + 2].max() >= PAGE
    assert scores[MINUTES_PER_DAY:start].max() < PAGE


def test_a_quiet_key_suddenly_active_pages(scored: dict[str, tuple[Scenario, np.ndarray]]) -> None:
    item, scores = scored["quiet key suddenly active"]
    start, _end = item.windows[0]
    assert scores[start : start + 3].max() >= PAGE
    assert len(episodes(scores[start:], PAGE)) == 1  # the new level does not keep paging


def test_scenario_precision_recall_and_time_to_detect(scored: dict[str, tuple[Scenario, np.ndarray]]) -> None:
    evaluation = Evaluation(PAGE, tuple(judge(item, scores, PAGE) for item, scores in scored.values()))
    assert evaluation.precision >= 0.75  # 0.8 at this seed: heavy-tail outliers, the first weekend's drop
    assert evaluation.recall >= 0.9  # 1.0 at this seed
    assert evaluation.ttd(0.5) <= 5  # 0 minutes at this seed: most anomalies page at their first minute


# --- feedback and persistence ---------------------------------------------------------------------


def test_absorb_quiets_the_same_pattern_but_a_much_larger_one_still_pages() -> None:
    rng = np.random.default_rng(9)
    n = 2700
    traffic = rng.poisson(20, n).astype(float)
    traffic[2000:2010] += 100
    traffic[2300:2310] += 100  # the same pattern again, five hours later
    traffic[2600:2610] += 500  # five times bigger
    bank = DetectorBank(2)  # series 0 gets the "expected" feedback, series 1 does not
    out = np.zeros((2, n))
    for t in range(n):
        if t == 2030:
            bank.absorb(np.array([True, False]))
        out[:, t] = bank.step(np.array([traffic[t], traffic[t]]), T0 + 60 * t)
    assert out[0, 2000:2010].max() >= PAGE and out[1, 2000:2010].max() >= PAGE
    assert out[0, 2300:2310].max() < PAGE  # expected: the same pattern is not paged again
    assert out[1, 2300:2310].max() >= PAGE  # without the feedback it would have been
    assert out[0, 2600:2610].max() >= PAGE  # not a mute: a much larger one still pages
    assert 15 < bank.baseline()[0] < 40


def test_export_restore_round_trip_continues_identically() -> None:
    rng = np.random.default_rng(10)
    data = rng.poisson(5, (3, 500)).astype(float)
    data[1, 50:] = np.nan  # a series that went silent
    bank = DetectorBank(3)
    for t in range(400):
        bank.step(data[:, t], T0 + 60 * t)
    blobs = bank.export()
    assert all(len(blob) == DetectorBank.STATE_BYTES for blob in blobs)
    twin = DetectorBank.restore(blobs)
    for t in range(400, 500):
        assert np.array_equal(bank.step(data[:, t], T0 + 60 * t), twin.step(data[:, t], T0 + 60 * t))
    assert np.array_equal(bank.baseline(), twin.baseline(), equal_nan=True)


def test_a_missing_or_foreign_blob_gives_fresh_state() -> None:
    good = DetectorBank(1)
    good.step(np.array([4.0]), T0)
    blob = good.export()[0]
    wrong_version = b"XXXX" + blob[4:]
    restored = DetectorBank.restore([None, blob[:-1], wrong_version, b"", blob])
    fresh = DetectorBank(5).export()
    assert restored.export()[:4] == fresh[:4]
    assert restored.export()[4] == blob
