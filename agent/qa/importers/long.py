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
    number_problem,
    parse_date_column,
    shown,
    to_number,
)
from agent.qa.importers.records import (
    CELL,
    ImportResult,
    InputError,
    ReadOptions,
    Rejects,
    empty_events,
    reject_headerless,
)
from agent.qa.importers.values import (
    name_problem,
    raw_out_of_range,
    raw_reason,
    value_reason,
    values_out_of_range,
)
from agent.vocabulary import BEAM_TESTS, TESTS, canonical_energy, canonical_test

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
    path: Path, body: pd.DataFrame, lines: np.ndarray, cols: dict[str, str],
    options: ReadOptions | None = None,
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
    options : ReadOptions, optional
        Date order, time zone, decimal comma, the energy of a file without
        an energy column.

    Returns
    -------
    ImportResult
        Accepted measurements, baseline-reset events and rejected rows.

    Raises
    ------
    InputError
        When the file has beam tests (output, flatness, ...) but no energy.
    """
    options = options or ReadOptions()
    rej = Rejects(path, lines)
    reject_headerless(rej, body)
    cells = _cells(path, body, cols, options)
    event, event_only = _parse_events(rej, cells, cols)
    measured = ~event_only
    dates = parse_date_column(rej, cells["date"], cols["date"], options)
    _check_machines(rej, cells["machine"], cols)
    test = _parse_tests(rej, cells["test"], cols, event_only)
    energy = _parse_energies(rej, cells["energy"], cols, test, event_only)
    values = _parse_values(rej, cells["value"], cols, measured, options)
    unit, baseline, is_raw = _parse_units(rej, cells, cols, test, measured, options)
    value, reported_unit = _in_reported_units(values, baseline, unit, is_raw)
    _check_unit_fits(rej, cols, test, reported_unit, measured)
    _check_ranges(rej, cols, cells, (value, reported_unit, values, unit, baseline,
                                     is_raw), measured)
    rows = _LongRows(
        dates=dates, machine=cells["machine"], test=test, energy=energy,
        event=event, value=value, unit=reported_unit, written_value=values,
        written_unit=unit, baseline=baseline, is_raw=is_raw,
    )
    good = ~rej.bad
    keep = good & measured.to_numpy()
    return ImportResult(str(path), "long",
                        _measurements(rows, lines, keep, cols["value"]),
                        _events(rows, lines, good), rej.errors)


def _cells(path: Path, body: pd.DataFrame, cols: dict[str, str],
           options: ReadOptions) -> dict[str, pd.Series]:
    """Stripped text of each long column; '' throughout where a column is absent.

    A file without an energy column takes ``options.energy`` for its beam
    tests; when it has beam tests and no such option it is refused: its
    energies would be merged into one series.
    """
    n = len(body)
    cells = {
        name: (body[cols[name]].astype(str).str.strip() if name in cols
               else pd.Series([""] * n))
        for name in _CELLS
    }
    if "energy" not in cols:
        beam = cells["test"].map(lambda t: canonical_test(t) in BEAM_TESTS)
        if beam.any() and not options.energy:
            tests = sorted({canonical_test(t) for t in cells["test"][beam]})
            raise InputError(
                f"{path}: no energy column, but "
                f"{', '.join(tests)} is measured per beam energy and the "
                "energies would be merged into one series: add an 'energy' "
                "column (6X, 10FFF, 9E, ...), or give the energy of the whole "
                "file with the import's energy option (ReadOptions.energy)")
        cells["energy"] = cells["energy"].where(~beam, options.energy or "")
    return cells


def _check_machines(rej: Rejects, machine: pd.Series, cols: dict[str, str]) -> None:
    """Reject rows without a machine or with one the store cannot keep."""
    rej.add((machine == "").to_numpy(), cols["machine"], "machine is empty")
    problems = map_unique(machine, lambda m: name_problem(m, "machine") or "")
    rej.add((problems != "").to_numpy(), cols["machine"], lambda i: problems.iat[i])


def _parse_events(
    rej: Rejects, cells: dict[str, pd.Series], cols: dict[str, str]
) -> tuple[pd.Series, pd.Series]:
    """Event kind of each row ('' for none), and whether the row is an event only."""
    event_raw = cells["event"]
    event = map_unique(event_raw.str.lower(), lambda e: EVENT_KINDS.get(e, e or ""))
    unknown_event = (event != "") & ~event.isin(set(EVENT_KINDS.values()))
    rej.add(unknown_event.to_numpy(), cols.get("event"),
            lambda i: f"unknown event {shown(event_raw.iat[i])}; use baseline_reset")
    event_only = (event == "baseline_reset") & (cells["value"] == "")
    return event, event_only


def _parse_tests(
    rej: Rejects, test_raw: pd.Series, cols: dict[str, str], event_only: pd.Series
) -> pd.Series:
    """Canonical test names; an event-only row may leave the test empty."""
    test = map_unique(test_raw, canonical_test)
    bad_test = test.isna() & ~(event_only & (test_raw == ""))
    rej.add(bad_test.to_numpy(), cols["test"],
            lambda i: f"unknown test {shown(test_raw.iat[i])}; use a canonical "
            f"name such as {', '.join(list(TESTS)[:6])}, ...")
    return test


def _parse_energies(
    rej: Rejects, energy_raw: pd.Series, cols: dict[str, str], test: pd.Series,
    event_only: pd.Series,
) -> pd.Series:
    """Canonical beam energies ('' where none is given; a beam test needs one)."""
    energy = map_unique(energy_raw, canonical_energy)
    column = cols.get("energy")
    rej.add(energy.isna().to_numpy(), column,
            lambda i: f"energy {shown(energy_raw.iat[i])} not recognised; write "
            "e.g. 6X, 10FFF, 9E or 6 MV")
    too_long = map_unique(energy, lambda e: name_problem(e, "energy") or "")
    rej.add((too_long != "").to_numpy(), column, lambda i: too_long.iat[i])
    unbeamed = (energy == "") & test.isin(BEAM_TESTS) & ~event_only
    rej.add(unbeamed.to_numpy(), column,
            lambda i: f"energy is empty, but {test.iat[i]} is measured per beam "
            "energy: fill in the energy (6X, 10FFF, 9E, ...)")
    return energy


def _parse_values(
    rej: Rejects, value_raw: pd.Series, cols: dict[str, str], measured: pd.Series,
    options: ReadOptions,
) -> pd.Series:
    """Measured values as numbers; a measurement row needs one."""
    values = to_number(value_raw, options.decimal_comma)
    rej.add((measured & (value_raw == "")).to_numpy(), cols["value"],
            "value is empty; fill in the measurement or delete the row")
    bad = measured & (value_raw != "") & values.isna()
    rej.add(bad.to_numpy(), cols["value"],
            lambda i: number_problem(value_raw.iat[i], options.decimal_comma))
    return values


def _parse_units(
    rej: Rejects,
    cells: dict[str, pd.Series],
    cols: dict[str, str],
    test: pd.Series,
    measured: pd.Series,
    options: ReadOptions,
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
    odd = map_unique(unit, lambda u: name_problem(u, "unit") or "")
    rej.add((measured & (odd != "")).to_numpy(), cols.get("unit"),
            lambda i: odd.iat[i])
    baseline = to_number(base_raw, options.decimal_comma)
    is_raw = unit.str.lower().isin(RAW_UNITS) | (
        ~unit.isin(_PLAIN_UNITS | {""}) & (base_raw != "")
    )
    rej.add((measured & (unit == "")).to_numpy(), cols.get("unit"),
            "unit is empty; give %, mm, deg, or a raw unit with a baseline")
    rej.add((measured & is_raw & (base_raw == "")).to_numpy(), cols.get("unit"),
            lambda i: f"unit {shown(unit.iat[i])} is a raw reading: add its "
            "baseline in a 'baseline' column so the percent deviation can be "
            "computed")
    rej.add((measured & (base_raw != "") & ~(np.isfinite(baseline)
            & (baseline != 0))).to_numpy(), cols.get("baseline"),
            lambda i: f"baseline {shown(base_raw.iat[i])} is not a non-zero "
            "number; give the reference reading of this raw unit")
    unknown_unit = measured & (unit != "") & ~is_raw & ~unit.isin(_PLAIN_UNITS)
    rej.add(unknown_unit.to_numpy(), cols.get("unit"),
            lambda i: f"unit {shown(unit.iat[i])} not recognised; use %, mm, cm, "
            "deg or a raw unit (cGy, nC, MU) with a baseline")
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
    pair = test.fillna("").astype(str) + "|" + unit.fillna("").astype(str)
    fit = {p: not t or u == "" or u in allowed_units(t)
           for p in pd.unique(pair) for t, u in [p.split("|", 1)]}
    misfit = measured.to_numpy() & ~pair.map(fit).to_numpy(dtype=bool) & ~rej.bad
    rej.add(misfit, cols.get("unit"),
            lambda i: f"unit {shown(unit.iat[i])} does not fit test '{test.iat[i]}' "
            f"(expected {' or '.join(sorted(allowed_units(test.iat[i])))})")


def _check_ranges(
    rej: Rejects,
    cols: dict[str, str],
    cells: dict[str, pd.Series],
    parsed: tuple[pd.Series, ...],
    measured: pd.Series,
) -> None:
    """Reject raw readings or baselines that are not positive or too large, and
    values beyond their unit's plausible bound (agent/qa/importers/values.py)."""
    value, reported, written, unit, baseline, is_raw = parsed
    open_ = measured.to_numpy() & ~rej.bad & is_raw.to_numpy()
    bad_raw = open_ & raw_out_of_range(written.to_numpy(), unit)
    rej.add(bad_raw, cols["value"],
            lambda i: raw_reason(cells["value"].iat[i], unit.iat[i]))
    bad_base = open_ & ~bad_raw & raw_out_of_range(baseline.to_numpy(), unit)
    rej.add(bad_base, cols.get("baseline"),
            lambda i: raw_reason(cells["baseline"].iat[i], unit.iat[i], "baseline"))
    out = (measured.to_numpy() & ~rej.bad
           & values_out_of_range(value.to_numpy(), reported))
    rej.add(out, cols["value"], lambda i: value_reason(
        value.iat[i], reported.iat[i], f"{cells['value'].iat[i]} {unit.iat[i]}"))


def _measurements(rows: _LongRows, lines: np.ndarray, keep: np.ndarray,
                  column: str) -> pd.DataFrame:
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
        CELL: column,
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
