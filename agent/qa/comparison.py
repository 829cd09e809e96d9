"""Two groups of measurements compared: two periods of one series, or one
period of two machines or energies.

Each group is analysed as any series is (its own baseline, control limits
and verdict); the difference of the means, second minus first, comes with
Welch's 95% confidence interval and p-value (unequal variances;
``scipy.stats.ttest_ind(..., equal_var=False)``). Welch's interval assumes
independent points: with autocorrelated daily QA data it is too narrow, so
the answer gives it beside each group's own control chart verdict, not in
place of it.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from agent.qa.drift import rounded
from agent.qa.result import SeriesResult
from agent.qa.series import SeriesData


class GroupSummary(BaseModel):
    """One side of a comparison: which data, and its numbers."""

    model_config = ConfigDict(frozen=True)

    label: str
    machine: str
    test: str
    energy: str
    unit: str
    start: str | None
    end: str | None
    n: int
    mean: float | None
    sd: float | None
    center: float | None
    lcl: float | None
    ucl: float | None
    status: str
    drift_detected: bool
    direction: int


class Comparison(BaseModel):
    """Two groups and the difference of their means (second minus first)."""

    model_config = ConfigDict(frozen=True)

    unit: str
    groups: list[GroupSummary]
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    #: p-values below this are written "p < 0.001" (the answer's number is
    #: then this one, checked like every other against the result).
    p_value_floor: float = 0.001
    method: str = ("difference of means, second minus first, with Welch's 95% "
                   "confidence interval (unequal variances)")


def summarise(label: str, series: SeriesData, result: SeriesResult) -> GroupSummary:
    """The numbers of one group from its series and its analysis."""
    values = np.asarray(series.values, dtype=float)
    spc = result.spc
    return GroupSummary(
        label=label, machine=series.machine, test=series.test,
        energy=series.energy, unit=series.unit, start=result.first_date,
        end=result.last_date, n=int(values.size),
        mean=rounded(values.mean()) if values.size else None,
        sd=rounded(values.std(ddof=1)) if values.size > 1 else None,
        center=spc.center if spc else None, lcl=spc.lcl if spc else None,
        ucl=spc.ucl if spc else None, status=result.status,
        drift_detected=result.drift.detected, direction=result.drift.direction)


def compare_groups(first: tuple[str, SeriesData, SeriesResult],
                   second: tuple[str, SeriesData, SeriesResult]) -> Comparison:
    """Compare two analysed groups.

    Parameters
    ----------
    first, second : tuple
        (label, the group's series, its analysis result).

    Returns
    -------
    Comparison
        Both summaries and the difference of means (second minus first) with
        Welch's 95% interval; None where a group has fewer than two points.
    """
    a = np.asarray(first[1].values, dtype=float)
    b = np.asarray(second[1].values, dtype=float)
    diff = low = high = p = None
    if a.size and b.size:
        diff = rounded(b.mean() - a.mean())
    if a.size > 1 and b.size > 1 and (a.std() > 0 or b.std() > 0):
        from scipy import stats  # on first use: it takes about a second to import

        test = stats.ttest_ind(b, a, equal_var=False)
        ci = test.confidence_interval(0.95)
        low, high, p = rounded(ci.low), rounded(ci.high), rounded(test.pvalue, 6)
    return Comparison(unit=first[1].unit,
                      groups=[summarise(*first), summarise(*second)],
                      difference=diff, ci_low=low, ci_high=high, p_value=p)


__all__ = ["Comparison", "GroupSummary", "compare_groups", "summarise"]
