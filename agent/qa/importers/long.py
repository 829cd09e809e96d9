"""The long layout (the data contract): one row per measurement.

Columns ``date, machine, test, energy, value, unit`` plus the optional
``baseline`` (raw readings such as cGy or nC become the percent deviation from
it) and ``event`` (``baseline_reset`` marks a recalibration; with an empty
value the row is an event only), as README.md "Input files" describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agent.qa.importers.parsing import (
    EVENT_KINDS,
    RAW_UNITS,
    allowed_units,
    map_unique,
    normalise_unit,
    parse_date_column,
    to_number,
)
from agent.qa.importers.records import ImportResult, Rejects, empty_events
from agent.vocabulary import TESTS, canonical_energy, canonical_test

#: Units a value is reported in as written (anything else needs a baseline).
_PLAIN_UNITS = {"%", "mm", "cm", "deg"}
_CELLS = ("date", "machine", "test", "energy", "value", "unit", "baseline", "event")


@dataclass(frozen=True)
class _LongRows:
    """Parsed columns of a long file, one entry per data row."""

    dates: pd.Series
    machine: pd.Series
    test: pd.Series
    energy: pd.Series
    event: pd.Series
    #: Value in the reported unit: % deviation for raw readings, mm for cm.
    value: pd.Series
    unit: pd.Series
    #: Value, unit and baseline as written; used where ``is_raw``.
    written_value: pd.Series
    written_unit: pd.Series
    baseline: pd.Series
    is_raw: pd.Series


def read_long(
    path: Path, body: pd.DataFrame, lines: np.ndarray, cols: dict[str, str]
) -> ImportResult:
    """Read the data rows of a long-layout file.

    Parameters
    ----------
    path : Path
        The file, named in the result and its rejections.
    body : pandas.DataFrame
        Data rows as text under their header.
    lines : numpy.ndarray
        File line of each row of ``body``.
    cols : dict of str to str
        Canonical column name -> header (at least date, machine, test, value).

    Returns
    -------
    ImportResult
        Accepted measurements, baseline-reset events and rejected rows.
    """
    rej = Rejects(path, lines)
    cells = _cells(body, cols)
    event, event_only = _parse_events(rej, cells, cols)
    measured = ~event_only
    dates = parse_date_column(rej, cells["date"], cols["date"])
    rej.add((cells["machine"] == "").to_numpy(), cols["machine"], "machine is empty")
    test = _parse_tests(rej, cells["test"], cols, event_only)
    energy = _parse_energies(rej, cells["energy"], cols)
    values = _parse_values(rej, cells["value"], cols, measured)
    unit, baseline, is_raw = _parse_units(rej, cells, cols, test, measured)
    value, reported_unit = _in_reported_units(values, baseline, unit, is_raw)
    _check_unit_fits(rej, cols, test, reported_unit, measured)
    rows = _LongRows(
        dates=dates, machine=cells["machine"], test=test, energy=energy,
        event=event, value=value, unit=reported_unit, written_value=values,
        written_unit=unit, baseline=baseline, is_raw=is_raw,
    )
    good = ~rej.bad
    keep = good & measured.to_numpy()
    return ImportResult(str(path), "long", _measurements(rows, lines, keep),
                        _events(rows, lines, good), rej.errors)


def _cells(body: pd.DataFrame, cols: dict[str, str]) -> dict[str, pd.Series]:
    """Stripped text of each long column; '' throughout where a column is absent."""
    n = len(body)
    return {
        name: (body[cols[name]].astype(str).str.strip() if name in cols
               else pd.Series([""] * n))
        for name in _CELLS
    }


def _parse_events(
    rej: Rejects, cells: dict[str, pd.Series], cols: dict[str, str]
) -> tuple[pd.Series, pd.Series]:
    """Event kind of each row ('' for none), and whether the row is an event only."""
    event_raw = cells["event"]
    event = map_unique(event_raw.str.lower(), lambda e: EVENT_KINDS.get(e, e or ""))
    unknown_event = (event != "") & ~event.isin(set(EVENT_KINDS.values()))
    rej.add(unknown_event.to_numpy(), cols.get("event"),
            [f"unknown event '{e}'; use baseline_reset" for e in event_raw])
    event_only = (event == "baseline_reset") & (cells["value"] == "")
    return event, event_only


def _parse_tests(
    rej: Rejects, test_raw: pd.Series, cols: dict[str, str], event_only: pd.Series
) -> pd.Series:
    """Canonical test names; an event-only row may leave the test empty."""
    test = map_unique(test_raw, canonical_test)
    bad_test = test.isna() & ~(event_only & (test_raw == ""))
    rej.add(bad_test.to_numpy(), cols["test"],
            [f"unknown test '{t}'; use a canonical name such as "
             f"{', '.join(list(TESTS)[:6])}, ..." for t in test_raw])
    return test


def _parse_energies(
    rej: Rejects, energy_raw: pd.Series, cols: dict[str, str]
) -> pd.Series:
    """Canonical beam energies ('' where none is given)."""
    energy = map_unique(energy_raw, canonical_energy)
    rej.add(energy.isna().to_numpy(), cols.get("energy"),
            [f"energy '{e}' not recognised; write e.g. 6X, 10FFF, 9E or 6 MV"
             for e in energy_raw])
    return energy


def _parse_values(
    rej: Rejects, value_raw: pd.Series, cols: dict[str, str], measured: pd.Series
) -> pd.Series:
    """Measured values as numbers; a measurement row needs one."""
    values = to_number(value_raw)
    rej.add((measured & (value_raw == "")).to_numpy(), cols["value"],
            "value is empty; fill in the measurement or delete the row")
    rej.add((measured & (value_raw != "") & ~np.isfinite(values)).to_numpy(),
            cols["value"], [f"value '{v}' is not a number; write a number such as 0.5"
             for v in value_raw])
    return values


def _parse_units(
    rej: Rejects,
    cells: dict[str, pd.Series],
    cols: dict[str, str],
    test: pd.Series,
    measured: pd.Series,
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Unit, baseline and whether the value is a raw reading, for each row.

    Without a unit column each test's own unit is assumed. A raw reading
    (cGy, nC, MU, or any other unit given with a baseline) needs a non-zero
    baseline.
    """
    base_raw = cells["baseline"]
    unit = map_unique(cells["unit"], normalise_unit)
    if "unit" not in cols:
        unit = test.map(lambda t: TESTS[t][1] if isinstance(t, str) else "")
    baseline = to_number(base_raw)
    is_raw = unit.str.lower().isin(RAW_UNITS) | (
        ~unit.isin(_PLAIN_UNITS | {""}) & (base_raw != "")
    )
    rej.add((measured & (unit == "")).to_numpy(), cols.get("unit"),
            "unit is empty; give %, mm, deg, or a raw unit with a baseline")
    rej.add((measured & is_raw & (base_raw == "")).to_numpy(), cols.get("unit"),
            [f"unit '{u}' is a raw reading: add its baseline in a 'baseline' "
             "column so the percent deviation can be computed" for u in unit])
    rej.add((measured & (base_raw != "") & ~(np.isfinite(baseline)
            & (baseline != 0))).to_numpy(), cols.get("baseline"),
            [f"baseline '{b}' is not a non-zero number; give the reference "
             "reading of this raw unit" for b in base_raw])
    unknown_unit = measured & (unit != "") & ~is_raw & ~unit.isin(_PLAIN_UNITS)
    rej.add(unknown_unit.to_numpy(), cols.get("unit"),
            [f"unit '{u}' not recognised; use %, mm, cm, deg or a raw unit "
             "(cGy, nC, MU) with a baseline" for u in unit])
    return unit, baseline, is_raw


def _in_reported_units(
    values: pd.Series, baseline: pd.Series, unit: pd.Series, is_raw: pd.Series
) -> tuple[pd.Series, pd.Series]:
    """Raw readings as percent deviation from their baseline, cm as mm."""
    pct = 100.0 * (values - baseline) / baseline
    value = values.where(~is_raw, pct)
    reported = unit.where(~is_raw, "%")
    cm = reported == "cm"
    value = value.where(~cm, values * 10.0)
    reported = reported.where(~cm, "mm")
    return value, reported


def _check_unit_fits(
    rej: Rejects,
    cols: dict[str, str],
    test: pd.Series,
    unit: pd.Series,
    measured: pd.Series,
) -> None:
    """Reject otherwise good rows whose (reported) unit does not fit their test."""
    fits = [
        not isinstance(t, str) or u == "" or u in allowed_units(t)
        for t, u in zip(test, unit, strict=True)
    ]
    misfit = measured & ~pd.Series(fits) & ~pd.Series(rej.bad)
    rej.add(misfit.to_numpy(), cols.get("unit"),
            [f"unit '{u}' does not fit test '{t}' (expected "
             f"{' or '.join(sorted(allowed_units(t)))})" if isinstance(t, str)
             else "" for t, u in zip(test, unit, strict=True)])


def _measurements(rows: _LongRows, lines: np.ndarray, keep: np.ndarray) -> pd.DataFrame:
    """The measurement table (``COLUMNS``) of the rows where ``keep``."""
    return pd.DataFrame({
        "date": rows.dates[keep].to_numpy(),
        "machine": rows.machine[keep].to_numpy(),
        "test": rows.test[keep].to_numpy(),
        "energy": rows.energy[keep].fillna("").to_numpy(),
        "value": rows.value[keep].to_numpy(dtype=float),
        "unit": rows.unit[keep].to_numpy(),
        "raw_value": rows.written_value.where(rows.is_raw)[keep].to_numpy(dtype=float),
        "raw_unit": rows.written_unit.where(rows.is_raw)[keep].to_numpy(),
        "baseline": rows.baseline.where(rows.is_raw)[keep].to_numpy(dtype=float),
        "source_line": lines[keep],
    })


def _events(rows: _LongRows, lines: np.ndarray, good: np.ndarray) -> pd.DataFrame:
    """The event table (``EVENT_COLUMNS``) of the good baseline-reset rows."""
    ev_mask = good & (rows.event == "baseline_reset").to_numpy()
    if not ev_mask.any():
        return empty_events()
    return pd.DataFrame({
        "date": rows.dates[ev_mask].to_numpy(),
        "machine": rows.machine[ev_mask].to_numpy(),
        "test": rows.test[ev_mask].fillna("").to_numpy(),
        "energy": rows.energy[ev_mask].fillna("").to_numpy(),
        "kind": "baseline_reset",
        "note": "",
        "source_line": lines[ev_mask],
    })
