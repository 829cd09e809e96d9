"""Every phrase that describes an analysis, written once.

The command line (:func:`result_text`, :func:`fleet_table`), the chat
(:func:`analysis_answer`, :func:`fleet_answer`, :func:`data_answer`), the Data
tab and the PDF report (:func:`number_rows`, :func:`verdict_paragraph`) all
word a :class:`~agent.qa.result.SeriesResult` with the functions below, so
"drifting up", the control limits of a short series and the tolerance
sentence read the same everywhere. No numbers are computed here: they come
from the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from agent.qa.comparison import Comparison, GroupSummary
from agent.qa.result import DriftVerdict, SeriesResult

#: The chat lists at most this many series of an analysis.
MAX_LISTED = 6
#: ... and at most this many out-of-tolerance dates per series.
MAX_DATES = 5
LEVEL_WORDS = {"ok": "within tolerance", "inspection": "inspection level",
               "action": "beyond tolerance"}


# --- names and numbers ------------------------------------------------------------


def spoken_name(r: SeriesResult | dict[str, Any]) -> str:
    """"TrueBeam2 10X output": the series as a physicist says it."""
    get = r.get if isinstance(r, dict) else lambda k: getattr(r, k)
    return " ".join(p for p in (get("machine"), get("energy"), get("test")) if p)


def number(value: float | None, digits: int = 3) -> str:
    """A number for a table: a few significant digits, or an en dash."""
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def quantity(value: float | None, unit: str) -> str:
    """A measured value with its unit ("0 %", never "-0 %")."""
    if value is None:
        return "–"
    return f"{value + 0.0:g} {unit}".strip()


def p_value_text(p: float | None) -> str:
    """"p = 0.03", "p < 0.001"."""
    if p is None:
        return "p not available"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def limit_text(r: SeriesResult) -> str:
    """"±3 %" for a deviation row, "≥ 95 %" for a minimum, "none" without a row."""
    t = r.tolerance
    if t is None:
        return "none"
    if t.kind == "minimum":
        return f"≥ {t.limit:g} {t.unit}".strip()
    return f"±{t.limit:g} {t.unit}".strip()


# --- the shared sentences ------------------------------------------------------------


def direction_word(drift: DriftVerdict, adverb: bool = False) -> str:
    """"up"/"down" (or "upward"/"downward"); "" without a direction."""
    words = ("upward", "downward") if adverb else ("up", "down")
    return {1: words[0], -1: words[1]}.get(drift.direction, "")


def drift_since(drift: DriftVerdict) -> str:
    """"up since 2025-09-15", or "no" when no drift was detected."""
    if not drift.detected:
        return "no"
    way = direction_word(drift)
    return f"{way} since {drift.onset}" if way else f"since {drift.onset}"


def drift_phrase(r: SeriesResult) -> str:
    """"Drift detected, upward since 2025-09-15. Trend 0.01 %/day." or
    "No drift detected."."""
    d = r.drift
    if not d.detected:
        return "No drift detected."
    parts = [f"Drift detected, {direction_word(d, adverb=True)} since {d.onset}."]
    slope = d.slope_per_day or 0.0
    if slope * d.direction > 0:
        parts.append(f"Trend {slope:g} {r.unit}/day.")
    else:
        # A step: the slope over the record does not follow it.
        parts.append(f"A shift rather than a steady trend (slope over the series "
                     f"{slope:g} {r.unit}/day).")
    if d.projected_crossing:
        parts.append(f"Projected to reach tolerance on {d.projected_crossing}.")
    return " ".join(parts)


def limits_phrase(r: SeriesResult) -> str:
    """The control limits, or why there are none yet (a short series)."""
    s = r.spc
    if s is None or s.lcl is None or s.ucl is None:
        return (f"Too few points for control limits ({r.baseline_available} of "
                f"{r.baseline_needed} needed); tolerance checked only.")
    return f"Control limits {s.lcl:g} to {s.ucl:g} {r.unit} (centre {s.center:g})."


def tolerance_phrase(r: SeriesResult, max_dates: int = MAX_DATES) -> str:
    """The tolerance and the dates beyond it, or that none applies."""
    t = r.tolerance
    if t is None:
        return f"No tolerance row for {r.test} in {r.unit}; tolerance not checked."
    out = r.out_of_tolerance
    if not out:
        beyond = "none out of tolerance."
    else:
        beyond = ("out of tolerance on " + ", ".join(out[:max_dates])
                  + (" and later dates." if len(out) > max_dates else "."))
    return f"Tolerance {t.limit:g} {t.unit} ({t.source}); {beyond}"


def status_phrase(r: SeriesResult) -> str:
    """"TrueBeam2 10X output (730 measurements): status watch (drift since ...)."

    The reason says which rule set the status (the latest value, 2 of the
    last 5 beyond tolerance, a drift, a control-limit signal).
    """
    return (f"{spoken_name(r)} ({r.n} measurements): status {r.status} "
            f"({r.status_reason}).")


def _interval(ci: tuple[float, float] | None) -> str:
    return f" (95% CI {number(ci[0])} to {number(ci[1])})" if ci else ""


def capability_phrase(r: SeriesResult) -> str:
    """"Cpk 1.4 (95% CI 1.0 to 1.8), Cp ..., Cpm ...: capable (...)"."""
    c = r.capability
    if c is None or c.cpk is None:
        return "no capability: no tolerance row or no spread in the baseline"
    parts = [f"Cpk {number(c.cpk)}{_interval(c.cpk_ci)}"]
    if c.cp is not None:
        parts.append(f"Cp {number(c.cp)}{_interval(c.cp_ci)}")
    if c.cpm is not None:
        parts.append(f"Cpm {number(c.cpm)}{_interval(c.cpm_ci)}")
    return ", ".join(parts) + f": {c.verdict}" + (f" ({c.reason})" if c.reason
                                                 else "")


def series_answer(r: SeriesResult) -> str:
    """One series in a few sentences: status, drift, limits, tolerance."""
    return " ".join((status_phrase(r), drift_phrase(r), limits_phrase(r),
                     tolerance_phrase(r)))


# --- the faces ----------------------------------------------------------------------


def analysis_answer(results: list[SeriesResult], ask: str = "verdict",
                    period: str | None = None) -> str:
    """The chat's answer to an analysis request (worst first, a few series).

    Parameters
    ----------
    results : list of SeriesResult
    ask : str
        What was asked (``agent.asks.Ask``): the verdict, the onset, the
        out-of-tolerance days, the projection, the control limits, the
        capability, the latest value or the count.
    period : str, optional
        The period in words ("the last 3 months"); the answer names it and
        the dates the data cover.
    """
    if not results:
        return "No series matched."
    write = ASK_ANSWERS.get(ask, _verdict_answer)
    lines = [write(r, period) for r in results[:MAX_LISTED]]
    if len(results) > MAX_LISTED:
        lines.append(f"... and {len(results) - MAX_LISTED} more series.")
    return "\n".join(lines)


def period_lead(r: SeriesResult, period: str | None = None) -> str:
    """"TrueBeam2 10X output, the last 3 months (2025-09-01 to 2025-11-30): 91
    measurements 2025-09-01 to 2025-11-29": what was analysed, in words and
    dates."""
    if period:
        return (f"{spoken_name(r)}, {period}: {r.n} measurements {r.first_date} "
                f"to {r.last_date}")
    return f"{spoken_name(r)} ({r.first_date} to {r.last_date}, {r.n} measurements)"


def _verdict_answer(r: SeriesResult, period: str | None) -> str:
    if not period:
        return series_answer(r)
    return " ".join((f"{period_lead(r, period)}: status {r.status} "
                     f"({r.status_reason}).", drift_phrase(r), limits_phrase(r),
                     tolerance_phrase(r)))


def onset_answer(r: SeriesResult, period: str | None = None) -> str:
    """When the change began: the CUSUM onset, the first signal, the shift."""
    d = r.drift
    if not d.detected:
        return (f"{period_lead(r, period)}: no sustained change, so no onset to "
                f"give. {d.evidence}")
    shift = (f"; {d.shift:+g} {r.unit} since (mean {d.mean_before:g} before, "
             f"{d.mean_since:g} since)" if d.shift is not None else "")
    return (f"{period_lead(r, period)}: the shift began around {d.onset} (CUSUM "
            f"onset); first signal {d.signal_date}{shift}.")


def out_of_tolerance_answer(r: SeriesResult, period: str | None = None) -> str:
    """The measurements beyond tolerance, with their values."""
    lead = period_lead(r, period)
    t = r.tolerance
    if t is None:
        return f"{lead}: {tolerance_phrase(r)}"
    days = list(zip(r.out_of_tolerance, r.out_of_tolerance_values, strict=False))
    if not days:
        return (f"{lead}: none out of tolerance ({limit_text(r)}, {t.source}).")
    listed = ", ".join(f"{day} ({quantity(v, r.unit)})" for day, v in days[:12])
    more = f" and {len(days) - 12} more" if len(days) > 12 else ""
    return (f"{lead}: {len(days)} of {r.n} out of tolerance ({limit_text(r)}, "
            f"{t.source}): {listed}{more}.")


def projection_phrase(r: SeriesResult) -> str:
    """When the trend reaches tolerance, or why there is no projection."""
    d, t = r.drift, r.tolerance
    if t is None:
        return "No projection: no tolerance row applies."
    if r.latest_level != "ok":
        return (f"No projection: the latest value ({quantity(r.latest_value, r.unit)}"
                f" on {r.last_date}) is already {LEVEL_WORDS[r.latest_level]}.")
    if d.slope_per_day is None or d.trend_p_value is None \
            or d.trend_p_value >= 0.05:
        return (f"No projection: the trend is not significant (Mann-Kendall "
                f"{p_value_text(d.trend_p_value)}).")
    if not d.projected_crossing:
        return (f"No projection: the trend ({d.slope_per_day:g} {r.unit}/day) "
                "does not approach the tolerance.")
    bands = t.bands()
    level = bands["tol_high"] if d.slope_per_day > 0 else bands["tol_low"]
    text = (f"At {d.slope_per_day:g} {r.unit}/day it reaches {quantity(level, r.unit)}"
            f" (tolerance) around {d.projected_crossing}")
    if d.projected_action_crossing:
        text += f" and the action level around {d.projected_action_crossing}"
    text += "."
    if r.out_of_tolerance:
        text += (f" Earlier, {len(r.out_of_tolerance)} measurement(s) were out of "
                 f"tolerance (latest {r.out_of_tolerance[-1]}).")
    return text


def projection_answer(r: SeriesResult, period: str | None = None) -> str:
    """The projection to tolerance, with the period it rests on."""
    return f"{period_lead(r, period)}: {projection_phrase(r)}"


def limits_answer(r: SeriesResult, period: str | None = None) -> str:
    """The control limits and the baseline they come from."""
    base = (f" Baseline: {r.baseline.n} points {r.baseline.start} to "
            f"{r.baseline.end} ({r.baseline.method})." if r.baseline else "")
    return f"{period_lead(r, period)}: {limits_phrase(r)}{base}"


def capability_answer(r: SeriesResult, period: str | None = None) -> str:
    """The capability against the tolerance."""
    return f"{period_lead(r, period)}: {capability_phrase(r)}."


def latest_answer(r: SeriesResult, period: str | None = None) -> str:
    """The latest value, its date and level."""
    return (f"{period_lead(r, period)}: latest {quantity(r.latest_value, r.unit)} "
            f"on {r.last_date} ({LEVEL_WORDS.get(r.latest_level, r.latest_level)}).")


def count_answer(r: SeriesResult, period: str | None = None) -> str:
    """How many measurements, over which dates."""
    return (f"{spoken_name(r)}{' ' + period if period else ''}: {r.n} "
            f"measurements, {r.first_date} to {r.last_date}.")


#: What was asked -> the answer that says it (verdict: :func:`_verdict_answer`).
ASK_ANSWERS = {"verdict": _verdict_answer, "onset": onset_answer,
               "out_of_tolerance": out_of_tolerance_answer,
               "projection": projection_answer, "limits": limits_answer,
               "capability": capability_answer, "latest": latest_answer,
               "count": count_answer}


def comparison_answer(c: Comparison) -> str:
    """Two groups side by side (a table) and the difference of their means."""
    a, b = c.groups

    def limits(g: GroupSummary) -> str:
        return (f"{g.lcl:g} to {g.ucl:g}" if g.lcl is not None and g.ucl is not None
                else "too few points")

    def verdict(g: GroupSummary) -> str:
        way = {1: "drift up", -1: "drift down"}.get(g.direction, "drift")
        return f"{g.status}, {way if g.drift_detected else 'no drift'}"

    rows = [("data", spoken_name(a.model_dump()), spoken_name(b.model_dump())),
            ("period", f"{a.start} to {a.end}", f"{b.start} to {b.end}"),
            ("n", str(a.n), str(b.n)),
            (f"mean ({c.unit})", quantity(a.mean, ""), quantity(b.mean, "")),
            (f"SD ({c.unit})", quantity(a.sd, ""), quantity(b.sd, "")),
            ("control limits", limits(a), limits(b)),
            ("verdict", verdict(a), verdict(b))]
    table = "\n".join([f"| | {a.label} | {b.label} |", "|---|---|---|",
                       *(f"| {k} | {x} | {y} |" for k, x, y in rows)])
    if c.difference is None:
        diff = "No difference: a group has no measurements."
    elif c.ci_low is None:
        diff = (f"Difference (second minus first): {c.difference:+g} {c.unit}; "
                "too few points or no spread for a confidence interval.")
    else:
        diff = (f"Difference (second minus first): {c.difference:+g} {c.unit} "
                f"(95% CI {c.ci_low:g} to {c.ci_high:g}, Welch "
                f"{p_value_text(c.p_value)}).")
    return f"{table}\n\n{diff}"


def result_text(r: SeriesResult) -> str:
    """The command line's text for one analysed series (``analyze``)."""
    lines = [f"{r.label}: {r.status.upper()} ({r.status_reason})",
             f"  {r.n} measurements {r.first_date} to {r.last_date}; latest "
             f"{quantity(r.latest_value, r.unit)}",
             f"  {drift_phrase(r)}", f"  {limits_phrase(r)}",
             f"  {tolerance_phrase(r)}"]
    if r.tolerance:
        t = r.tolerance
        act = f", action {t.action_limit:g}" if t.action_limit is not None else ""
        lines.append(f"  Tolerance row {t.id}{act} ({t.description}, class "
                     f"{t.machine_class}); {len(r.out_of_tolerance)} measurement(s) "
                     "out of tolerance")
    if r.spc and r.baseline:
        lines.append(f"  I-MR sigma {r.spc.sigma:.3g}; baseline {r.baseline.n} "
                     f"points {r.baseline.start} to {r.baseline.end}")
    verdict = "DRIFT" if r.drift.detected else "no drift"
    lines.append(f"  Drift verdict: {verdict}. {r.drift.evidence}")
    if r.signals:
        recent = r.signals[-5:]
        lines.append("  Signals (latest): " + "; ".join(
            f"{s.rule} {s.date}" for s in recent) + f" ({len(r.signals)} in all)")
    if r.capability and r.capability.cpk is not None:
        lines.append(f"  Capability: {capability_phrase(r)}")
    lines.extend(f"  Note: {note}" for note in r.notes)
    return "\n".join(lines)


def fleet_line(r: SeriesResult) -> str:
    """"- TrueBeam2 10X output: watch, drifting up since 2025-09-15"."""
    trend = f", drifting {drift_since(r.drift)}" if r.drift.detected else ""
    return f"- {spoken_name(r)}: {r.status}{trend}"


def fleet_answer(results: list[SeriesResult], total: int,
                 by_status: dict[str, int], listed: int = 5) -> str:
    """The chat's answer to "which machines need attention?"."""
    lines = [f"{total} series analysed: " + ", ".join(
        f"{n} {s}" for s, n in sorted(by_status.items())) + "."]
    lines.extend(fleet_line(r) for r in results[:listed])
    return "\n".join(lines)


def fleet_table(results: list[SeriesResult]) -> str:
    """A fixed-width table of the fleet for the terminal (``qa-agent fleet``)."""
    header = (f"{'status':7} {'machine':12} {'test':20} {'energy':6} {'n':>5} "
              f"{'latest':>8} {'limit':>6} {'drift':>6} {'onset':10}  reason")
    lines = [header, "-" * len(header)]
    for r in results:
        limit = r.tolerance.limit if r.tolerance else None
        drift = direction_word(r.drift) or "-"
        lines.append(
            f"{r.status:7} {r.machine[:12]:12} {r.test[:20]:20} {r.energy:6} "
            f"{r.n:>5} {r.latest_value if r.latest_value is not None else '':>8} "
            f"{limit if limit is not None else '-':>6} {drift:>6} "
            f"{r.drift.onset or '':10}  {r.status_reason}")
    counts = status_counts(results)
    lines.append(f"\n{len(results)} series: {counts['action']} action, "
                 f"{counts['watch']} watch, {counts['ok']} ok")
    return "\n".join(lines)


def status_counts(results: Iterable[SeriesResult]) -> dict[str, int]:
    """Series per status: action, watch, ok (zeros included)."""
    counts = {"action": 0, "watch": 0, "ok": 0}
    for r in results:
        counts[r.status] += 1
    return counts


def data_answer(machines: list[dict[str, Any]]) -> str:
    """The chat's answer to "what data do we have?" (from ``list_data``)."""
    if not machines:
        return "No QA measurements are on hand."
    return "\n".join(
        f"- {m['machine']}: {len(m['series'])} series, "
        f"{min(x['first'] for x in m['series'])} to "
        f"{max(x['last'] for x in m['series'])}" for m in machines)


def image_answer(text: str, metric: str, value: float, unit: str,
                 beyond: bool | None, r: SeriesResult | None) -> str:
    """The chat's answer to an analysed image set: pylinac's results, the set's
    main metric (named ``metric``) against its tolerance (``beyond`` None: no
    row), its series."""
    verdict = "no tolerance row; not checked"
    if beyond is not None and r is not None and r.tolerance is not None:
        verdict = (f"{LEVEL_WORDS['action' if beyond else 'ok']} ({limit_text(r)}, "
                   f"{r.tolerance.source})")
    lines = [text, f"**{metric[:1].upper()}{metric[1:]}: {number(value)} {unit}, "
                   f"{verdict}.**"]
    return "\n\n".join(lines + ([series_answer(r)] if r is not None else []))


def chart_title(r: SeriesResult) -> str:
    """"TrueBeam2 output 10X, 2025-09-01 to 2025-11-28: WATCH, drift since
    2025-09-15" (the dates the chart covers)."""
    title = f"{r.label}, {r.first_date} to {r.last_date}: {r.status.upper()}"
    if r.drift.detected:
        title += f", drift since {r.drift.onset}"
    return title


def verdict_paragraph(r: SeriesResult) -> str:
    """The PDF's verdict: the status and the chat's sentences."""
    return (f"Verdict: {r.status.upper()} ({r.status_reason}). {drift_phrase(r)} "
            f"{limits_phrase(r)} {tolerance_phrase(r)}")


def number_rows(r: SeriesResult) -> list[tuple[str, str]]:
    """The PDF's table of numbers for one series (label, value)."""
    unit = r.unit
    level = LEVEL_WORDS.get(r.latest_level, r.latest_level)
    last = (f"{quantity(r.latest_value, unit)} on {r.last_date} ({level})"
            if r.latest_value is not None else "–")
    rows = [("Measurements", f"{r.n}, {r.first_date} to {r.last_date}"),
            ("Last value", last)]
    s, b = r.spc, r.baseline
    if s and b:
        rows += [
            ("Centre line", f"{number(s.center, 4)} {unit}"),
            ("Control limits", f"{number(s.lcl, 4)} to {number(s.ucl, 4)} {unit} "
                               f"(sigma {number(s.sigma)})"),
            ("Baseline", f"{b.n} points, {b.start} to {b.end}"),
        ]
    else:
        rows.append(("Control limits", f"none: too few points ({r.baseline_available}"
                                       f" of {r.baseline_needed} needed)"))
    cap = r.capability
    if cap and cap.cpk is not None:
        rows.append(("Capability", capability_phrase(r)))
    rows.append(("Out of tolerance", f"{len(r.out_of_tolerance)} measurement(s)"
                 + (f", last {r.out_of_tolerance[-1]}" if r.out_of_tolerance
                    else "")))
    rows.append(("Drift", "no" if not r.drift.detected
                 else f"yes, {drift_since(r.drift)}"))
    rows.extend(_trend_rows(r))
    rows.append(("Signals", f"{len(r.signals)}" + (
        f", latest {r.signals[-1].date} ({r.signals[-1].rule})"
        if r.signals else "")))
    return rows


def _trend_rows(r: SeriesResult) -> list[tuple[str, str]]:
    d = r.drift
    rows = []
    if d.slope_per_day is not None:
        ci = (f" (95% CI {number(d.slope_ci[0])} to {number(d.slope_ci[1])})"
              if d.slope_ci else "")
        rows.append(("Trend", f"{number(d.slope_per_day)} {r.unit}/day{ci}, "
                              f"{p_value_text(d.trend_p_value)}"))
    if d.projected_crossing or d.projected_action_crossing:
        text = f"tolerance {d.projected_crossing or '–'}"
        if d.projected_action_crossing:
            text += f", action {d.projected_action_crossing}"
        rows.append(("Projected crossing", text))
    return rows


__all__ = ["analysis_answer", "capability_phrase", "chart_title", "data_answer",
           "direction_word",
           "drift_phrase", "drift_since", "fleet_answer", "fleet_line",
           "fleet_table", "image_answer", "limit_text", "limits_phrase", "number",
           "number_rows", "p_value_text", "quantity", "result_text", "series_answer",
           "spoken_name", "status_counts", "status_phrase", "tolerance_phrase",
           "verdict_paragraph"]
