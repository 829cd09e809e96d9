"""SPC numbers against hand computation; run rules on constructed sequences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from agent.qa import spc


def test_imr_limits_by_hand():
    # mean 11.6; moving ranges 2, 1, 2, 1 -> MR-bar 1.5; sigma 1.5/1.128.
    lim = spc.imr_limits(np.array([10.0, 12, 11, 13, 12]))
    assert lim.center == pytest.approx(11.6)
    assert lim.mr_bar == pytest.approx(1.5)
    assert lim.sigma == pytest.approx(1.5 / 1.128)
    assert lim.ucl == pytest.approx(11.6 + 3 / 1.128 * 1.5)  # 15.589
    assert lim.ucl == pytest.approx(15.589, abs=1e-3)
    assert lim.lcl == pytest.approx(7.611, abs=1e-3)
    assert lim.mr_ucl == pytest.approx(3.267 * 1.5)


def test_imr_needs_two_points():
    with pytest.raises(ValueError):
        spc.imr_limits(np.array([1.0]))


def test_ewma_by_hand():
    res = spc.ewma(np.array([1.0, 0.0, 0.0]), mu0=0.0, sigma=1.0, lam=0.2, L=2.86)
    np.testing.assert_allclose(res.z, [0.2, 0.16, 0.128])
    # i = 1: L sigma sqrt(lam/(2-lam) (1-(1-lam)^2)) = 2.86 * 0.2
    assert res.ucl[0] == pytest.approx(0.572)
    assert res.lcl[0] == pytest.approx(-0.572)
    assert not res.signal.any()
    # Asymptotic half-width L sigma sqrt(lam/(2-lam)) = 2.86/3.
    long = spc.ewma(np.zeros(500), 0.0, 1.0, 0.2, 2.86)
    assert long.ucl[-1] == pytest.approx(2.86 / 3)


def test_cusum_by_hand_and_against_loop():
    res = spc.cusum(np.array([1.0, 1.0, -2.0, 3.0]), k=0.5, h=2.0)
    np.testing.assert_allclose(res.upper, [0.5, 1.0, 0.0, 2.5])
    np.testing.assert_allclose(res.lower, [0.0, 0.0, 1.5, 0.0])
    assert res.signal.tolist() == [False, False, False, True]
    rng = np.random.default_rng(0)
    d = rng.normal(size=300)
    up = lo = 0.0
    ups, los = [], []
    for v in d:
        up, lo = max(0.0, up + v - 0.5), max(0.0, lo - v - 0.5)
        ups.append(up)
        los.append(lo)
    res = spc.cusum(d)
    np.testing.assert_allclose(res.upper, ups, atol=1e-9)
    np.testing.assert_allclose(res.lower, los, atol=1e-9)


def test_self_starting_scores_are_standard_normal_in_control():
    rng = np.random.default_rng(42)
    x = rng.normal(5.0, 0.3, size=4000)
    z = spc.self_starting_scores(x, start=10)
    assert z.size == 3990
    assert abs(z.mean()) < 0.05
    assert z.std() == pytest.approx(1.0, abs=0.05)
    assert stats.kstest(z, "norm").pvalue > 0.01


def test_self_starting_score_by_hand():
    # Fourth point after [1, 2, 3]: mean 2, sd 1, t = (5-2)/1 * sqrt(3/4).
    z = spc.self_starting_scores(np.array([1.0, 2.0, 3.0, 5.0]), start=3)
    t = 3.0 * np.sqrt(3 / 4)
    assert z[0] == pytest.approx(stats.norm.ppf(stats.t.cdf(t, 2)))


def test_capability_by_hand():
    c = spc.capability(0.0, 1.0, -3.0, 3.0, 0.0)
    assert (c.cp, c.cpk, c.cpm) == pytest.approx((1.0, 1.0, 1.0))
    c = spc.capability(1.0, 1.0, -3.0, 3.0, 0.0)
    assert c.cp == pytest.approx(1.0)
    assert c.cpk == pytest.approx(2 / 3)
    assert c.cpm == pytest.approx(1 / np.sqrt(2))
    one_sided = spc.capability(98.0, 1.0, 95.0, None, 100.0)
    assert one_sided.cpk == pytest.approx(1.0) and one_sided.cp is None


def test_tg218_action_limit_by_hand():
    # dA = 6 sqrt(1 + (98-100)^2) = 13.416; lower limit 100 - 6.708.
    low, high, width = spc.tg218_action_limits(98.0, 1.0, 100.0)
    assert width == pytest.approx(6 * np.sqrt(5))
    assert low == pytest.approx(93.292, abs=1e-3)
    assert high == pytest.approx(106.708, abs=1e-3)


def test_trend_and_crossing():
    days = np.arange(0.0, 20.0)
    tr = spc.robust_trend(days + 100, 2 * days + 1)
    assert tr.slope_per_day == pytest.approx(2.0)
    assert tr.intercept == pytest.approx(1.0)
    assert tr.p_value < 1e-6 and tr.tau == pytest.approx(1.0)
    # From day 110 (value 21) the line reaches 31 five days later.
    assert spc.days_to_reach(tr, 31.0, 110.0) == pytest.approx(5.0)
    assert spc.days_to_reach(tr, -5.0, 110.0) is None  # moving away


def test_trend_flat_series_not_significant():
    rng = np.random.default_rng(3)
    tr = spc.robust_trend(np.arange(100.0), rng.normal(size=100))
    assert tr.p_value > 0.05
    assert tr.slope_low < 0 < tr.slope_high


def _fires(z, rule, ruleset):
    return np.flatnonzero(spc.rule_masks(np.asarray(z, float), ruleset)[rule])


# (rule, ruleset, pattern that fires at its last point, near miss that doesn't)
RULE_CASES = [
    ("WE1", "western_electric", [0, 0, 3.1], [0, 0, 2.9]),
    ("WE2", "western_electric", [0, 2.1, 0, 2.1], [0, 2.1, 0, -2.1]),
    ("WE3", "western_electric", [1.1, 1.1, 0, 1.1, 1.1], [1.1, 1.1, 0, 0, 1.1, 1.1]),
    ("WE4", "western_electric", [0.5] * 8, [0.5] * 7 + [-0.5]),
    ("N1", "nelson", [0, -3.2], [0, -2.99]),
    ("N2", "nelson", [-0.3] * 9, [-0.3] * 8 + [0.3]),
    ("N3", "nelson", [0, 0.1, 0.2, 0.3, 0.4, 0.5], [0, 0.1, 0.2, 0.3, 0.4, 0.4]),
    ("N4", "nelson", [0.2, -0.2] * 7, [0.2, -0.2] * 6 + [0.2]),
    ("N5", "nelson", [-2.5, -2.5, 0], [-2.5, 2.5, 0]),
    ("N6", "nelson", [-1.5, -1.5, -1.5, 0, -1.5], [-1.5, -1.5, 0, 0, -1.5]),
    ("N7", "nelson", [0.5, 0.4] * 7 + [0.5], [0.5, 0.4] * 7),
    ("N8", "nelson", [1.5, -1.5, 1.5, 1.5, -1.5, 1.5, 1.5, -1.5],
     [1.5, -1.5, 1.5, 1.5, -1.5, 1.5, 0.5, -1.5]),
]


@pytest.mark.parametrize(("rule", "ruleset", "pattern", "near_miss"), RULE_CASES,
                         ids=[c[0] for c in RULE_CASES])
def test_rule_fires_on_pattern_not_on_near_miss(rule, ruleset, pattern, near_miss):
    assert _fires(pattern, rule, ruleset).tolist()[-1:] == [len(pattern) - 1]
    assert _fires(near_miss, rule, ruleset).size == 0


def test_n8_needs_both_sides():
    assert _fires([1.5] * 8, "N8", "nelson").size == 0


def test_unknown_ruleset_is_an_error():
    with pytest.raises(ValueError, match="unknown rule set"):
        spc.rule_masks(np.zeros(3), "shewhart")


def test_in_control_rule1_rate_matches_theory():
    # P(|Z| > 3) = 0.0027: with known limits about 27 points in 10 000.
    z = np.random.default_rng(7).normal(size=10_000)
    count = spc.rule_masks(z, "nelson")["N1"].sum()
    assert 12 <= count <= 45
