"""The drift verdict of one segment: a robust self-starting CUSUM.

A segment is called *drifting* when a self-starting two-sided CUSUM (Hawkins
1987; k = 0.5, h = 9) of its measurements after the baseline leaves its
decision interval. Each point is standardised by the mean and SD of the
points before it, winsorised (Lucas & Crosier 1982) so that one bad reading
is an out-of-tolerance day, not a drift (``AnalysisOptions.drift_clip``).
The onset is where the CUSUM last left zero; the slope is Theil-Sen with the
Mann-Kendall test over the points since the onset (or the recent ones); the
projected crossing extends a significant trend to the tolerance and action
levels.
"""

from __future__ import annotations

import numpy as np

from agent.qa import spc
from agent.qa.options import AnalysisOptions
from agent.qa.result import DriftVerdict
from agent.qa.tolerances import AppliedTolerance

SECONDS_PER_DAY = 86400.0


def iso(value: np.datetime64 | None) -> str | None:
    """ISO text of a date: the date alone at midnight, else date and time."""
    if value is None:
        return None
    text = str(np.datetime64(value, "s"))
    return text[:10] if text.endswith("T00:00:00") else text


def rounded(value: float | None, digits: int = 4) -> float | None:
    """A number for results: rounded, None when missing or not finite."""
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def drift_verdict(dates: np.ndarray, values: np.ndarray, days: np.ndarray,
                  n_base: int, opts: AnalysisOptions,
                  applied: AppliedTolerance | None) -> DriftVerdict:
    """Whether the segment drifts, since when, which way, how fast, and when
    it reaches tolerance (see the module docstring).

    Parameters
    ----------
    dates, values, days : ndarray
        The current segment: dates, values and times in days.
    n_base : int
        Baseline points at its start (0: no limits, no verdict).
    opts : AnalysisOptions
    applied : AppliedTolerance or None
        The tolerance, for the projected crossings.
    """
    # why long: the verdict, its onset, trend and evidence read as one
    # sequence of steps (module docstring); each step needs the ones before.
    method = (f"self-starting CUSUM (k={opts.drift_k}, h={opts.drift_h}) over "
              f"the last {opts.drift_window} measurements after the baseline "
              "of the current segment")
    if n_base < 3 or values.size <= n_base:
        return DriftVerdict(
            detected=False, direction=0, onset=None, signal_date=None,
            slope_per_day=None, slope_ci=None, trend_p_value=None,
            projected_crossing=None, projected_action_crossing=None,
            method=method, evidence="Not enough points after the baseline "
            "for a drift verdict.")
    skipped = max(0, values.size - n_base - opts.drift_window)
    n_base += skipped  # indices below are relative to the window start
    raw = np.nan_to_num(
        spc.self_starting_scores(values, n_base - skipped, first=n_base,
                                 robust=opts.drift_clip or None), nan=0.0)
    cs = persistent_cusum(raw, opts)
    detected = bool(cs.signal.any())
    direction, onset_idx, signal_idx = 0, None, None
    if detected:
        j = int(cs.signal.argmax())
        up = cs.upper[j] > opts.drift_h
        direction = 1 if up else -1
        side = cs.upper if up else cs.lower
        zeros = np.flatnonzero(side[: j + 1] == 0)
        onset_idx = n_base + (int(zeros[-1]) + 1 if zeros.size else 0)
        signal_idx = n_base + j
    # Trend: since the onset when known, else over the recent points.
    lo = (onset_idx if onset_idx is not None
          else max(0, values.size - opts.trend_window))
    if values.size - lo < 5:
        lo = max(0, values.size - 5)
    trend = spc.robust_trend(days[lo:], values[lo:])
    crossing = action_crossing = None
    if trend.p_value < 0.05 and applied is not None:
        crossing, action_crossing = _crossings(applied, trend, days[-1],
                                           values[-1])
    means: dict[str, float | None] = {}
    if detected:
        before = values[max(0, onset_idx - opts.drift_window):onset_idx].mean()
        means = {"mean_before": rounded(before),
                 "mean_since": rounded(values[onset_idx:].mean()),
                 "shift": rounded(values[onset_idx:].mean() - before)}
        evidence = (
            f"CUSUM signalled on {iso(dates[signal_idx])} "
            f"({'upward' if direction > 0 else 'downward'}); change estimated "
            f"to start {iso(dates[onset_idx])}. Mean before {before:.3g}, "
            f"since {values[onset_idx:].mean():.3g}.")
    else:
        evidence = (f"No sustained change: the CUSUM stayed below "
                    f"h={opts.drift_h} over the last {values.size - n_base} "
                    "points.")
    evidence += (f" Theil-Sen slope {trend.slope_per_day:.4g} per day "
                 f"(95% CI {trend.slope_low:.3g} to {trend.slope_high:.3g}), "
                 f"Mann-Kendall p={trend.p_value:.3g} over {trend.n} points.")
    return DriftVerdict(
        detected=detected, direction=direction,
        onset=iso(dates[onset_idx]) if onset_idx is not None else None,
        signal_date=iso(dates[signal_idx]) if signal_idx is not None else None,
        slope_per_day=rounded(trend.slope_per_day, 6),
        slope_ci=(rounded(trend.slope_low, 6), rounded(trend.slope_high, 6)),
        trend_p_value=rounded(trend.p_value, 6), projected_crossing=crossing,
        projected_action_crossing=action_crossing, method=method,
        evidence=evidence, trend_points=trend.n, **means,
    )

def persistent_cusum(raw: np.ndarray, opts: AnalysisOptions) -> spc.CusumResult:
    """The drift CUSUM of winsorised scores, whose signal must not rest on one
    outlier.

    ``raw``: the self-starting scores against the robust reference, limited to
    +-8 only. The CUSUM runs on them winsorised at +-``drift_clip``. When the
    run that signalled (from where the CUSUM left zero to the signal) holds a
    point whose raw score is beyond ``drift_outlier`` on the side of the
    signal, the CUSUM is run again without the largest such point (its score
    set to 0). A signal that disappears was one bad day plus noise and is not
    a drift; a change that persists still signals, one point later at most.
    This persistence check complements the winsorising (Lucas & Crosier 1982
    discuss both). ``drift_clip`` 0: the plain CUSUM, no check.
    """
    clip = opts.drift_clip
    scores = np.clip(raw, -clip, clip) if clip else raw
    cs = spc.cusum(scores, opts.drift_k, opts.drift_h)
    if not cs.signal.any() or not clip:
        return cs
    j = int(cs.signal.argmax())
    sign = 1.0 if cs.upper[j] > opts.drift_h else -1.0
    side = cs.upper if sign > 0 else cs.lower
    zeros = np.flatnonzero(side[: j + 1] == 0)
    start = int(zeros[-1]) + 1 if zeros.size else 0
    run = raw[start:j + 1] * sign
    if not run.size or run.max() <= opts.drift_outlier:
        return cs
    kept = scores.copy()
    kept[start + int(run.argmax())] = 0.0
    return spc.cusum(kept, opts.drift_k, opts.drift_h)


def _crossings(applied: AppliedTolerance, trend: spc.Trend, last_day: float,
               last_value: float) -> tuple[str | None, str | None]:
    """Projected dates of reaching the tolerance and the action limit."""
    row = applied.row
    bands = applied.bands()
    if trend.slope_per_day > 0:
        tol, act = bands["tol_high"], bands["act_high"]
    else:
        tol, act = bands["tol_low"], bands["act_low"]
    out = []
    for level in (tol, act):
        if level is None:
            out.append(None)
            continue
        already = (last_value > level) if trend.slope_per_day > 0 else (
            last_value < level)
        if row.kind == "minimum" and trend.slope_per_day > 0:
            already = False
        delta = spc.days_to_reach(trend, level, last_day)
        if already or delta is None:
            out.append(None)
            continue
        when = np.datetime64(int((last_day + delta) * SECONDS_PER_DAY), "s")
        out.append(iso(when.astype("datetime64[D]").astype("datetime64[s]")))
    return out[0], out[1]
