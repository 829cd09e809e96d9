"""The one typed result of a series analysis, and the order of a fleet.

:class:`SeriesResult` is what ``SeriesAnalysis.analyze()`` produces
(``results_data()``). Its parts are typed (the tolerance that applied, the
control limits, EWMA, CUSUM, capability, TG-218 limits, the drift verdict,
the chart's data); the ``qa-agent analyze --json`` document is
:meth:`SeriesResult.to_contract`, and :meth:`SeriesResult.from_contract`
reads a document with ``details`` back, so a tool result in the agent is the
same object the command line prints. Charts (:mod:`agent.qa.charts`) and
phrases (:mod:`agent.qa.presentation`) are drawn from it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agent.qa import tolerances

#: Status order, worst first.
STATUS_RANK = {"action": 2, "watch": 1, "ok": 0}


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class ToleranceApplied(_Part):
    """The tolerance row that applied to a series, and how it was chosen."""

    id: str
    description: str
    frequency: str
    frequency_of_data: str
    machine_class: str
    machine_class_assumed: bool
    kind: str
    nominal: float = 0.0
    limit: float
    action_limit: float | None
    unit: str
    source: str
    citation: str
    verified: bool
    institutional: bool

    def margin(self, value: float) -> float:
        """Share of the tolerance a value uses (see :func:`tolerances.margin`)."""
        return tolerances.margin(value, self.kind, self.nominal, self.limit)

    def bands(self) -> dict[str, float | None]:
        """Tolerance and action bounds (see :func:`tolerances.bands`)."""
        return tolerances.bands(self.kind, self.nominal, self.limit,
                                self.action_limit)


class Baseline(_Part):
    """The points the control limits were computed from."""

    n: int
    start: str
    end: str
    method: str


class ControlLimits(_Part):
    """Individuals and moving-range chart of the current segment."""

    center: float | None
    ucl: float | None
    lcl: float | None
    sigma: float | None
    mr_bar: float | None
    mr_ucl: float | None
    ruleset: str


class Signal(NamedTuple):
    """A control-chart signal: which rule, where, and what it means.

    A named tuple, not a model: a five-year daily series has a hundred or
    more signals, and a tuple is made and validated about six times faster
    (the fleet makes and moves tens of thousands; ``bench/fleet_benchmark.py``).
    """

    rule: str
    date: str
    value: float
    description: str


class EwmaSummary(_Part):
    """The EWMA chart's parameters, first signal and latest statistic."""

    lambda_: float = Field(alias="lambda")
    L: float
    first_signal: str | None
    latest: float | None


class CusumSummary(_Part):
    """The tabular CUSUM's parameters, first signal and latest sums."""

    k: float
    h: float
    first_signal: str | None
    upper: float | None
    lower: float | None


class Capability(_Part):
    """Process capability against the tolerance (Cp, Cpk, Cpm), with 95%
    intervals and the reading they allow (see ``spc.capability_interval``)."""

    cp: float | None
    cpk: float | None
    cpm: float | None
    lsl: float | None
    usl: float | None
    target: float
    cp_ci: tuple[float, float] | None = None
    cpk_ci: tuple[float, float] | None = None
    cpm_ci: tuple[float, float] | None = None
    #: "capable", "not capable" or "undetermined" (from the Cpk interval).
    verdict: str = "undetermined"
    #: Why: the interval, or that the baseline is not stable.
    reason: str = ""
    capable: bool


class TG218Limits(_Part):
    """TG-218 action limits from the baseline (beta = 6)."""

    lower_action_limit: float | None
    upper_action_limit: float | None
    action_width: float | None
    target: float
    beta: float
    lower_tolerance_limit_lcl: float | None


class DriftVerdict(_Part):
    """Whether the series drifts, since when, which way and how fast."""

    detected: bool
    direction: int
    onset: str | None
    signal_date: str | None
    slope_per_day: float | None
    slope_ci: tuple[float | None, float | None] | None
    trend_p_value: float | None
    projected_crossing: str | None
    projected_action_crossing: str | None
    method: str
    evidence: str
    #: Means before the onset (over the drift window) and since it, and the
    #: shift between them (since minus before); None without a drift.
    mean_before: float | None = None
    mean_since: float | None = None
    shift: float | None = None
    #: Points the Theil-Sen trend and Mann-Kendall test used.
    trend_points: int | None = None


class ChartSegment(_Part):
    """One segment of the chart (between baseline resets)."""

    start: int  # index of the first point
    end: int  # index after the last point
    limits: ControlLimits | None
    baseline: tuple[int, int] | None  # point indices [start, end)


class ChartData(BaseModel):
    """What a control chart needs beyond the numbers: the points themselves.

    Kept out of the JSON documents (``exclude``): it holds every point.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    dates: np.ndarray  # datetime64[s]
    values: np.ndarray  # float
    segments: list[ChartSegment]


class SeriesResult(BaseModel):
    """Everything ``analyze()`` found for one series (``results_data()``)."""

    model_config = ConfigDict(frozen=True)

    machine: str
    test: str
    energy: str
    unit: str
    n: int
    first_date: str | None
    last_date: str | None
    latest_value: float | None
    latest_level: str
    status: str
    status_reason: str
    tolerance: ToleranceApplied | None
    out_of_tolerance: list[str]
    #: The values measured on the ``out_of_tolerance`` dates, in order.
    out_of_tolerance_values: list[float] = Field(default_factory=list)
    out_of_action: list[str]
    segment_start: str | None
    baseline: Baseline | None
    #: Baseline points the current segment has, and the fewest that give limits.
    baseline_available: int = 0
    baseline_needed: int = 0
    spc: ControlLimits | None
    signals: list[Signal]
    ewma: EwmaSummary | None
    cusum: CusumSummary | None
    capability: Capability | None
    tg218: TG218Limits | None
    drift: DriftVerdict
    notes: list[str] = Field(default_factory=list)
    chart: ChartData | None = Field(default=None, exclude=True, repr=False)

    @property
    def label(self) -> str:
        """"TrueBeam2 output 6X"."""
        return " ".join(p for p in (self.machine, self.test, self.energy) if p)

    @property
    def key(self) -> tuple[str, str, str]:
        """(machine, test, energy)."""
        return self.machine, self.test, self.energy

    def to_contract(self, details: bool = False) -> dict[str, Any]:
        """The series entry of the ``analyze --json`` contract (README).

        With ``details`` the entry also holds every other field under
        ``details``, so :meth:`from_contract` can rebuild the result.
        """
        tol = self.tolerance
        spc = self.spc
        entry: dict[str, Any] = {
            "machine": self.machine,
            "test": self.test,
            "energy": self.energy,
            "n": self.n,
            "unit": self.unit,
            "status": self.status,
            "tolerance": {
                "limit": tol.limit if tol else None,
                "unit": tol.unit if tol else self.unit,
                "source": tol.source if tol else None,
                "out_of_tolerance": self.out_of_tolerance,
            },
            "spc": {
                "center": spc.center if spc else None,
                "ucl": spc.ucl if spc else None,
                "lcl": spc.lcl if spc else None,
                "signals": [{"rule": s.rule, "date": s.date} for s in self.signals],
            },
            "drift": {
                "detected": self.drift.detected,
                "direction": self.drift.direction,
                "onset": self.drift.onset,
                "slope_per_day": self.drift.slope_per_day,
                "projected_crossing": self.drift.projected_crossing,
            },
        }
        if details:
            entry["details"] = self.details()
        return entry

    def details(self) -> dict[str, Any]:
        """Everything beyond the contract: evidence for people and the agent."""
        dumped = self.model_dump(mode="json", by_alias=True)
        return {
            "first_date": self.first_date,
            "last_date": self.last_date,
            "latest_value": self.latest_value,
            "latest_level": self.latest_level,
            "status_reason": self.status_reason,
            "tolerance_row": dumped["tolerance"],
            "out_of_tolerance_values": self.out_of_tolerance_values,
            "out_of_action": self.out_of_action,
            "segment_start": self.segment_start,
            "baseline": dumped["baseline"],
            "baseline_available": self.baseline_available,
            "baseline_needed": self.baseline_needed,
            "spc": dumped["spc"],
            "signals": [s._asdict() for s in self.signals],
            "ewma": dumped["ewma"],
            "cusum": dumped["cusum"],
            "capability": dumped["capability"],
            "tg218": dumped["tg218"],
            "drift": dumped["drift"],
            "notes": self.notes,
        }

    @classmethod
    def from_contract(cls, entry: dict[str, Any]) -> SeriesResult:
        """The result an ``analyze --json --details`` series entry describes.

        Raises
        ------
        KeyError
            When the entry has no ``details`` (the short contract alone does
            not hold the whole result).
        """
        d = entry["details"]
        return cls.model_validate({
            **{k: entry[k] for k in ("machine", "test", "energy", "unit", "n",
                                     "status")},
            **{k: v for k, v in d.items() if k != "tolerance_row"},
            "tolerance": d["tolerance_row"],
            "out_of_tolerance": entry["tolerance"]["out_of_tolerance"],
        })


def worst_first(results: list[SeriesResult]) -> list[SeriesResult]:
    """Order by status, then drift, then how much of its tolerance the latest
    value uses (from the row's nominal), then by name."""

    def used(r: SeriesResult) -> float:
        if r.tolerance is None or r.latest_value is None or not r.tolerance.limit:
            return 0.0
        return r.tolerance.margin(r.latest_value)

    return sorted(results, key=lambda r: (-STATUS_RANK[r.status],
                                          not r.drift.detected, -used(r),
                                          r.machine, r.test, r.energy))


__all__ = ["STATUS_RANK", "Baseline", "Capability", "ChartData", "ChartSegment",
           "ControlLimits", "CusumSummary", "DriftVerdict", "EwmaSummary",
           "SeriesResult", "Signal", "TG218Limits", "ToleranceApplied",
           "worst_first"]
