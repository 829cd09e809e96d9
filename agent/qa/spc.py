"""Statistical process control for linac QA series.

Pure numpy/scipy functions, no I/O: individuals and moving-range (I-MR) limits,
Western Electric and Nelson run rules, EWMA, CUSUM (classic and self-starting),
process capability, TG-218 action limits and a robust trend (Theil-Sen with
Mann-Kendall). The formulas are those of ``knowledge/corpus/spc-primer.md``
(Montgomery; TG-218, Miften et al. 2018; Nelson 1984).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Bias-correction constant for the moving range of two points.
D2 = 1.128
#: I-chart limit factor 3/d2 and MR-chart factor D4 (n = 2).
E2 = 3.0 / D2  # 2.66
D4 = 3.267


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


def imr_limits(baseline: np.ndarray) -> ImrLimits:
    """I-MR limits from baseline points (TG-218; Montgomery ch. 6).

    Parameters
    ----------
    baseline : ndarray
        The in-control reference measurements, in time order (at least 2).

    Returns
    -------
    ImrLimits
        CL = mean, sigma = MR-bar / 1.128, limits CL +- 2.66 MR-bar,
        MR UCL = 3.267 MR-bar.
    """
    x = np.asarray(baseline, dtype=float)
    if x.size < 2:
        raise ValueError("I-MR limits need at least two baseline points")
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


def self_starting_scores(
    x: np.ndarray, start: int, first: int | None = None
) -> np.ndarray:
    """Self-starting standardisation (Hawkins 1987).

    Each point from index ``start`` on is standardised by the mean and standard
    deviation of all points before it, and the t statistic is mapped to a
    standard normal score. For an in-control normal series the scores are
    exactly independent N(0, 1), so CUSUM run lengths do not depend on how
    well a short baseline estimated the mean and sigma.

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

    Returns
    -------
    ndarray
        Scores for x[max(start, first):], NaN where the earlier points have no
        spread.
    """
    x = np.asarray(x, dtype=float)
    if start < 3 or x.size <= start:
        return np.empty(0)
    centred = x - x[0]  # centring keeps the running sums accurate
    n = np.arange(1, x.size + 1, dtype=float)
    s1 = np.cumsum(centred)
    s2 = np.cumsum(centred * centred)
    mean = s1 / n
    var = (s2 - n * mean * mean) / np.maximum(n - 1, 1)
    idx = np.arange(max(start, first or 0), x.size)
    prev_mean = mean[idx - 1]
    prev_sd = np.sqrt(np.maximum(var[idx - 1], 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (centred[idx] - prev_mean) / prev_sd * np.sqrt(idx / (idx + 1.0))
    scores = stats.norm.ppf(stats.t.cdf(t, idx - 1))
    scores[~np.isfinite(t)] = np.nan
    return np.clip(scores, -8.0, 8.0)


# --- Capability and TG-218 ------------------------------------------------------


@dataclass(frozen=True)
class Capability:
    """Process capability indices against specification limits."""

    cp: float | None
    cpk: float | None
    cpm: float | None
    lsl: float | None
    usl: float | None
    target: float


def capability(
    mean: float,
    sigma: float,
    lsl: float | None,
    usl: float | None,
    target: float,
) -> Capability:
    """Cp, Cpk and Cpm (TG-218, Miften et al. 2018).

    Cp = (USL - LSL)/(6 sigma); Cpk = min(USL - mu, mu - LSL)/(3 sigma);
    Cpm = (USL - LSL)/(6 sqrt(sigma^2 + (mu - T)^2)). With a one-sided
    specification only Cpk (its one side) is defined.
    """
    if sigma <= 0:
        return Capability(None, None, None, lsl, usl, target)
    sides = []
    if usl is not None:
        sides.append((usl - mean) / (3 * sigma))
    if lsl is not None:
        sides.append((mean - lsl) / (3 * sigma))
    cpk = min(sides) if sides else None
    if usl is not None and lsl is not None:
        cp = (usl - lsl) / (6 * sigma)
        cpm = (usl - lsl) / (6 * np.sqrt(sigma**2 + (mean - target) ** 2))
    else:
        cp = cpm = None
    return Capability(
        cp=None if cp is None else float(cp),
        cpk=None if cpk is None else float(cpk),
        cpm=None if cpm is None else float(cpm),
        lsl=lsl,
        usl=usl,
        target=target,
    )


def tg218_action_limits(
    mean: float, sigma: float, target: float, beta: float = 6.0
) -> tuple[float, float, float]:
    """TG-218 action limits: dA = beta sqrt(sigma^2 + (mean - T)^2).

    Returns
    -------
    (lower, upper, dA)
        T - dA/2, T + dA/2 and the action interval width dA.
    """
    width = beta * float(np.sqrt(sigma**2 + (mean - target) ** 2))
    return target - width / 2, target + width / 2, width


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


def robust_trend(days: np.ndarray, x: np.ndarray, confidence: float = 0.95) -> Trend:
    """Theil-Sen slope (scipy) and the Mann-Kendall trend test.

    The Mann-Kendall statistic is Kendall's tau between time and value; its
    p-value is scipy's (normal approximation with tie correction).

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
    slope, intercept, low, high = stats.theilslopes(x, rel, alpha=confidence)
    tau, p = stats.kendalltau(rel, x)
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
