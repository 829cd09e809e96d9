"""The SPC defaults in one frozen object, each with its reason or reference.

:class:`AnalysisOptions` is what ``SeriesAnalysis.analyze`` runs with. The
settings (``Settings.baseline_points`` and the like) override the defaults
through :meth:`AnalysisOptions.from_settings`; the command line overrides a
few per run (``--baseline-points``, ``--rules``, the baseline dates).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

RuleSet = Literal["nelson", "western_electric", "both"]


@dataclass(frozen=True)
class AnalysisOptions:
    """Parameters of one series analysis.

    Attributes
    ----------
    baseline_points : int
        Baseline = the first N points of each segment. 30: the number Montgomery
        (Introduction to Statistical Quality Control, ch. 6) and TG-218 give as
        the minimum for stable individuals-chart limits.
    baseline_start, baseline_end : str or None
        Baseline = the points in this date range instead (both included).
    ruleset : {"nelson", "western_electric", "both"}
        Run rules evaluated on the I chart (Nelson 1984; Western Electric
        Handbook 1956). Nelson's eight rules include the WE four.
    min_baseline_points : int
        Fewer baseline points than this: no control limits, tolerance check
        only. 8: below it the moving-range sigma is too uncertain to chart
        (its relative standard error exceeds about 30%).
    ewma_lambda, ewma_L : float
        EWMA weight 0.2 and width 2.86 sigma: Montgomery's table 9.11 pair with
        an in-control ARL of about 500 that catches 1 sigma shifts quickly.
    cusum_k, cusum_h : float
        Tabular CUSUM reference value 0.5 sigma and decision interval 5 sigma
        (Montgomery ch. 9: ARL about 465 in control, about 10 for a 1 sigma
        shift). Evidence only.
    drift_k, drift_h : float
        The drift verdict's self-starting CUSUM (Hawkins 1987): k 0.5, h 9.
        h 9 keeps false verdicts under 1% of stable 250-point series in
        ``bench/drift_simulation.py`` while a 2 sigma step is caught within
        10 measurements (README, "Measured").
    drift_window : int
        The verdict looks at the last this many measurements after the
        baseline, so its false-alarm rate per series does not grow with the
        length of the record.
    trend_window : int
        Points used for the Theil-Sen trend when no drift onset is known
        (about four months of daily QA).
    drift_clip : float
        The drift verdict is robust to isolated outliers: the self-starting
        scores are winsorised at +-2.5 SD and an outlier does not inflate the
        running reference (Lucas & Crosier 1982, the winsorised CUSUM). One
        bad reading then adds at most 2.5 - k = 2.0 to the CUSUM, so it takes
        five readings far out on one side, not one, to reach h = 9: a setup
        error is an out-of-tolerance day, not a drift. 2.5 rather than 3: with
        3% of the points 6-12 SD outliers, 3 let 2% of stable series be called
        drifting, 2.5 keeps it near 1% while a 2 SD step is still caught in a
        median 8 measurements (``bench/drift_simulation.py``). A signal must
        also survive without its most extreme reading when that reading is an
        outlier (the persistence check of ``agent.qa.drift.persistent_cusum``).
        0: the plain scores, no persistence check.
    drift_outlier : float
        A reading beyond 4.5 SD of the points before it is an outlier that
        cannot carry a signal alone (the persistence check). A 2 SD step gives
        such a score to about 1% of its points, a 6-12 SD bad reading always
        does. (The running reference itself is winsorised at ``drift_clip``:
        at 4.5 SD, 3% of outliers still inflated the SD enough to miss 61% of
        1 SD steps in the simulation; at 2.5 SD, 7.5%.)
    sigma_from : {"mean_mr", "median_mr"}
        Sigma and limits from the mean moving range (the textbook I-MR chart)
        or from the median moving range (robust to a bad day in the baseline;
        Wheeler & Chambers 1992).
    escalate_window, escalate_count : int
        Status ``action`` when the latest value is beyond tolerance, or when
        at least ``escalate_count`` of the last ``escalate_window`` are (2 of
        5: a second bad day within a working week is a pattern, not chance).
    capability_required : float
        The Cpk a capable process shows (1.0: the tolerance is 3 sigma from
        the mean); read from the 95% interval, not the point estimate.
    """

    baseline_points: int = 30
    baseline_start: str | None = None
    baseline_end: str | None = None
    ruleset: RuleSet = "nelson"
    min_baseline_points: int = 8
    ewma_lambda: float = 0.2
    ewma_L: float = 2.86  # noqa: N815 (the textbook's name)
    cusum_k: float = 0.5
    cusum_h: float = 5.0
    drift_k: float = 0.5
    drift_h: float = 9.0
    drift_window: int = 250
    trend_window: int = 120
    drift_clip: float = 2.5
    drift_outlier: float = 4.5
    sigma_from: str = "mean_mr"
    escalate_window: int = 5
    escalate_count: int = 2
    capability_required: float = 1.0

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> AnalysisOptions:
        """The options a department configured, with per-run overrides.

        Parameters
        ----------
        settings : Settings
            ``baseline_points``, ``min_baseline_points``, ``run_rules``,
            ``ewma_lambda``, ``ewma_L``, ``cusum_k``, ``cusum_h``.
        **overrides
            Fields to set for this run; ``None`` values are ignored.
        """
        base = cls(
            baseline_points=settings.baseline_points,
            ruleset=settings.run_rules,
            min_baseline_points=settings.min_baseline_points,
            ewma_lambda=settings.ewma_lambda,
            ewma_L=settings.ewma_L,
            cusum_k=settings.cusum_k,
            cusum_h=settings.cusum_h,
            sigma_from=settings.sigma_from,
        )
        return base.with_changes(**overrides)

    def with_changes(self, **changes: Any) -> AnalysisOptions:
        """A copy with the given fields changed (``None`` values ignored).

        Raises
        ------
        TypeError
            For a name that is not an option.
        """
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown analysis option(s): {sorted(unknown)}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


DEFAULT_OPTIONS = AnalysisOptions()

__all__ = ["DEFAULT_OPTIONS", "AnalysisOptions", "RuleSet"]
