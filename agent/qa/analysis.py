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

from dataclasses import asdict, dataclass, field

import numpy as np

from agent.qa import spc
from agent.qa.store import SeriesData
from agent.qa.tolerances import AppliedTolerance, ToleranceTables, frequency_of

#: Decision interval of the drift verdict's self-starting CUSUM (see module doc).
DRIFT_H = 9.0
DRIFT_K = 0.5
#: The verdict looks at the last this many measurements after the baseline, so
#: its false-alarm rate per series does not grow with the length of the record.
DRIFT_WINDOW = 250
#: Points used for the trend when no drift onset is known.
TREND_WINDOW = 120
SECONDS_PER_DAY = 86400.0
STATUS_RANK = {"action": 2, "watch": 1, "ok": 0}


def iso(value: np.datetime64 | None) -> str | None:
    """ISO text of a date: the date alone at midnight, else date and time."""
    if value is None:
        return None
    text = str(np.datetime64(value, "s"))
    return text[:10] if text.endswith("T00:00:00") else text


@dataclass
class Signal:
    """A control-chart signal: which rule, where, and what it means."""

    rule: str
    date: str
    value: float
    description: str


@dataclass
class DriftVerdict:
    """Whether the series drifts, since when, which way and how fast."""

    detected: bool
    direction: int
    onset: str | None
    signal_date: str | None
    slope_per_day: float | None
    slope_ci: tuple[float, float] | None
    trend_p_value: float | None
    projected_crossing: str | None
    projected_action_crossing: str | None
    method: str
    evidence: str


@dataclass
class SeriesResult:
    """Everything ``analyze()`` found for one series (``results_data()``)."""

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
    tolerance: dict | None
    out_of_tolerance: list[str]
    out_of_action: list[str]
    segment_start: str | None
    baseline: dict | None
    spc: dict | None
    signals: list[Signal]
    ewma: dict | None
    cusum: dict | None
    capability: dict | None
    tg218: dict | None
    drift: DriftVerdict
    notes: list[str] = field(default_factory=list)

    def to_contract(self, details: bool = False) -> dict:
        """The series entry of the ``analyze --json`` contract (DESIGN.md)."""
        tol = self.tolerance or {}
        entry = {
            "machine": self.machine,
            "test": self.test,
            "energy": self.energy,
            "n": self.n,
            "unit": self.unit,
            "status": self.status,
            "tolerance": {
                "limit": tol.get("limit"),
                "unit": tol.get("unit", self.unit),
                "source": tol.get("source"),
                "out_of_tolerance": self.out_of_tolerance,
            },
            "spc": {
                "center": (self.spc or {}).get("center"),
                "ucl": (self.spc or {}).get("ucl"),
                "lcl": (self.spc or {}).get("lcl"),
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

    def details(self) -> dict:
        """Everything beyond the contract: evidence for people and the agent."""
        return {
            "first_date": self.first_date,
            "last_date": self.last_date,
            "latest_value": self.latest_value,
            "latest_level": self.latest_level,
            "status_reason": self.status_reason,
            "tolerance_row": self.tolerance,
            "out_of_action": self.out_of_action,
            "segment_start": self.segment_start,
            "baseline": self.baseline,
            "spc": self.spc,
            "signals": [asdict(s) for s in self.signals],
            "ewma": self.ewma,
            "cusum": self.cusum,
            "capability": self.capability,
            "tg218": self.tg218,
            "drift": asdict(self.drift),
            "notes": self.notes,
        }

    @property
    def label(self) -> str:
        """"TrueBeam2 output 6X"."""
        return " ".join(p for p in (self.machine, self.test, self.energy) if p)


def _r(value: float | None, digits: int = 4) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def _episodes(mask: np.ndarray) -> np.ndarray:
    """Indices where a run of True values starts."""
    mask = np.asarray(mask, dtype=bool)
    return np.flatnonzero(mask & ~np.r_[False, mask[:-1]])


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
        self._result: SeriesResult | None = None
        self.segments: list[tuple[int, int]] = []
        self.limits: list[spc.ImrLimits | None] = []
        self.baseline_ranges: list[tuple[int, int]] = []
        self.applied: AppliedTolerance | None = None
        self._ewma: spc.EwmaResult | None = None
        self._cusum: spc.CusumResult | None = None

    # --- the analysis -----------------------------------------------------------

    def analyze(
        self,
        baseline_points: int = 30,
        baseline_start: str | None = None,
        baseline_end: str | None = None,
        ruleset: str = "nelson",
        min_baseline_points: int = 8,
        ewma_lambda: float = 0.2,
        ewma_L: float = 2.86,
        cusum_k: float = 0.5,
        cusum_h: float = 5.0,
    ) -> SeriesAnalysis:
        """Run the analysis.

        Parameters
        ----------
        baseline_points : int
            Baseline = the first N points of each segment (default 30).
        baseline_start, baseline_end : str, optional
            Baseline = the points in this date range instead (inclusive).
        ruleset : {"nelson", "western_electric", "both"}
            Run rules to evaluate.
        min_baseline_points : int
            Fewer points than this: no control limits, tolerance check only.
        ewma_lambda, ewma_L, cusum_k, cusum_h : float
            Chart parameters (FACTS.md defaults).
        """
        s = self.series
        dates, values = s.dates, np.asarray(s.values, dtype=float)
        n = values.size
        notes: list[str] = []
        days = dates.astype("datetime64[s]").astype(np.int64) / SECONDS_PER_DAY

        # Tolerance that applies (frequency inferred from the spacing of points).
        spacing = float(np.median(np.diff(days))) if n > 1 else 1.0
        frequency = frequency_of(spacing)
        self.applied = self.tables.applicable(s.machine, s.test, s.unit, s.energy,
                                              frequency)
        levels = (self.applied.levels(values) if self.applied
                  else np.full(n, "ok", dtype=object))
        if self.applied is None:
            notes.append(f"No tolerance row found for {s.test} in {s.unit}; "
                         "tolerance not checked.")
        elif self.applied.class_assumed:
            notes.append(f"{s.machine} is not in the machine registry; class "
                         f"{self.applied.machine_class} assumed.")
        if self.applied is not None and not self.applied.row.verified:
            notes.append("The tolerance row is unverified: check the original "
                         "report.")
        out_tol = self._beyond_tolerance(values)
        out_act = levels == "action"

        # Segments split at baseline resets.
        cuts = [0]
        for reset in s.resets:
            idx = int(np.searchsorted(dates, np.datetime64(reset, "s"), side="left"))
            if 0 < idx < n and idx not in cuts:
                cuts.append(idx)
        cuts = sorted(cuts)
        self.segments = list(zip(cuts, [*cuts[1:], n], strict=True))
        chosen = len(self.segments) - 1
        if baseline_start:
            start_t = np.datetime64(baseline_start, "s")
            for i, (a, b) in enumerate(self.segments):
                if a < b and dates[a] <= start_t <= dates[b - 1]:
                    chosen = i
                    break
                if dates[a] >= start_t:
                    chosen = i
                    break

        signals: list[Signal] = []
        self.limits, self.baseline_ranges = [], []
        z_current: np.ndarray | None = None
        for i, (a, b) in enumerate(self.segments):
            seg_vals = values[a:b]
            if baseline_start and i == chosen:
                lo = np.datetime64(baseline_start, "s")
                hi = (np.datetime64(baseline_end, "s") + np.timedelta64(1, "D")
                      if baseline_end else dates[b - 1] + np.timedelta64(1, "s"))
                in_range = np.flatnonzero((dates[a:b] >= lo) & (dates[a:b] < hi))
                base = (int(in_range[0]), int(in_range[-1]) + 1) if in_range.size \
                    else (0, 0)
            else:
                base = (0, min(baseline_points, b - a))
            self.baseline_ranges.append((a + base[0], a + base[1]))
            if base[1] - base[0] < max(min_baseline_points, 2):
                self.limits.append(None)
                continue
            lim = spc.imr_limits(seg_vals[base[0]:base[1]])
            self.limits.append(lim)
            if lim.sigma <= 0:
                continue
            z = (seg_vals - lim.center) / lim.sigma
            if i == chosen:
                z_current = z
            for rule, mask in spc.rule_masks(z, ruleset).items():
                text = spc.RULES.get(ruleset, {}).get(rule) or _rule_text(rule)
                for j in _episodes(mask):
                    signals.append(Signal(rule, iso(dates[a + j]),
                                          float(seg_vals[j]), text))

        a, b = self.segments[chosen]
        lim = self.limits[chosen]
        base_a, base_b = self.baseline_ranges[chosen]
        seg_dates, seg_vals = dates[a:b], values[a:b]
        if len(self.segments) > 1:
            notes.append(f"{len(self.segments) - 1} baseline reset(s); the current "
                         f"segment starts {iso(dates[a])}.")
        if lim is None:
            notes.append(
                f"Only {base_b - base_a} baseline points in the current segment "
                f"(at least {min_baseline_points} needed): no control limits yet; "
                "tolerance checked only.")

        spc_info = baseline_info = ewma_info = cusum_info = cap = tg218 = None
        if lim is not None:
            baseline_info = {
                "n": lim.n, "start": iso(dates[base_a]), "end": iso(dates[base_b - 1]),
                "method": ("date range" if baseline_start else
                           f"first {baseline_points} points of the segment"),
            }
            spc_info = {
                "center": _r(lim.center), "ucl": _r(lim.ucl), "lcl": _r(lim.lcl),
                "sigma": _r(lim.sigma), "mr_bar": _r(lim.mr_bar),
                "mr_ucl": _r(lim.mr_ucl), "ruleset": ruleset,
            }
            if lim.sigma > 0:
                self._ewma = spc.ewma(seg_vals, lim.center, lim.sigma, ewma_lambda,
                                      ewma_L)
                self._cusum = spc.cusum((seg_vals - lim.center) / lim.sigma,
                                        cusum_k, cusum_h)
                for name, result in (("EWMA", self._ewma), ("CUSUM", self._cusum)):
                    for j in _episodes(result.signal):
                        signals.append(Signal(name, iso(seg_dates[j]),
                                              float(seg_vals[j]), _rule_text(name)))
                first = lambda m: iso(seg_dates[m.argmax()]) if m.any() else None  # noqa: E731
                ewma_info = {"lambda": ewma_lambda, "L": ewma_L,
                             "first_signal": first(self._ewma.signal),
                             "latest": _r(self._ewma.z[-1])}
                cusum_info = {"k": cusum_k, "h": cusum_h,
                              "first_signal": first(self._cusum.signal),
                              "upper": _r(self._cusum.upper[-1]),
                              "lower": _r(self._cusum.lower[-1])}
            cap, tg218 = self._capability(lim)
        signals.sort(key=lambda sig: (sig.date, sig.rule))

        drift = self._drift(seg_dates, seg_vals, days[a:b], base_b - base_a
                            if lim is not None else 0)
        latest_level = str(levels[-1]) if n else "ok"
        status, reason = self._status(latest_level, drift, z_current)
        self._result = SeriesResult(
            machine=s.machine, test=s.test, energy=s.energy, unit=s.unit, n=int(n),
            first_date=iso(dates[0]) if n else None,
            last_date=iso(dates[-1]) if n else None,
            latest_value=_r(values[-1]) if n else None,
            latest_level=latest_level, status=status, status_reason=reason,
            tolerance=self.applied.as_dict() if self.applied else None,
            out_of_tolerance=[iso(d) for d in dates[out_tol]],
            out_of_action=[iso(d) for d in dates[out_act]],
            segment_start=iso(dates[a]) if n else None,
            baseline=baseline_info, spc=spc_info, signals=signals, ewma=ewma_info,
            cusum=cusum_info, capability=cap, tg218=tg218, drift=drift, notes=notes,
        )
        return self

    def _beyond_tolerance(self, values: np.ndarray) -> np.ndarray:
        if self.applied is None:
            return np.zeros(values.size, dtype=bool)
        row = self.applied.row
        if row.kind == "minimum":
            return values < self.applied.limit
        return np.abs(values - row.nominal) > self.applied.limit

    def _capability(self, lim: spc.ImrLimits):
        if self.applied is None or lim.sigma <= 0:
            return None, None
        row, limit = self.applied.row, self.applied.limit
        if row.kind == "minimum":
            target = 100.0 if row.unit == "%" else limit
            c = spc.capability(lim.center, lim.sigma, limit, None, target)
        else:
            target = row.nominal
            c = spc.capability(lim.center, lim.sigma, target - limit,
                               target + limit, target)
        low, high, width = spc.tg218_action_limits(lim.center, lim.sigma, target)
        cap = {"cp": _r(c.cp, 3), "cpk": _r(c.cpk, 3), "cpm": _r(c.cpm, 3),
               "lsl": c.lsl, "usl": c.usl, "target": target,
               "capable": bool(c.cpk is not None and c.cpk >= 1.0)}
        tg218 = {"lower_action_limit": _r(low), "upper_action_limit": _r(high),
                 "action_width": _r(width), "target": target, "beta": 6.0,
                 "lower_tolerance_limit_lcl": _r(lim.lcl)}
        return cap, tg218

    def _drift(self, dates, values, days, n_base: int) -> DriftVerdict:
        method = (f"self-starting CUSUM (k={DRIFT_K}, h={DRIFT_H}) over the last "
                  f"{DRIFT_WINDOW} measurements after the baseline of the current "
                  "segment")
        if n_base < 3 or values.size <= n_base:
            return DriftVerdict(False, 0, None, None, None, None, None, None, None,
                                method, "Not enough points after the baseline for "
                                "a drift verdict.")
        skipped = max(0, values.size - n_base - DRIFT_WINDOW)
        n_base += skipped  # indices below are relative to the window start
        scores = spc.self_starting_scores(values, n_base - skipped, first=n_base)
        cs = spc.cusum(np.nan_to_num(scores, nan=0.0), DRIFT_K, DRIFT_H)
        detected = bool(cs.signal.any())
        direction, onset_idx, signal_idx = 0, None, None
        if detected:
            j = int(cs.signal.argmax())
            up = cs.upper[j] > DRIFT_H
            direction = 1 if up else -1
            side = cs.upper if up else cs.lower
            zeros = np.flatnonzero(side[: j + 1] == 0)
            onset_idx = n_base + (int(zeros[-1]) + 1 if zeros.size else 0)
            signal_idx = n_base + j
        # Trend: since the onset when known, else over the recent points.
        lo = onset_idx if onset_idx is not None else max(0, values.size - TREND_WINDOW)
        if values.size - lo < 5:
            lo = max(0, values.size - 5)
        trend = spc.robust_trend(days[lo:], values[lo:])
        crossing = action_crossing = None
        significant = trend.p_value < 0.05
        if significant and self.applied is not None:
            crossing, action_crossing = self._crossings(trend, days[-1], values[-1])
        if detected:
            before = values[max(0, onset_idx - DRIFT_WINDOW):onset_idx].mean()
            evidence = (
                f"CUSUM signalled on {iso(dates[signal_idx])} "
                f"({'upward' if direction > 0 else 'downward'}); change estimated "
                f"to start {iso(dates[onset_idx])}. Mean before {before:.3g}, "
                f"since {values[onset_idx:].mean():.3g}.")
        else:
            evidence = (f"No sustained change: the CUSUM stayed below h={DRIFT_H} "
                        f"over the last {values.size - n_base} points.")
        evidence += (f" Theil-Sen slope {trend.slope_per_day:.4g} per day "
                     f"(95% CI {trend.slope_low:.3g} to {trend.slope_high:.3g}), "
                     f"Mann-Kendall p={trend.p_value:.3g} over {trend.n} points.")
        return DriftVerdict(
            detected=detected, direction=direction,
            onset=iso(dates[onset_idx]) if onset_idx is not None else None,
            signal_date=iso(dates[signal_idx]) if signal_idx is not None else None,
            slope_per_day=_r(trend.slope_per_day, 6),
            slope_ci=(_r(trend.slope_low, 6), _r(trend.slope_high, 6)),
            trend_p_value=_r(trend.p_value, 6), projected_crossing=crossing,
            projected_action_crossing=action_crossing, method=method,
            evidence=evidence,
        )

    def _crossings(self, trend: spc.Trend, last_day: float, last_value: float):
        applied = self.applied
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

    def _status(self, latest_level: str, drift: DriftVerdict, z: np.ndarray | None):
        """ok / watch / action from the latest level, the drift and the chart.

        Run rules other than a point beyond the limits are evidence only: with
        eight rules, one fires by chance on most stable series every few weeks.
        """
        if latest_level == "action":
            return "action", "latest measurement beyond tolerance"
        if latest_level == "inspection":
            return "watch", "latest measurement beyond the inspection level"
        if drift.detected:
            return "watch", f"drift since {drift.onset}"
        if z is not None and z.size and abs(z[-1]) > 3:
            return "watch", ("latest measurement outside the control limits "
                             "(inspection level)")
        return "ok", "within tolerance, no drift, no recent signal"

    # --- outputs --------------------------------------------------------------------

    def results_data(self) -> SeriesResult:
        """The typed result (call ``analyze()`` first)."""
        if self._result is None:
            raise RuntimeError("call analyze() before results_data()")
        return self._result

    def results(self) -> str:
        """A plain-text report of the analysis."""
        return format_result(self.results_data())

    def plot(self):
        """Interactive Plotly control chart (see :mod:`agent.qa.charts`)."""
        from agent.qa.charts import control_chart

        return control_chart(self)

    def save_png(self, path) -> None:
        """Static PNG control chart for reports."""
        from agent.qa.charts import control_chart_png

        control_chart_png(self, path)


_EXTRA_RULES = {
    "EWMA": "EWMA beyond its control limits",
    "CUSUM": "CUSUM beyond its decision interval",
}


def _rule_text(rule: str) -> str:
    for rules in spc.RULES.values():
        if rule in rules:
            return rules[rule]
    return _EXTRA_RULES.get(rule, rule)


def format_result(r: SeriesResult) -> str:
    """Human-readable text for one analysed series."""
    unit = r.unit
    lines = [f"{r.label}: {r.status.upper()} ({r.status_reason})",
             f"  {r.n} measurements {r.first_date} to {r.last_date}; latest "
             f"{r.latest_value:g} {unit}"]
    if r.tolerance:
        t = r.tolerance
        act = (f", action {t['action_limit']:g}" if t["action_limit"] is not None
               else "")
        lines.append(f"  Tolerance {t['limit']:g} {t['unit']}{act} ({t['source']}; "
                     f"{t['description']}, class {t['machine_class']})")
        lines.append(f"  Out of tolerance: {len(r.out_of_tolerance)} measurement(s)"
                     + (f", last {r.out_of_tolerance[-1]}" if r.out_of_tolerance
                        else ""))
    if r.spc:
        s = r.spc
        lines.append(f"  I-MR: centre {s['center']:.3g}, limits {s['lcl']:.3g} to "
                     f"{s['ucl']:.3g} (sigma {s['sigma']:.3g}; baseline "
                     f"{r.baseline['n']} points {r.baseline['start']} to "
                     f"{r.baseline['end']})")
    d = r.drift
    verdict = "DRIFT" if d.detected else "no drift"
    lines.append(f"  Drift verdict: {verdict}. {d.evidence}")
    if d.projected_crossing:
        lines.append(f"  Projected to reach the tolerance on {d.projected_crossing}")
    if r.signals:
        recent = r.signals[-5:]
        lines.append("  Signals (latest): " + "; ".join(
            f"{s.rule} {s.date}" for s in recent) + f" ({len(r.signals)} in all)")
    if r.capability and r.capability.get("cpk") is not None:
        c = r.capability
        lines.append(f"  Capability: Cp {c['cp']}, Cpk {c['cpk']}, Cpm {c['cpm']}")
    for note in r.notes:
        lines.append(f"  Note: {note}")
    return "\n".join(lines)


def sort_worst_first(results: list[SeriesResult]) -> list[SeriesResult]:
    """Order by status, then drift, then how close the latest value is to its limit."""

    def margin(r: SeriesResult) -> float:
        if not r.tolerance or r.latest_value is None or not r.tolerance["limit"]:
            return 0.0
        if r.tolerance["kind"] == "minimum":
            return (100.0 - r.latest_value) / max(100.0 - r.tolerance["limit"], 1e-9)
        return abs(r.latest_value) / r.tolerance["limit"]

    return sorted(results, key=lambda r: (-STATUS_RANK[r.status],
                                          not r.drift.detected, -margin(r),
                                          r.machine, r.test, r.energy))


__all__ = ["SeriesAnalysis", "SeriesResult",
           "format_result", "iso", "sort_worst_first"]
