"""A realistic two-year demo fleet with known, injected changes.

Three linacs matching ``knowledge/tolerances/machines.yaml``; daily output,
flatness, symmetry and energy per beam on working days (weekends off, a few
missing days), daily lasers and ODI, monthly mechanical tests, an output
recalibration with a baseline reset, and injected ramps, steps and outliers.
The truth (what was injected where, and what the drift verdict should say) is
written beside the data as JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MACHINES = {
    "TrueBeam1": ["6X", "10X", "6FFF", "6E", "9E", "12E"],
    "TrueBeam2": ["6X", "10X", "6FFF", "10FFF", "6E", "9E"],
    "Clinac3": ["6X", "15X", "6E", "9E", "12E", "16E"],
}
#: Day-to-day standard deviation per test (percent or mm or deg).
NOISE = {
    "output": 0.35,
    "flatness": 0.15,
    "symmetry_inplane": 0.15,
    "symmetry_crossplane": 0.15,
    "energy": 0.3,
    "laser": 0.3,
    "odi": 0.4,
    "jaw": 0.3,
    "light_radiation": 0.3,
    "crosshair": 0.2,
    "gantry_angle": 0.2,
    "collimator_angle": 0.2,
    "couch": 0.3,
}
DAILY_BEAM_TESTS = ["output", "flatness", "symmetry_inplane", "symmetry_crossplane",
                    "energy"]
ELECTRON_TESTS = ["output", "energy"]
DAILY_MECHANICAL = ["laser", "odi"]
MONTHLY_MECHANICAL = ["jaw", "light_radiation", "crosshair", "gantry_angle",
                      "collimator_angle", "couch"]
UNITS = {"laser": "mm", "odi": "mm", "jaw": "mm", "light_radiation": "mm",
         "crosshair": "mm", "couch": "mm", "gantry_angle": "deg",
         "collimator_angle": "deg"}
RECALIBRATION = "2025-03-03"


@dataclass
class Truth:
    """What was injected into one series and what the verdict should be."""

    machine: str
    test: str
    energy: str
    kind: str  # stable | ramp | step | outliers | ramp_then_reset
    drift: bool
    direction: int
    onset: str | None
    size: str


INJECTED = [
    # Output ramped up for a year, then was recalibrated (baseline reset):
    # the current segment is stable.
    Truth("TrueBeam1", "output", "6X", "ramp_then_reset", False, 0, None,
          "+0.006 %/day from 2024-03-01 until the 2025-03-03 recalibration"),
    Truth("TrueBeam2", "output", "10X", "step", True, 1, "2025-09-15",
          "+1.2 % step (3.4 sigma)"),
    Truth("TrueBeam2", "symmetry_crossplane", "6X", "ramp", True, 1, "2025-06-02",
          "+0.004 %/day (0.027 sigma/day)"),
    Truth("Clinac3", "energy", "15X", "step", True, -1, "2025-05-01",
          "-1.0 % step (3.3 sigma)"),
    Truth("TrueBeam1", "output", "6E", "ramp", True, -1, "2025-07-01",
          "-0.006 %/day (0.017 sigma/day)"),
    Truth("Clinac3", "laser", "", "outliers", False, 0, None,
          "three single-day 2.5 mm readings"),
]
OUTLIER_DATES = ["2024-05-14", "2024-11-05", "2025-08-19"]


def _working_days(start: str, end: str, rng: np.random.Generator) -> pd.DatetimeIndex:
    days = pd.bdate_range(start, end)
    keep = rng.random(days.size) > 0.03  # about 3% of working days missed
    return days[keep]


def make_demo_fleet(
    start: str = "2024-01-01",
    end: str = "2025-12-31",
    seed: int = 20241,
) -> tuple[pd.DataFrame, pd.DataFrame, list[Truth]]:
    """Generate the demo fleet.

    Returns
    -------
    (measurements, events, truth)
        Long-format measurements (the data contract), baseline-reset events and
        the truth for every series.
    """
    rng = np.random.default_rng(seed)
    rows: list[pd.DataFrame] = []
    truths: dict[tuple[str, str, str], Truth] = {}
    injected = {(t.machine, t.test, t.energy): t for t in INJECTED}
    for machine, energies in MACHINES.items():
        daily = _working_days(start, end, rng)
        monthly = pd.DatetimeIndex(
            [g.iloc[0] for _, g in pd.Series(daily).groupby(daily.to_period("M"))])
        plan = []
        for energy in energies:
            tests = ELECTRON_TESTS if energy.endswith("E") else DAILY_BEAM_TESTS
            plan += [(t, energy, daily) for t in tests]
        plan += [(t, "", daily) for t in DAILY_MECHANICAL]
        plan += [(t, "", monthly) for t in MONTHLY_MECHANICAL]
        for test, energy, dates in plan:
            noise = NOISE[test]
            values = rng.normal(0.0, noise, dates.size)
            # A small machine-specific offset from the baseline, as in practice.
            values += rng.normal(0.0, noise / 3)
            truth = injected.get((machine, test, energy))
            if truth is not None:
                values = _inject(truth, dates, values)
            digits = 2 if UNITS.get(test, "%") == "%" else 1
            rows.append(pd.DataFrame({
                "date": dates.strftime("%Y-%m-%d"),
                "machine": machine,
                "test": test,
                "energy": energy,
                "value": np.round(values, digits),
                "unit": UNITS.get(test, "%"),
            }))
            truths[(machine, test, energy)] = truth or Truth(
                machine, test, energy, "stable", False, 0, None, "none")
    measurements = pd.concat(rows, ignore_index=True)
    events = pd.DataFrame([{
        "date": RECALIBRATION, "machine": "TrueBeam1", "test": "output",
        "energy": "", "event": "baseline_reset",
    }])
    return measurements, events, list(truths.values())


def _inject(truth: Truth, dates: pd.DatetimeIndex, values: np.ndarray) -> np.ndarray:
    values = values.copy()
    days = (dates - dates[0]).days.to_numpy(dtype=float)
    if truth.kind == "ramp_then_reset":
        start = (pd.Timestamp("2024-03-01") - dates[0]).days
        stop = (pd.Timestamp(RECALIBRATION) - dates[0]).days
        active = (days >= start) & (days < stop)
        values[active] += 0.006 * (days[active] - start)
    elif truth.kind == "ramp":
        rate = 0.004 if truth.test == "symmetry_crossplane" else -0.006
        start = (pd.Timestamp(truth.onset) - dates[0]).days
        active = days >= start
        values[active] += rate * (days[active] - start)
    elif truth.kind == "step":
        size = 1.2 if truth.direction > 0 else -1.0
        values[dates >= pd.Timestamp(truth.onset)] += size
    elif truth.kind == "outliers":
        for day in OUTLIER_DATES:
            values[dates == pd.Timestamp(day)] = 2.5
    return values


def write_demo_fleet(directory: str | Path, seed: int = 20241) -> dict[str, Path]:
    """Write ``demo_fleet.csv`` (with the reset as an event row) and the truth.

    Returns
    -------
    dict
        Paths of the written files: ``data`` and ``truth``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    measurements, events, truth = make_demo_fleet(seed=seed)
    measurements["baseline"] = ""
    measurements["event"] = ""
    event_rows = events.assign(value="", unit="", baseline="")
    table = pd.concat([measurements, event_rows[measurements.columns]],
                      ignore_index=True)
    table = table.sort_values(["date", "machine"], kind="stable")
    data_path = directory / "demo_fleet.csv"
    table.to_csv(data_path, index=False)
    truth_path = directory / "demo_fleet_truth.json"
    truth_path.write_text(json.dumps({
        "generator": "agent.qa.demo.make_demo_fleet",
        "seed": seed,
        "recalibration_with_baseline_reset": {"machine": "TrueBeam1",
                                              "test": "output",
                                              "date": RECALIBRATION},
        "outlier_dates": {"Clinac3 laser": OUTLIER_DATES},
        "series": [asdict(t) for t in truth],
    }, indent=1), encoding="utf-8")
    return {"data": data_path, "truth": truth_path}
