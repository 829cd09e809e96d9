"""Analysis of one QA series (and of a fleet): tolerance, SPC and drift verdict.

In the style of pylinac: ``SeriesAnalysis(series, tables)`` then ``analyze()``,
then ``results()`` (text), ``results_data()`` (a typed object, whose
``to_contract()`` is the ``qa-agent analyze --json`` document) and ``plot()``.

The drift verdict
-----------------
A series is called *drifting* when a self-starting two-sided CUSUM (Hawkins
1987; k = 0.5, h = 9) of the measurements after the baseline of the current
segment (the points since the last baseline reset) leaves its decision
interval. Each point is standardised by the mean and standard deviation of all
points before it, so the false-alarm behaviour does not depend on how well a
short baseline estimated them. In-control average run length is about 26 000
measurements; by simulation (``bench/drift_simulation.py``) under 1% of stable
250-day series get a false verdict, while a 2 sigma step is caught after a
median of 6 measurements. Western Electric / Nelson rules, the EWMA and the
textbook CUSUM are reported as evidence and raise the *watch* status when they
fire on the latest points, but a single rule firing is never called a drift.
"""

from __future__ import annotations

import numpy as np

from agent.qa import spc
from agent.qa.drift import SECONDS_PER_DAY, drift_verdict, iso, rounded
from agent.qa.options import AnalysisOptions
from agent.qa.result import (
    Baseline,
    Capability,
    ChartData,
    ChartSegment,
    ControlLimits,
    CusumSummary,
    DriftVerdict,
    EwmaSummary,
    SeriesResult,
    Signal,
    TG218Limits,
    ToleranceApplied,
)
from agent.qa.series import SeriesData
from agent.qa.tolerances import AppliedTolerance, ToleranceTables, frequency_of

_DEFAULTS = AnalysisOptions()
#: Decision interval and reference value of the drift verdict's CUSUM.
DRIFT_H = _DEFAULTS.drift_h
DRIFT_K = _DEFAULTS.drift_k
DRIFT_WINDOW = _DEFAULTS.drift_window
TREND_WINDOW = _DEFAULTS.trend_window


def iso_many(values: np.ndarray) -> list[str]:
    """:func:`iso` of each date of an array (one numpy call: fleets have many)."""
    text = np.datetime_as_string(np.asarray(values, dtype="datetime64[s]"),
                                 unit="s").tolist()
    return [t[:10] if t.endswith("T00:00:00") else t for t in text]


def _episodes(mask: np.ndarray) -> np.ndarray:
    """Indices where a run of True values starts."""
    mask = np.asarray(mask, dtype=bool)
    return np.flatnonzero(mask & ~np.r_[False, mask[:-1]])


def _signals_at(rule: str, text: str, at: np.ndarray, dates: np.ndarray,
                values: np.ndarray) -> list[Signal]:
    """One Signal of ``rule`` per index in ``at`` (dates formatted at once)."""
    return [Signal(rule, date, value, text) for date, value in
            zip(iso_many(dates[at]), values[at].tolist(), strict=True)]


class SeriesAnalysis:
    """Tolerance check, I-MR chart, run rules, EWMA, CUSUM and drift verdict.

    Parameters
    ----------
    series : SeriesData
        The measurements (from the store or a file).
    tables : ToleranceTables
        Tolerance rows and the machine registry.
    """

    def __init__(self, series: SeriesData, tables: ToleranceTables) -> None:
        self.series = series
        self.tables = tables
        self.options = _DEFAULTS
        self._result: SeriesResult | None = None
        self.segments: list[tuple[int, int]] = []
        self.limits: list[spc.ImrLimits | None] = []
        self.baseline_ranges: list[tuple[int, int]] = []
        self.applied: AppliedTolerance | None = None
        self._limit_parts: dict[int, ControlLimits] = {}
        self._latest_jump = False
        self._baseline_unstable = ""

    # --- the analysis -----------------------------------------------------------

    def analyze(self, options: AnalysisOptions | None = None,
                **changes: object) -> SeriesAnalysis:
        """Run the analysis.

        Parameters
        ----------
        options : AnalysisOptions, optional
            The SPC parameters (default :class:`AnalysisOptions`, whose fields
            document each default and its reference).
        **changes
            Fields of the options to change for this run, e.g.
            ``baseline_points=20`` or ``ruleset="western_electric"``.
        """
        opts = options or _DEFAULTS
        if changes:
            opts = opts.with_changes(**changes)
        self.options = opts
        s = self.series
        dates, values = s.dates, np.asarray(s.values, dtype=float)
        n = values.size
        days = dates.astype("datetime64[s]").astype(np.int64) / SECONDS_PER_DAY
        notes = self._apply_tolerance(days)
        levels = (self.applied.levels(values) if self.applied
                  else np.full(n, "ok", dtype=object))
        out_tol = (self.applied.beyond(values) if self.applied
                   else np.zeros(n, dtype=bool))
        chosen = self._segment(dates)
        signals, z_current = self._chart_signals(dates, values, chosen)
        a, b = self.segments[chosen]
        lim = self.limits[chosen]
        base_a, base_b = self.baseline_ranges[chosen]
        notes += self._segment_notes(dates[a] if n else None, lim, base_b - base_a)
        parts = self._current_segment(dates[a:b], values[a:b], lim, base_a, base_b,
                                      signals)
        signals.sort(key=lambda sig: (sig.date, sig.rule))
        drift = self._drift(dates[a:b], values[a:b], days[a:b],
                            base_b - base_a if lim is not None else 0)
        latest_level = str(levels[-1]) if n else "ok"
        status, reason = self._status(levels, drift, z_current)
        self._result = SeriesResult(
            machine=s.machine, test=s.test, energy=s.energy, unit=s.unit, n=int(n),
            first_date=iso(dates[0]) if n else None,
            last_date=iso(dates[-1]) if n else None,
            latest_value=rounded(values[-1]) if n else None,
            latest_level=latest_level, status=status, status_reason=reason,
            tolerance=(ToleranceApplied(**self.applied.as_dict())
                       if self.applied else None),
            out_of_tolerance=iso_many(dates[out_tol]),
            out_of_tolerance_values=[round(v, 4) for v in values[out_tol].tolist()],
            out_of_action=iso_many(dates[levels == "action"]),
            segment_start=iso(dates[a]) if n else None,
            baseline_available=base_b - base_a,
            baseline_needed=max(opts.min_baseline_points, 2),
            signals=signals, drift=drift, notes=notes, chart=self._chart_data(),
            **parts,
        )
        return self

    def _segment_notes(self, start: np.datetime64 | None, lim: object,
                       n_base: int) -> list[str]:
        notes = []
        if len(self.segments) > 1:
            notes.append(f"{len(self.segments) - 1} baseline reset(s); the current "
                         f"segment starts {iso(start)}.")
        if lim is None:
            notes.append(
                f"Only {n_base} baseline points in the current segment (at least "
                f"{self.options.min_baseline_points} needed): no control limits "
                "yet; tolerance checked only.")
        return notes

    def _apply_tolerance(self, days: np.ndarray) -> list[str]:
        """Choose the tolerance row (frequency from the spacing of points)."""
        s = self.series
        spacing = float(np.median(np.diff(days))) if days.size > 1 else 1.0
        self.applied = self.tables.applicable(s.machine, s.test, s.unit, s.energy,
                                              frequency_of(spacing))
        notes: list[str] = []
        if self.applied is None:
            notes.append(f"No tolerance row found for {s.test} in {s.unit}; "
                         "tolerance not checked.")
        elif self.applied.class_assumed:
            notes.append(f"{s.machine} is not in the machine registry; class "
                         f"{self.applied.machine_class} assumed.")
        if self.applied is not None and not self.applied.row.verified:
            notes.append("The tolerance row is unverified: check the original "
                         "report.")
        return notes

    def _segment(self, dates: np.ndarray) -> int:
        """Split at baseline resets; return the segment the baseline is in."""
        n = dates.size
        cuts = [0]
        for reset in self.series.resets:
            idx = int(np.searchsorted(dates, np.datetime64(reset, "s"), side="left"))
            if 0 < idx < n and idx not in cuts:
                cuts.append(idx)
        cuts = sorted(cuts)
        self.segments = list(zip(cuts, [*cuts[1:], n], strict=True))
        chosen = len(self.segments) - 1
        if self.options.baseline_start:
            start_t = np.datetime64(self.options.baseline_start, "s")
            for i, (a, b) in enumerate(self.segments):
                if a < b and dates[a] <= start_t <= dates[b - 1]:
                    return i
                if dates[a] >= start_t:
                    return i
        return chosen

    def _baseline_range(self, dates: np.ndarray, a: int, b: int,
                        use_dates: bool) -> tuple[int, int]:
        """Baseline points of one segment, relative to its start."""
        opts = self.options
        if not use_dates:
            return 0, min(opts.baseline_points, b - a)
        lo = np.datetime64(opts.baseline_start, "s")
        hi = (np.datetime64(opts.baseline_end, "s") + np.timedelta64(1, "D")
              if opts.baseline_end else dates[b - 1] + np.timedelta64(1, "s"))
        in_range = np.flatnonzero((dates[a:b] >= lo) & (dates[a:b] < hi))
        return (int(in_range[0]), int(in_range[-1]) + 1) if in_range.size else (0, 0)

    def _chart_signals(self, dates: np.ndarray, values: np.ndarray,
                       chosen: int) -> tuple[list[Signal], np.ndarray | None]:
        """Control limits and run-rule signals of every segment."""
        opts = self.options
        signals: list[Signal] = []
        self.limits, self.baseline_ranges = [], []
        z_current: np.ndarray | None = None
        for i, (a, b) in enumerate(self.segments):
            seg_vals = values[a:b]
            base = self._baseline_range(dates, a, b,
                                        bool(opts.baseline_start) and i == chosen)
            self.baseline_ranges.append((a + base[0], a + base[1]))
            if base[1] - base[0] < max(opts.min_baseline_points, 2):
                self.limits.append(None)
                continue
            lim = spc.imr_limits(seg_vals[base[0]:base[1]], opts.sigma_from)
            self.limits.append(lim)
            if lim.sigma <= 0:
                continue
            z = (seg_vals - lim.center) / lim.sigma
            if i == chosen:
                z_current = z
            masks = spc.rule_masks(z, opts.ruleset)
            masks["MR"] = spc.moving_range_mask(seg_vals, lim.mr_ucl)
            if i == chosen:
                self._latest_jump = bool(masks["MR"][-1]) if b > a else False
                self._baseline_unstable = _instability(z[base[0]:base[1]])
            for rule, mask in masks.items():
                text = spc.RULES.get(opts.ruleset, {}).get(rule) or _rule_text(rule)
                signals += _signals_at(rule, text, _episodes(mask), dates[a:b],
                                       seg_vals)
        return signals, z_current

    def _current_segment(self, seg_dates: np.ndarray, seg_vals: np.ndarray,
                         lim: spc.ImrLimits | None, base_a: int, base_b: int,
                         signals: list[Signal]) -> dict[str, object]:
        """Baseline, limits, EWMA, CUSUM, capability of the current segment."""
        opts = self.options
        parts: dict[str, object] = {"baseline": None, "spc": None, "ewma": None,
                                    "cusum": None, "capability": None,
                                    "tg218": None}
        if lim is None:
            return parts
        dates = self.series.dates
        parts["baseline"] = Baseline(
            n=lim.n, start=iso(dates[base_a]), end=iso(dates[base_b - 1]),
            method=("date range" if opts.baseline_start else
                    f"first {opts.baseline_points} points of the segment"))
        parts["spc"] = self._limits_of(lim)
        if lim.sigma > 0:
            ewma = spc.ewma(seg_vals, lim.center, lim.sigma, opts.ewma_lambda,
                            opts.ewma_L)
            cusum = spc.cusum((seg_vals - lim.center) / lim.sigma, opts.cusum_k,
                              opts.cusum_h)
            for name, result in (("EWMA", ewma), ("CUSUM", cusum)):
                signals += _signals_at(name, _rule_text(name),
                                       _episodes(result.signal), seg_dates, seg_vals)

            def first(m: np.ndarray) -> str | None:
                return iso(seg_dates[m.argmax()]) if m.any() else None

            parts["ewma"] = EwmaSummary(**{"lambda": opts.ewma_lambda},
                                        L=opts.ewma_L,
                                        first_signal=first(ewma.signal),
                                        latest=rounded(ewma.z[-1]))
            parts["cusum"] = CusumSummary(k=opts.cusum_k, h=opts.cusum_h,
                                          first_signal=first(cusum.signal),
                                          upper=rounded(cusum.upper[-1]),
                                          lower=rounded(cusum.lower[-1]))
        parts["capability"], parts["tg218"] = self._capability(lim)
        return parts

    def _limits_of(self, lim: spc.ImrLimits) -> ControlLimits:
        """The typed limits of a segment, made once (the result and the chart
        share them)."""
        made = self._limit_parts.get(id(lim))
        if made is None:
            made = self._limit_parts[id(lim)] = _limits_part(lim, self.options.ruleset)
        return made

    def _chart_data(self) -> ChartData:
        """The points and segments a control chart draws."""
        segments = [
            ChartSegment(start=a, end=b,
                         limits=self._limits_of(lim) if lim is not None else None,
                         baseline=(ba, bb) if bb > ba else None)
            for (a, b), lim, (ba, bb) in zip(self.segments, self.limits,
                                              self.baseline_ranges, strict=True)
        ]
        return ChartData(dates=self.series.dates,
                         values=np.asarray(self.series.values, dtype=float),
                         segments=segments)

    def _capability(self, lim: spc.ImrLimits
                    ) -> tuple[Capability | None, TG218Limits | None]:
        if self.applied is None or lim.sigma <= 0:
            return None, None
        lsl, usl, target = self.applied.spec_limits()
        c = spc.capability(lim.center, lim.sigma, lsl, usl, target)
        low, high, width = spc.tg218_action_limits(lim.center, lim.sigma, target)
        ci = spc.capability_interval(c, lim.n, lim.center, lim.sigma,
                                     required=self.options.capability_required)
        verdict, reason = ci.verdict, _interval_reason(ci, self.options)
        if self._baseline_unstable:
            # Capability describes a process in control (Montgomery ch. 8): an
            # unstable baseline allows no verdict, whatever the indices say.
            verdict = "undetermined"
            reason = (f"the baseline is not stable ({self._baseline_unstable}): "
                      "no capability verdict")
        cap = Capability(cp=rounded(c.cp, 3), cpk=rounded(c.cpk, 3),
                         cpm=rounded(c.cpm, 3),
                         lsl=c.lsl, usl=c.usl, target=target,
                         cp_ci=_pair(ci.cp), cpk_ci=_pair(ci.cpk),
                         cpm_ci=_pair(ci.cpm), verdict=verdict, reason=reason,
                         capable=verdict == "capable")
        tg218 = TG218Limits(lower_action_limit=rounded(low),
                            upper_action_limit=rounded(high),
                            action_width=rounded(width), target=target, beta=6.0,
                            lower_tolerance_limit_lcl=rounded(lim.lcl))
        return cap, tg218

    def _drift(self, dates: np.ndarray, values: np.ndarray, days: np.ndarray,
               n_base: int) -> DriftVerdict:
        """The drift verdict of the current segment (:mod:`agent.qa.drift`)."""
        return drift_verdict(dates, values, days, n_base, self.options,
                             self.applied)

    def _status(self, levels: np.ndarray, drift: DriftVerdict,
                z: np.ndarray | None) -> tuple[str, str]:
        """ok / watch / action from the recent levels, the drift and the chart.

        ``action``: the latest value beyond tolerance, or ``escalate_count`` of
        the last ``escalate_window`` (options). Run rules other than a point
        beyond the limits are evidence only: with eight rules, one fires by
        chance on most stable series every few weeks.
        """
        latest_level = str(levels[-1]) if levels.size else "ok"
        opts = self.options
        recent = levels[-opts.escalate_window:]
        repeated = int(np.sum(recent == "action"))
        if latest_level == "action":
            return "action", "latest measurement beyond tolerance"
        if repeated >= opts.escalate_count:
            return "action", (f"{repeated} of the last {recent.size} measurements "
                              "beyond tolerance")
        if latest_level == "inspection":
            return "watch", "latest measurement beyond the inspection level"
        if drift.detected:
            return "watch", f"drift since {drift.onset}"
        if z is not None and z.size and abs(z[-1]) > 3:
            return "watch", ("latest measurement outside the control limits "
                             "(inspection level)")
        if self._latest_jump:
            return "watch", ("latest measurement jumped from the previous one "
                             "beyond the moving-range limit")
        return "ok", "within tolerance, no drift, no recent signal"

    # --- outputs --------------------------------------------------------------------

    def results_data(self) -> SeriesResult:
        """The typed result (call ``analyze()`` first)."""
        if self._result is None:
            raise RuntimeError("call analyze() before results_data()")
        return self._result

    def results(self) -> str:
        """A plain-text report of the analysis."""
        from agent.qa.presentation import result_text

        return result_text(self.results_data())

    def plot(self):
        """Interactive Plotly control chart (see :mod:`agent.qa.charts`)."""
        from agent.qa.charts import control_chart

        return control_chart(self.results_data())

    def save_png(self, path) -> None:
        """Static PNG control chart for reports."""
        from agent.qa.charts import control_chart_png

        control_chart_png(self.results_data(), path)


def _instability(z: np.ndarray) -> str:
    """Why a baseline is not stable, or "" (z: its points in its own sigmas).

    A point beyond 4 sigma, or two beyond 3 sigma: chance makes either rare in
    30 in-control points (about 0.2% and 0.3%), where a single point beyond 3
    sigma happens in 8% of stable baselines and is not enough to refuse one.
    """
    far = int(np.sum(np.abs(z) > 4))
    out = int(np.sum(np.abs(z) > 3))
    if far:
        return f"{far} point(s) beyond 4 sigma of its own limits"
    if out >= 2:
        return f"{out} points beyond its own control limits"
    return ""


def _pair(ci: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if ci is None else (rounded(ci[0], 3), rounded(ci[1], 3))


def _interval_reason(ci: spc.CapabilityInterval, opts: AnalysisOptions) -> str:
    if ci.cpk is None:
        return "too few baseline points for an interval"
    lo, hi = ci.cpk
    need = f"{opts.capability_required:g}"
    return {"capable": f"95% interval of Cpk {lo:.2f} to {hi:.2f}, above {need}",
            "not capable": f"95% interval of Cpk {lo:.2f} to {hi:.2f}, below {need}",
            }.get(ci.verdict, f"95% interval of Cpk {lo:.2f} to {hi:.2f} "
                              f"includes {need}: more baseline points needed")


def _limits_part(lim: spc.ImrLimits, ruleset: str) -> ControlLimits:
    return ControlLimits(center=rounded(lim.center), ucl=rounded(lim.ucl),
                         lcl=rounded(lim.lcl),
                         sigma=rounded(lim.sigma), mr_bar=rounded(lim.mr_bar),
                         mr_ucl=rounded(lim.mr_ucl), ruleset=ruleset)


_EXTRA_RULES = {
    "EWMA": "EWMA beyond its control limits",
    "CUSUM": "CUSUM beyond its decision interval",
    "MR": "moving range beyond its upper limit: a jump from the previous "
          "measurement",
}


def _rule_text(rule: str) -> str:
    for rules in spc.RULES.values():
        if rule in rules:
            return rules[rule]
    return _EXTRA_RULES.get(rule, rule)


__all__ = ["DRIFT_H", "DRIFT_K", "SeriesAnalysis", "SeriesResult", "iso"]
