"""Statistical process control for linac QA series.

Pure numpy/scipy functions, no I/O: individuals and moving-range (I-MR) limits,
Western Electric and Nelson run rules, EWMA, CUSUM (classic and self-starting),
process capability, TG-218 action limits and a robust trend (Theil-Sen with
Mann-Kendall). The formulas are those of ``knowledge/corpus/spc-primer.md``
(Montgomery; TG-218, Miften et al. 2018; Nelson 1984).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

# Capability and TG-218 limits live in agent/qa/capability.py; they are part of
# the same set of pure numbers and are reached through this module too.
from agent.qa.capability import (
    Capability,
    CapabilityInterval,
    capability,
    capability_interval,
    tg218_action_limits,
)

#: Bias-correction constant for the moving range of two points.
D2 = 1.128
#: I-chart limit factor 3/d2 and MR-chart factor D4 (n = 2).
E2 = 3.0 / D2  # 2.66
D4 = 3.267
#: The same from the median moving range (Wheeler & Chambers, Understanding
#: Statistical Process Control, 1992, table 4): sigma = median MR / 0.954,
#: I-chart limits CL +- 3.145 median MR, MR-chart limit 3.865 median MR. One bad
#: day in the baseline moves the median far less than the mean moving range.
D2_MEDIAN = 0.954
E2_MEDIAN = 3.145
D4_MEDIAN = 3.865


@dataclass(frozen=True)
class ImrLimits:
    """Centre line and limits of an individuals and moving-range chart."""

    center: float
    mr_bar: float
    sigma: float
    ucl: float
    lcl: float
    mr_ucl: float
    n: int


def imr_limits(baseline: np.ndarray, sigma_from: str = "mean_mr") -> ImrLimits:
    """I-MR limits from baseline points (TG-218; Montgomery ch. 6).

    Parameters
    ----------
    baseline : ndarray
        The in-control reference measurements, in time order (at least 2).
    sigma_from : {"mean_mr", "median_mr"}
        ``mean_mr``: sigma = MR-bar / 1.128, limits CL +- 2.66 MR-bar, MR UCL
        3.267 MR-bar (the textbook chart). ``median_mr``: the robust form for
        baselines that may contain a bad day: sigma = median MR / 0.954,
        limits CL +- 3.145 median MR, MR UCL 3.865 median MR, CL the median
        (Wheeler & Chambers 1992). ``mr_bar`` is then the median MR.

    Returns
    -------
    ImrLimits
        CL, MR-bar, sigma, the limits and the MR UCL.
    """
    x = np.asarray(baseline, dtype=float)
    if x.size < 2:
        raise ValueError("I-MR limits need at least two baseline points")
    if sigma_from == "median_mr":
        center = float(np.median(x))
        mr = float(np.median(np.abs(np.diff(x))))
        return ImrLimits(center=center, mr_bar=mr, sigma=mr / D2_MEDIAN,
                         ucl=center + E2_MEDIAN * mr, lcl=center - E2_MEDIAN * mr,
                         mr_ucl=D4_MEDIAN * mr, n=int(x.size))
    if sigma_from != "mean_mr":
        raise ValueError(f"sigma_from must be mean_mr or median_mr, not "
                         f"{sigma_from!r}")
    center = float(x.mean())
    mr_bar = float(np.abs(np.diff(x)).mean())
    sigma = mr_bar / D2
    return ImrLimits(
        center=center,
        mr_bar=mr_bar,
        sigma=sigma,
        ucl=center + E2 * mr_bar,
        lcl=center - E2 * mr_bar,
        mr_ucl=D4 * mr_bar,
        n=int(x.size),
    )


# --- Run rules ------------------------------------------------------------------

#: Rule sets: rule code -> description. Codes are stable identifiers in results.
RULES: dict[str, dict[str, str]] = {
    "western_electric": {
        "WE1": "1 point beyond 3 sigma",
        "WE2": "2 of 3 consecutive points beyond 2 sigma, same side",
        "WE3": "4 of 5 consecutive points beyond 1 sigma, same side",
        "WE4": "8 consecutive points on one side of the centre line",
    },
    "nelson": {
        "N1": "1 point beyond 3 sigma",
        "N2": "9 points in a row on one side of the centre line",
        "N3": "6 points in a row steadily increasing or decreasing",
        "N4": "14 points in a row alternating up and down",
        "N5": "2 of 3 points in a row beyond 2 sigma, same side",
        "N6": "4 of 5 points in a row beyond 1 sigma, same side",
        "N7": "15 points in a row within 1 sigma of the centre line",
        "N8": "8 points in a row beyond 1 sigma, on both sides",
    },
}


def _window_end_mask(flags: np.ndarray, width: int, need: int) -> np.ndarray:
    """True at i when at least ``need`` of flags[i-width+1 .. i] are True."""
    out = np.zeros(flags.size, dtype=bool)
    if flags.size >= width:
        running = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
        out[width - 1 :] = (running[width:] - running[:-width]) >= need
    return out


def _count_of_in_window(z: np.ndarray, level: float, width: int, need: int):
    above = _window_end_mask(z > level, width, need)
    below = _window_end_mask(z < -level, width, need)
    return above | below


def _run_mask(flags: np.ndarray, length: int) -> np.ndarray:
    return _window_end_mask(flags, length, length)


def moving_range_mask(x: np.ndarray, mr_ucl: float) -> np.ndarray:
    """True at i when |x_i - x_(i-1)| is beyond the MR chart's upper limit.

    The moving-range chart's own test (Montgomery ch. 6): a jump between two
    consecutive measurements larger than the process shows, as after a
    service or a chamber swap. Index 0 has no moving range (False).
    """
    x = np.asarray(x, dtype=float)
    out = np.zeros(x.size, dtype=bool)
    if x.size > 1 and mr_ucl > 0:
        out[1:] = np.abs(np.diff(x)) > mr_ucl
    return out


def rule_masks(z: np.ndarray, ruleset: str = "nelson") -> dict[str, np.ndarray]:
    """Evaluate run rules on standardised values.

    Parameters
    ----------
    z : ndarray
        (x - centre) / sigma, in time order.
    ruleset : {"nelson", "western_electric", "both"}
        Which rules to evaluate.

    Returns
    -------
    dict
        Rule code -> boolean array, True at the point that completes the
        pattern (the last point of the window).
    """
    z = np.asarray(z, dtype=float)
    masks: dict[str, np.ndarray] = {}
    beyond3 = np.abs(z) > 3
    diffs = np.diff(z)
    if ruleset in ("western_electric", "both"):
        masks["WE1"] = beyond3
        masks["WE2"] = _count_of_in_window(z, 2, 3, 2)
        masks["WE3"] = _count_of_in_window(z, 1, 5, 4)
        masks["WE4"] = _run_mask(z > 0, 8) | _run_mask(z < 0, 8)
    if ruleset in ("nelson", "both"):
        masks["N1"] = beyond3
        masks["N2"] = _run_mask(z > 0, 9) | _run_mask(z < 0, 9)
        # 6 points steadily increasing = 5 consecutive positive differences.
        trend = np.zeros(z.size, dtype=bool)
        trend[1:] = _run_mask(diffs > 0, 5) | _run_mask(diffs < 0, 5)
        masks["N3"] = trend
        # 14 points alternating = 13 differences whose signs alternate,
        # i.e. 12 consecutive sign changes between neighbouring differences.
        alternating = np.zeros(z.size, dtype=bool)
        if diffs.size >= 2:
            flips = (diffs[1:] * diffs[:-1]) < 0
            alternating[2:] = _run_mask(flips, 12)
        masks["N4"] = alternating
        masks["N5"] = _count_of_in_window(z, 2, 3, 2)
        masks["N6"] = _count_of_in_window(z, 1, 5, 4)
        masks["N7"] = _run_mask(np.abs(z) < 1, 15)
        outside = np.abs(z) > 1
        both_sides = _window_end_mask(z > 1, 8, 1) & _window_end_mask(z < -1, 8, 1)
        masks["N8"] = _run_mask(outside, 8) & both_sides
    if not masks:
        raise ValueError(
            f"unknown rule set {ruleset!r}; use nelson, western_electric or both"
        )
    return masks


# --- EWMA and CUSUM -------------------------------------------------------------


@dataclass(frozen=True)
class EwmaResult:
    """EWMA statistic, its time-varying limits and where it signals."""

    z: np.ndarray
    ucl: np.ndarray
    lcl: np.ndarray
    signal: np.ndarray
    lam: float
    L: float


def ewma(x: np.ndarray, mu0: float, sigma: float, lam: float = 0.2, L: float = 2.86):
    """Exponentially weighted moving average chart.

    z_i = lam x_i + (1 - lam) z_(i-1), z_0 = mu0; limits
    mu0 +- L sigma sqrt(lam / (2 - lam) (1 - (1 - lam)^(2i))).
    Defaults (0.2, 2.86) from Sanghangthum et al. 2013 (ARL0 about 370).
    """
    x = np.asarray(x, dtype=float)
    from scipy.signal import lfilter

    z, _ = lfilter([lam], [1.0, -(1.0 - lam)], x, zi=[(1.0 - lam) * mu0])
    i = np.arange(1, x.size + 1)
    half = L * sigma * np.sqrt(lam / (2.0 - lam) * (1.0 - (1.0 - lam) ** (2 * i)))
    ucl, lcl = mu0 + half, mu0 - half
    return EwmaResult(z, ucl, lcl, (z > ucl) | (z < lcl), lam, L)


@dataclass(frozen=True)
class CusumResult:
    """Tabular two-sided CUSUM, in units of sigma."""

    upper: np.ndarray
    lower: np.ndarray
    signal: np.ndarray
    k: float
    h: float


def cusum(d: np.ndarray, k: float = 0.5, h: float = 5.0) -> CusumResult:
    """Two-sided tabular CUSUM of standardised values.

    C+_i = max(0, C+_(i-1) + d_i - k), C-_i = max(0, C-_(i-1) - d_i - k);
    a signal when either exceeds h. Computed without a Python loop through
    the identity C_i = S_i - min(0, min_(j<=i) S_j) for S the running sum.

    Parameters
    ----------
    d : ndarray
        (x - mu0) / sigma.
    k, h : float
        Reference value and decision interval in sigma (defaults 0.5 and 5).
    """
    d = np.asarray(d, dtype=float)
    s_up = np.cumsum(d - k)
    upper = s_up - np.minimum(np.minimum.accumulate(s_up), 0.0)
    s_dn = np.cumsum(-d - k)
    lower = s_dn - np.minimum(np.minimum.accumulate(s_dn), 0.0)
    return CusumResult(upper, lower, (upper > h) | (lower > h), k, h)


def _running_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of x[:i] for every i (index i: the points before i)."""
    centred = x - x[0]  # centring keeps the running sums accurate
    n = np.arange(1, x.size + 1, dtype=float)
    s1 = np.cumsum(centred)
    s2 = np.cumsum(centred * centred)
    mean = s1 / n
    var = (s2 - n * mean * mean) / np.maximum(n - 1, 1)
    prev_mean = np.r_[np.nan, mean[:-1] + x[0]]
    prev_sd = np.r_[np.nan, np.sqrt(np.maximum(var[:-1], 0.0))]
    return prev_mean, prev_sd


def robust_reference(x: np.ndarray, start: int, clip: float,
                     passes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Running mean and SD (of the points before each) with outliers pulled in.

    Each point from ``start`` on that lies more than ``clip`` running SDs from
    the mean of the points before it counts as that mean +- ``clip`` SDs in
    the reference of the points after it; the reference points before
    ``start`` are limited to their median +- ``clip`` robust SDs (1.4826
    MAD). Two vectorised passes approximate the sequential rule; a series
    without such a point needs one. Only the reference changes, never the
    data.
    """
    x = np.asarray(x, dtype=float)
    ref = x.copy()
    base = x[:start]
    mad = 1.4826 * float(np.median(np.abs(base - np.median(base))))
    if mad > 0:
        med = float(np.median(base))
        ref[:start] = np.clip(base, med - clip * mad, med + clip * mad)
    prev_mean, prev_sd = _running_reference(ref)
    for _ in range(passes):
        lo, hi = prev_mean[start:] - clip * prev_sd[start:], \
            prev_mean[start:] + clip * prev_sd[start:]
        with np.errstate(invalid="ignore"):
            pulled = np.where(np.isfinite(lo), np.clip(x[start:], lo, hi),
                              x[start:])
        if np.array_equal(pulled, ref[start:]):
            break
        ref[start:] = pulled
        prev_mean, prev_sd = _running_reference(ref)
    return prev_mean, prev_sd


def self_starting_scores(
    x: np.ndarray, start: int, first: int | None = None,
    robust: float | None = None, limit: float = 8.0,
) -> np.ndarray:
    """Self-starting standardisation (Hawkins 1987), optionally robust.

    Each point from index ``start`` on is standardised by the mean and standard
    deviation of all points before it, and the t statistic is mapped to a
    standard normal score. For an in-control normal series the scores are
    exactly independent N(0, 1), so CUSUM run lengths do not depend on how
    well a short baseline estimated the mean and sigma.

    With ``robust`` the running mean and SD are those of
    :func:`robust_reference` (a point beyond ``robust`` SDs does not inflate
    the reference of the points after it), in the manner of the winsorised
    CUSUM of Lucas & Crosier (1982, Commun. Statist. Theory Meth. 11:2669);
    the caller limits the scores it feeds a CUSUM.

    Parameters
    ----------
    x : ndarray
        The measurements in time order.
    start : int
        Index of the first point to score (the points before it only serve as
        the reference).
    first : int, optional
        Score only from this index on (the earlier points still count in the
        running mean and SD); saves work when only the recent scores matter.
    robust : float, optional
        Outlier limit of the reference, in SDs; None: the plain reference.
    limit : float
        The returned scores are limited to +-``limit`` (8).

    Returns
    -------
    ndarray
        Scores for x[max(start, first):], NaN where the earlier points have no
        spread.
    """
    x = np.asarray(x, dtype=float)
    if start < 3 or x.size <= start:
        return np.empty(0)
    prev_mean, prev_sd = (robust_reference(x, start, robust) if robust
                          else _running_reference(x))
    idx = np.arange(max(start, first or 0), x.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (x[idx] - prev_mean[idx]) / prev_sd[idx] * np.sqrt(idx / (idx + 1.0))
    # special.stdtr / ndtri are what stats.t.cdf / stats.norm.ppf compute,
    # without the distribution objects' argument checks (a third of the
    # fleet's drift time; bench/fleet_benchmark.py).
    from scipy import special  # here: its import is 0.2 s of every start-up

    scores = special.ndtri(special.stdtr(idx - 1, t))
    scores[~np.isfinite(t)] = np.nan
    return np.clip(scores, -limit, limit)


# --- Trend ----------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    """Theil-Sen slope with its confidence interval and a Mann-Kendall test."""

    slope_per_day: float
    intercept: float
    slope_low: float
    slope_high: float
    tau: float
    p_value: float
    n: int
    t0_days: float


@functools.cache
def _trend_functions() -> tuple[Any, Any]:
    """scipy's Theil-Sen and Kendall tau without their NaN-policy wrapper,
    which costs more than the statistics on a trend window (measured: 0.23 s
    against 0.08 s for 240 Theil-Sen fits). The values here are never NaN
    (the store holds finite values only, ``agent/qa/importers/values.py``).
    Imported on first use: ``scipy.stats`` takes about a second to import,
    which a command that analyses nothing should not pay."""
    from scipy import stats

    return (getattr(stats.theilslopes, "__wrapped__", stats.theilslopes),
            getattr(stats.kendalltau, "__wrapped__", stats.kendalltau))


def robust_trend(days: np.ndarray, x: np.ndarray, confidence: float = 0.95) -> Trend:
    """Theil-Sen slope (scipy) and the Mann-Kendall trend test.

    The Mann-Kendall statistic is Kendall's tau-b between time and value. Its
    p-value is always the two-sided normal approximation with the tie
    correction of the variance (Kendall, Rank Correlation Methods, 1975;
    ``scipy.stats.kendalltau(..., method="asymptotic")``), whatever the
    number of points, so one test is used everywhere. The slope's interval is
    Sen's (1968), from the same variance.

    Parameters
    ----------
    days : ndarray
        Measurement times in days (any origin).
    x : ndarray
        Values.
    confidence : float
        Confidence level of the slope interval.
    """
    days = np.asarray(days, dtype=float)
    x = np.asarray(x, dtype=float)
    t0 = float(days[0])
    rel = days - t0
    theilslopes, kendalltau = _trend_functions()
    slope, intercept, low, high = theilslopes(x, rel, alpha=confidence)
    tau, p = kendalltau(rel, x, method="asymptotic")
    return Trend(
        slope_per_day=float(slope),
        intercept=float(intercept),
        slope_low=float(low),
        slope_high=float(high),
        tau=float(tau) if np.isfinite(tau) else 0.0,
        p_value=float(p) if np.isfinite(p) else 1.0,
        n=int(x.size),
        t0_days=t0,
    )


def days_to_reach(trend: Trend, level: float, from_day: float) -> float | None:
    """Days after ``from_day`` when the trend line reaches ``level``.

    None when the line moves away from the level or is flat.
    """
    if trend.slope_per_day == 0:
        return None
    crossing = trend.t0_days + (level - trend.intercept) / trend.slope_per_day
    delta = crossing - from_day
    return float(delta) if delta > 0 else None

__all__ = [
    "RULES",
    "Capability",
    "CapabilityInterval",
    "CusumResult",
    "EwmaResult",
    "ImrLimits",
    "Trend",
    "capability",
    "capability_interval",
    "cusum",
    "days_to_reach",
    "ewma",
    "imr_limits",
    "moving_range_mask",
    "robust_reference",
    "robust_trend",
    "rule_masks",
    "self_starting_scores",
    "tg218_action_limits",
]
