"""Choosing series to analyse, by forgiving names, from a file or the store.

Shared by the command line, the agent's tools and the UI, so a request means
the same series everywhere. No LLM here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agent.config import Settings
from agent.qa.importers import RowError, read_measurements
from agent.qa.names import TESTS, canonical_energy, canonical_machine, canonical_test
from agent.qa.store import MeasurementStore, SeriesData, series_from_frame
from agent.qa.tolerances import ToleranceTables


class SelectionError(ValueError):
    """A request names something that is not on hand; the message lists what is."""


def load_tables(settings: Settings) -> ToleranceTables:
    """Tolerance tables with the data directory's overrides."""
    return ToleranceTables.load(settings.tolerance_dir, [settings.data_dir],
                                settings.default_machine_class)


def select_series(
    settings: Settings,
    data: Path | None,
    machine: str | None,
    test: str | None,
    energy: str | None,
    start: str | None,
    end: str | None,
) -> tuple[list[SeriesData], list[RowError]]:
    """Series from a file or the store, filtered with forgiving names.

    Raises
    ------
    SelectionError
        When a name is not recognised or nothing matches; the message lists
        what is on hand.
    """
    errors: list[RowError] = []
    if data is not None:
        result = read_measurements(data)
        errors = result.errors
        series = series_from_frame(result.frame, result.events)
    else:
        store = MeasurementStore(settings.resolved_database_url)
        series = store.load_series(start=start, end=end)
        start = end = None
    if not series:
        raise SelectionError("no measurements on hand: import a file with "
                           "'qa-agent import FILE' or pass --data FILE")
    machines = sorted({s.machine for s in series})
    want_test = want_energy = want_machine = None
    if test:
        want_test = canonical_test(test)
        if want_test is None:
            raise SelectionError(f"test '{test}' not recognised; known tests: "
                               + ", ".join(TESTS))
    if energy:
        want_energy = canonical_energy(energy)
        if not want_energy:
            raise SelectionError(f"energy '{energy}' not recognised; write e.g. 6X, "
                               "10FFF, 9E or '6 MV'")
    if machine:
        want_machine = canonical_machine(machine, machines)
    chosen = [
        s for s in series
        if (want_machine is None or s.machine == want_machine)
        and (want_test is None or s.test == want_test)
        and (want_energy is None or s.energy == want_energy)
    ]
    if start or end:
        chosen = [clip_series(s, start, end) for s in chosen]
        chosen = [s for s in chosen if s.values.size]
    if not chosen:
        asked = ", ".join(f"{k}={v}" for k, v in (
            ("machine", machine), ("test", test), ("energy", energy),
            ("start", start), ("end", end)) if v)
        raise SelectionError(f"no series matches {asked}; machines on hand: "
                           f"{', '.join(machines)}; tests: "
                           f"{', '.join(sorted({s.test for s in series}))}")
    return chosen, errors


def check_dates(**dates: str | None) -> None:
    """Reject malformed date options before any work, naming the option."""
    for option, value in dates.items():
        if value is None:
            continue
        try:
            pd.Timestamp(value)
        except ValueError:
            raise SelectionError(
                f"--{option.replace('_', '-')} '{value}' is not a date; "
                "write YYYY-MM-DD") from None


def clip_series(s: SeriesData, start: str | None, end: str | None) -> SeriesData:
    """The part of a series between two dates (both included)."""
    mask = np.ones(s.values.size, dtype=bool)
    if start:
        mask &= s.dates >= np.datetime64(start, "s")
    if end:
        mask &= s.dates < np.datetime64(end, "D") + np.timedelta64(1, "D")
    return SeriesData(s.machine, s.test, s.energy, s.unit, s.dates[mask],
                      s.values[mask], s.resets)


def analysis_options(settings: Settings, baseline_points: int | None = None,
                     baseline_start: str | None = None,
                     baseline_end: str | None = None,
                     rules: str | None = None) -> dict:
    """Keyword arguments of ``SeriesAnalysis.analyze`` from the settings."""
    return {
        "baseline_points": baseline_points or settings.baseline_points,
        "baseline_start": baseline_start,
        "baseline_end": baseline_end,
        "ruleset": rules or settings.run_rules,
        "min_baseline_points": settings.min_baseline_points,
        "ewma_lambda": settings.ewma_lambda,
        "ewma_L": settings.ewma_L,
        "cusum_k": settings.cusum_k,
        "cusum_h": settings.cusum_h,
    }
