"""Drift verdict by simulation: false alarms, detection delay, direction, onset.

Uses the real :class:`agent.qa.analysis.SeriesAnalysis` (default options:
30-point baseline, self-starting CUSUM k = 0.5, h = 9) on synthetic daily
series (machine 'SimLinac', test 'output', energy '6X', unit '%', noise
sd 0.3 %, in-control mean 0):

a. stable series: the fraction with ``results_data().drift.detected`` (the
   false-alarm rate per series), with a 95 % Wilson interval;
b. a change starting at point ``--change`` (default 150 of 250): a 1 sigma
   step, a 2 sigma step and a 0.05 sigma/day ramp, each with a random sign.
   The delay is counted in measurements from the change to
   ``results_data().drift.signal_date``, the changed point itself counting
   as 1 (delay 1 = the first changed measurement signalled). Runs whose
   first signal came before the change are counted apart (false alarm first)
   and left out of the delay statistics; runs without a signal by the end
   are "not detected";
c. for runs detected after the change: the fraction whose direction is right,
   and the error of the onset estimate (|onset - change| in measurements);
d. the same with contamination: 1 % and 3 % of the points (anywhere, the
   baseline included) replaced by outliers 6 to 12 sigma from the series'
   value at that point, with a random sign (setup errors, one-off bad
   readings): stable series (false verdicts) and every change.

Run from the repository root::

    .venv/bin/python bench/drift_simulation.py
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from provenance import code_version  # bench/ is on sys.path when run

from agent.qa.analysis import DRIFT_H, DRIFT_K, SeriesAnalysis
from agent.qa.options import AnalysisOptions
from agent.qa.series import SeriesData
from agent.qa.tolerances import ToleranceTables

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE_DIR = ROOT / "knowledge" / "tolerances"
DEFAULT_OUT = ROOT / "bench" / "results" / "drift.json"
SD = 0.3
START = np.datetime64("2024-01-01", "D")


@dataclass(frozen=True)
class Scenario:
    """A change injected at ``change``: a step of ``step`` sigma or a ramp."""

    name: str
    step: float = 0.0  # sigma
    ramp: float = 0.0  # sigma per measurement (per day)


SCENARIOS = (
    Scenario("step_1sigma", step=1.0),
    Scenario("step_2sigma", step=2.0),
    Scenario("ramp_0.05sigma_per_day", ramp=0.05),
)


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def make_series(values: np.ndarray) -> SeriesData:
    """Daily SeriesData for SimLinac output 6X in %."""
    dates = (START + np.arange(values.size)).astype("datetime64[s]")
    return SeriesData(machine="SimLinac", test="output", energy="6X", unit="%",
                      dates=dates, values=values)


def index_of(date: str | None) -> int | None:
    """Position of an ISO date in the daily series (None stays None)."""
    if date is None:
        return None
    return int((np.datetime64(date[:10], "D") - START).astype(int))


def verdict(values: np.ndarray, tables: ToleranceTables,
            **changes: Any) -> tuple[bool, int, int | None, int | None]:
    """(detected, direction, signal index, onset index) of the real analysis."""
    drift = SeriesAnalysis(make_series(values), tables).analyze(**changes) \
        .results_data().drift
    return (drift.detected, drift.direction, index_of(drift.signal_date),
            index_of(drift.onset))


def stats_of(values: list[int]) -> dict[str, float | None]:
    """Median, mean, p90 (and min/max) of a list of integers."""
    if not values:
        return {"median": None, "mean": None, "p90": None, "min": None,
                "max": None}
    arr = np.asarray(values, dtype=float)
    return {"median": float(np.median(arr)), "mean": float(arr.mean()),
            "p90": float(np.percentile(arr, 90)), "min": float(arr.min()),
            "max": float(arr.max())}


#: Outlier fractions of the contaminated cases, and the outliers' size.
CONTAMINATION = (0.01, 0.03)
OUTLIER_SIGMA = (6.0, 12.0)


def contaminate(rng: np.random.Generator, values: np.ndarray,
                fraction: float) -> np.ndarray:
    """``fraction`` of the points replaced by 6-12 sigma outliers, random sign."""
    if fraction <= 0:
        return values
    out = values.copy()
    count = max(1, round(fraction * values.size))
    where = rng.choice(values.size, size=count, replace=False)
    size = rng.uniform(*OUTLIER_SIGMA, size=count) * SD
    out[where] += np.where(rng.random(count) < 0.5, -1.0, 1.0) * size
    return out


def run_stable(rng: np.random.Generator, runs: int, length: int,
               tables: ToleranceTables, fraction: float = 0.0) -> dict[str, Any]:
    """False-alarm rate of the drift verdict on in-control series."""
    t0 = time.perf_counter()
    alarms = 0
    signal_at: list[int] = []
    for _ in range(runs):
        values = contaminate(rng, rng.normal(0.0, SD, length), fraction)
        detected, _d, signal, _o = verdict(values, tables)
        if detected:
            alarms += 1
            signal_at.append(int(signal))
    low, high = wilson(alarms, runs)
    return {
        "contamination": fraction,
        "runs": runs, "length": length, "false_verdicts": alarms,
        "rate": alarms / runs, "wilson95": [low, high],
        "signal_index_of_false_verdicts": signal_at,
        "seconds": time.perf_counter() - t0,
    }


def run_spike(rng: np.random.Generator, runs: int, length: int,
              tables: ToleranceTables) -> dict[str, Any]:
    """One +10 sigma reading at a random point after the baseline of a stable
    series: drift verdicts of the robust verdict and of the plain CUSUM."""
    t0 = time.perf_counter()
    robust = plain = 0
    for _ in range(runs):
        values = rng.normal(0.0, SD, length)
        values[rng.integers(31, length)] += 10.0 * SD
        robust += verdict(values, tables)[0]
        plain += verdict(values, tables, drift_clip=0)[0]
    return {"runs": runs, "spike_sigma": 10.0, "robust_false_verdicts": robust,
            "robust_rate": robust / runs,
            "robust_wilson95": list(wilson(robust, runs)),
            "plain_false_verdicts": plain, "plain_rate": plain / runs,
            "seconds": time.perf_counter() - t0}


def run_change(rng: np.random.Generator, scenario: Scenario, runs: int,
               length: int, change: int, tables: ToleranceTables,
               fraction: float = 0.0) -> dict[str, Any]:
    """Detection delay, direction and onset error for one kind of change."""
    t0 = time.perf_counter()
    ramp = np.clip(np.arange(length) - change + 1, 0, None).astype(float)
    shape = np.where(np.arange(length) >= change, scenario.step, 0.0) \
        + scenario.ramp * ramp
    delays: list[int] = []
    onset_errors: list[int] = []
    early = missed = right = 0
    for _ in range(runs):
        sign = 1 if rng.random() < 0.5 else -1
        values = contaminate(rng, rng.normal(0.0, SD, length)
                             + sign * SD * shape, fraction)
        detected, direction, signal, onset = verdict(values, tables)
        if not detected:
            missed += 1
            continue
        if signal < change:
            early += 1
            continue
        delays.append(signal - change + 1)
        right += direction == sign
        onset_errors.append(abs(int(onset) - change))
    detected_after = len(delays)
    return {
        "scenario": scenario.name, "contamination": fraction,
        "step_sigma": scenario.step,
        "ramp_sigma_per_day": scenario.ramp, "runs": runs, "length": length,
        "change_at": change,
        "detected_after_change": detected_after,
        "fraction_detected_after_change": detected_after / runs,
        "fraction_signal_before_change": early / runs,
        "fraction_not_detected": missed / runs,
        "not_detected_wilson95": list(wilson(missed, runs)),
        "delay_measurements": stats_of(delays),
        "delay_index_difference": stats_of([d - 1 for d in delays]),
        "fraction_delay_within_10": (sum(d <= 10 for d in delays) / detected_after
                                     if detected_after else None),
        "direction_right_fraction": right / detected_after if detected_after
        else None,
        "onset_abs_error_measurements": stats_of(onset_errors),
        "seconds": time.perf_counter() - t0,
    }


def summary(result: dict[str, Any]) -> str:
    """A short text summary for people."""
    code = result["environment"]["code"]
    dirty = code["uncommitted_library_changes"]
    lines = [
        f"Code: commit {code['commit']}"
        + (f" with uncommitted changes ({', '.join(dirty)})" if dirty else "")
        + f"; agent/qa sha256 {code['agent_qa_sha256']}",
        f"Drift verdict (self-starting CUSUM k={DRIFT_K}, h={DRIFT_H}, scores "
        f"winsorised at {result['config']['drift_clip']}), "
        f"{result['config']['runs']} runs per case, "
        f"{result['config']['length']} points, sd {SD}:",
    ]
    for s in [result["stable"], *result["stable_contaminated"]]:
        lo, hi = s["wilson95"]
        aim = ("met (whole interval below 2 %)" if hi < 0.02 else
               "met by the estimate, not by the whole interval"
               if s["rate"] < 0.02 else "NOT met")
        lines.append(
            f"a. stable, {100 * s['contamination']:.0f} % outliers: "
            f"{s['false_verdicts']}/{s['runs']} false verdicts = "
            f"{100 * s['rate']:.2f} % (95 % Wilson {100 * lo:.2f} to "
            f"{100 * hi:.2f} %); aim < 2 %: {aim}")
    sp = result["spike"]
    lines.append(
        f"a. one +10 sigma reading: drift verdicts {sp['robust_false_verdicts']}"
        f"/{sp['runs']} = {100 * sp['robust_rate']:.2f} % (plain self-starting "
        f"CUSUM: {sp['plain_false_verdicts']}/{sp['runs']} = "
        f"{100 * sp['plain_rate']:.2f} %)")
    for c in result["changes"]:
        d, o = c["delay_measurements"], c["onset_abs_error_measurements"]
        fmt = (lambda v: "-" if v is None else f"{v:.1f}")  # noqa: E731
        lines.append(
            f"b. {c['scenario']:24} {100 * c['contamination']:.0f} % outliers: "
            f"delay median {fmt(d['median'])}, mean "
            f"{fmt(d['mean'])}, p90 {fmt(d['p90'])}; not detected "
            f"{100 * c['fraction_not_detected']:.1f} %, signal before change "
            f"{100 * c['fraction_signal_before_change']:.1f} %; direction right "
            f"{100 * (c['direction_right_fraction'] or 0):.1f} %; onset error "
            f"median {fmt(o['median'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000,
                        help="simulated series per case (default 2000)")
    parser.add_argument("--length", type=int, default=250)
    parser.add_argument("--change", type=int, default=150,
                        help="index of the first changed point (default 150)")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not 30 < args.change < args.length:
        parser.error("--change must lie after the 30-point baseline and before "
                     "--length")

    tables = ToleranceTables.load(TOLERANCE_DIR)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    print("a. stable series ...", file=sys.stderr, flush=True)
    result: dict[str, Any] = {
        "config": {"runs": args.runs, "length": args.length, "change": args.change,
                   "seed": args.seed, "sd": SD, "drift_k": DRIFT_K,
                   "drift_h": DRIFT_H, "drift_clip": AnalysisOptions().drift_clip,
                   "contamination": list(CONTAMINATION),
                   "outlier_sigma": list(OUTLIER_SIGMA),
                   "series": "SimLinac output 6X, %, daily",
                   "delay_convention": "delay_measurements = signal index - "
                   "change index + 1 (the changed point counts as 1); "
                   "delay_index_difference = signal index - change index"},
        "environment": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "numpy": np.__version__,
            "platform": platform.platform(), "code": code_version(),
        },
        "stable": run_stable(rng, args.runs, args.length, tables),
        "stable_contaminated": [],
        "changes": [],
    }
    for fraction in CONTAMINATION:
        print(f"a. stable series, {fraction:.0%} outliers ...", file=sys.stderr,
              flush=True)
        result["stable_contaminated"].append(
            run_stable(rng, args.runs, args.length, tables, fraction))
    print("a. one spike ...", file=sys.stderr, flush=True)
    result["spike"] = run_spike(rng, args.runs, args.length, tables)
    for fraction in (0.0, *CONTAMINATION):
        for scenario in SCENARIOS:
            print(f"b. {scenario.name}, {fraction:.0%} outliers ...",
                  file=sys.stderr, flush=True)
            result["changes"].append(run_change(
                rng, scenario, args.runs, args.length, args.change, tables,
                fraction))
    result["seconds_total"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result))
    print(f"total {result['seconds_total']:.0f} s; written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
