"""The SPC verdict as a physicist reads it: one bad day is not a drift, a jump
is flagged, capability comes with its uncertainty, repeated bad days escalate.

Series are built here with known answers; the analysis is the real one.
"""

from __future__ import annotations

import numpy as np
import pytest

from agent.qa import spc
from agent.qa.analysis import SeriesAnalysis
from agent.qa.series import SeriesData

START = np.datetime64("2025-01-01", "s")


def _series(values, test: str = "output", unit: str = "%",
            energy: str = "6X") -> SeriesData:
    dates = START + np.arange(len(values)) * np.timedelta64(86400, "s")
    return SeriesData("TrueBeam1", test, energy, unit, dates,
                      np.asarray(values, dtype=float))


def _day(i: int) -> str:
    return str((START + np.timedelta64(i, "D")).astype("datetime64[D]"))


def test_one_spike_is_an_out_of_tolerance_day_not_a_drift(tables):
    # The case that was called "drift detected, upward": a stable daily output
    # (SD 0.35%) with one +3.5% reading.
    values = np.random.default_rng(0).normal(0.0, 0.35, 200)
    values[45] = 3.5
    r = SeriesAnalysis(_series(values), tables).analyze().results_data()
    assert not r.drift.detected
    assert r.out_of_tolerance == [_day(45)]
    assert any(s.rule == "N1" and s.date == _day(45) for s in r.signals)
    assert r.status == "ok"  # the latest reading is back in line
    # The plain self-starting CUSUM calls this series drifting (as it did the
    # department's): the test would catch the robust verdict being lost.
    plain = SeriesAnalysis(_series(values), tables).analyze(
        drift_clip=0).results_data()
    assert plain.drift.detected and plain.drift.direction == 1


def test_a_real_step_is_still_a_drift(tables):
    values = np.random.default_rng(5).normal(0.0, 0.3, 200)
    values[150:] += 0.6  # 2 SD
    r = SeriesAnalysis(_series(values), tables).analyze().results_data()
    assert r.drift.detected and r.drift.direction == 1
    delay = np.datetime64(r.drift.signal_date) - np.datetime64(_day(150))
    assert 0 <= delay.astype(int) <= 15


def test_a_jump_beyond_the_moving_range_limit_is_flagged(tables):
    values = np.tile([0.0, 0.1], 40)  # MR-bar 0.1: MR UCL 0.3267
    values[60:] += 1.0  # a chamber swap: a one-day jump of 1.0
    r = SeriesAnalysis(_series(values), tables).analyze().results_data()
    assert r.spc.mr_ucl == pytest.approx(0.3267, abs=1e-4)
    jumps = [s for s in r.signals if s.rule == "MR"]
    assert [s.date for s in jumps] == [_day(60)]
    assert "jump" in jumps[0].description
    # The latest measurement jumping is itself a reason to look.
    # Within the I-chart limits (0.05 +- 0.266) but 0.45 from the day before.
    latest = np.r_[np.tile([0.0, 0.1], 40), 0.25, -0.2]
    r = SeriesAnalysis(_series(latest), tables).analyze().results_data()
    assert r.status == "watch" and "jumped" in r.status_reason


def test_median_moving_range_is_robust_to_a_bad_day_in_the_baseline():
    baseline = np.tile([0.0, 0.1], 15)
    baseline[10] = 3.0  # one bad day
    textbook = spc.imr_limits(baseline)
    robust = spc.imr_limits(baseline, "median_mr")
    # Mean MR: (27 x 0.1 + |0.0-3.0| + |3.0-0.0|... ) inflated; median MR 0.1.
    assert robust.mr_bar == pytest.approx(0.1)
    assert robust.sigma == pytest.approx(0.1 / 0.954)
    assert robust.center == pytest.approx(0.1)  # the median: 15 of 30 are 0.1
    assert robust.ucl == pytest.approx(0.1 + 3.145 * 0.1)
    assert robust.mr_ucl == pytest.approx(3.865 * 0.1)
    assert textbook.sigma > 2 * robust.sigma


def test_capability_intervals_against_hand_values():
    # n = 30: chi2(0.025, 29) = 16.047, chi2(0.975, 29) = 45.722 (tables);
    # Cp 1.5 -> 1.5 sqrt(16.047/29) = 1.116 to 1.5 sqrt(45.722/29) = 1.883.
    # Cpk 1.2 -> 1.2 (1 -+ 1.96 sqrt(1/(9*30*1.44) + 1/58)) = 0.869 to 1.531.
    c = spc.Capability(cp=1.5, cpk=1.2, cpm=1.4, lsl=-3.0, usl=3.0, target=0.0)
    ci = spc.capability_interval(c, 30, mean=0.3, sigma=1.0)
    assert ci.cp == pytest.approx((1.1158, 1.8835), abs=5e-4)
    assert ci.cpk == pytest.approx((0.8689, 1.5311), abs=5e-4)
    assert ci.verdict == "undetermined"  # the interval straddles 1.0
    sure = spc.capability_interval(
        spc.Capability(3.0, 2.8, 2.9, -3.0, 3.0, 0.0), 30, 0.1, 0.33)
    assert sure.verdict == "capable" and sure.cpk[0] > 1.0
    poor = spc.capability_interval(
        spc.Capability(0.6, 0.5, 0.5, -3.0, 3.0, 0.0), 30, 0.5, 1.6)
    assert poor.verdict == "not capable" and poor.cpk[1] < 1.0


def test_capability_reading_in_the_analysis(tables):
    rng = np.random.default_rng(6)
    stable = rng.normal(0.0, 0.3, 60)  # 3% tolerance, sigma 0.3: Cpk about 3
    r = SeriesAnalysis(_series(stable), tables).analyze().results_data()
    assert r.capability.verdict == "capable" and r.capability.capable
    assert r.capability.cpk_ci[0] > 1.0 and "interval" in r.capability.reason
    unstable = stable.copy()
    unstable[12] = 2.5  # a bad day inside the 30-point baseline
    r = SeriesAnalysis(_series(unstable), tables).analyze().results_data()
    assert r.capability.verdict == "undetermined" and not r.capability.capable
    assert "baseline is not stable" in r.capability.reason


def test_status_escalates_on_repeated_days_beyond_tolerance(tables):
    values = np.random.default_rng(7).normal(0.0, 0.3, 80)
    values[-4] = 3.6  # beyond the 3% tolerance
    values[-2] = -3.4  # and again, within the last five
    r = SeriesAnalysis(_series(values), tables).analyze().results_data()
    assert r.latest_level == "ok"
    assert r.status == "action"
    assert r.status_reason == "2 of the last 5 measurements beyond tolerance"
    once = values.copy()
    once[-2] = 0.0  # one bad day within the last five: not escalated
    r = SeriesAnalysis(_series(once), tables).analyze().results_data()
    assert r.status != "action"


def test_trend_test_is_the_normal_approximation_always():
    # Mann-Kendall on 5 increasing points: S = 10, var S = 5*4*15/18, so
    # z = 10/sqrt(16.667) = 2.449 and p = 0.0143 (the exact test gives 0.0167).
    trend = spc.robust_trend(np.arange(5.0), np.arange(5.0) + 1.0)
    assert trend.p_value == pytest.approx(0.01431, abs=1e-4)
