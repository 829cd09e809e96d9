"""The wide layout: one row per day (and machine/energy), one column per test.

A test column is named by its test, optionally an energy and a unit, e.g.
``6X Output (%)`` or ``Laser [mm]`` (README.md, "Input files"). Each cell is
its own measurement: a bad cell is rejected alone, an empty cell means the
test was not done that day.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from agent.qa.importers.parsing import (
    allowed_units,
    map_unique,
    norm,
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
    NotMeasurementDataError,
    ReadOptions,
    Rejects,
    RowError,
    empty_events,
    frame_from_parts,
    reject_headerless,
)
from agent.qa.importers.values import name_problem, value_reason, values_out_of_range
from agent.vocabulary import BEAM_TESTS, TESTS, canonical_energy, canonical_test

_UNIT_IN_HEADER = re.compile(r"[\(\[]\s*(%|mm|cm|deg|degrees?|°)\s*[\)\]]", re.I)
_ENERGY_TOKEN = re.compile(
    r"(?<![a-z0-9])(\d+(?:\.\d+)?\s*(?:mv\s*fff|x\s*fff|fff|mv|mev|x|e))(?![a-z0-9])",
    re.I,
)
#: Columns (after normalisation) that are neither keys nor tests.
_NOTE_COLUMNS = {"comment", "comments", "notes", "note", "initials", "user", "by"}


class _TestColumn(NamedTuple):
    """A column holding one test's values."""

    header: str
    test: str
    energy: str
    unit: str


class _RowKeys(NamedTuple):
    """Date, machine and energy of each row, and which rows are usable."""

    dates: pd.Series
    machine: pd.Series
    energy: pd.Series
    good: np.ndarray


def read_wide(
    path: Path,
    body: pd.DataFrame,
    lines: np.ndarray,
    cols: dict[str, str],
    machine_arg: str | None,
    header_line: int = 1,
    options: ReadOptions | None = None,
) -> ImportResult:
    """Read the data rows of a wide-layout file.

    Parameters
    ----------
    path : Path
        The file, named in the result and its rejections.
    body : pandas.DataFrame
        Data rows as text under their header.
    lines : numpy.ndarray
        File line of each row of ``body``.
    cols : dict of str to str
        Canonical column name -> header for the key columns found (date, and
        optionally machine and energy).
    machine_arg : str, optional
        Machine of every row when the file has no machine column.
    header_line : int
        File line of the header, named for columns that are not imported.
    options : ReadOptions, optional
        Date order, time zone, decimal comma, energy (see ``_with_energies``).

    Returns
    -------
    ImportResult
        Accepted measurements and rejected rows, cells and columns.

    Raises
    ------
    InputError
        When no column is a QA test (:class:`NotMeasurementDataError`), the
        machine is neither a column nor given, or a beam test has no energy.
    """
    options = options or ReadOptions()
    test_columns, header_errors = _test_columns(path, body, cols, header_line)
    _require_tests_and_machine(path, body, cols, machine_arg, test_columns)
    test_columns = _with_energies(path, cols, test_columns, options)
    rej = Rejects(path, lines)
    reject_headerless(rej, body)
    keys = _row_keys(rej, body, cols, machine_arg, options)
    parts = []
    any_value = np.zeros(len(body), dtype=bool)
    for column in test_columns:
        raw = body[column.header].astype(str).str.strip()
        any_value |= (raw != "").to_numpy()
        part = _column_measurements(rej, column, raw, keys, lines, options)
        if part is not None:
            parts.append(part)
    for i in np.flatnonzero(keys.good & ~any_value):
        rej.note(i, None, "no test value in this row; nothing imported from it")
    return ImportResult(str(path), "wide", frame_from_parts(parts), empty_events(),
                        header_errors + rej.errors)


def parse_wide_header(header: str) -> tuple[str | None, str, str | None]:
    """(test, energy, unit) from a header like '6X Output (%)' or 'Laser [mm]'.

    Parameters
    ----------
    header : str
        A column header.

    Returns
    -------
    tuple
        Canonical test (None when not a test), canonical energy ('' when the
        header names none) and unit (None when the header names none).
    """
    unit = None
    m = _UNIT_IN_HEADER.search(header)
    text = header
    if m:
        unit = normalise_unit(m.group(1).lower())
        text = _UNIT_IN_HEADER.sub(" ", text)
    energy = ""
    e = _ENERGY_TOKEN.search(text)
    if e:
        energy = canonical_energy(e.group(1)) or ""
        text = (text[: e.start()] + " " + text[e.end():]).strip(" -_:")
    return canonical_test(text), energy, unit


def _test_columns(
    path: Path, body: pd.DataFrame, cols: dict[str, str], header_line: int
) -> tuple[list[_TestColumn], list[RowError]]:
    """The test columns, and a header error for each column left out."""
    header_errors: list[RowError] = []
    used = {cols.get(k) for k in ("date", "machine", "energy")}
    test_columns = []
    for header in body.columns:
        if header in used or norm(header) in _NOTE_COLUMNS:
            continue
        test, energy, unit = parse_wide_header(header)
        if test is None:
            header_errors.append(RowError(
                str(path), header_line, header,
                "column not recognised as a QA test and not imported; rename it "
                "to a test name such as 'Output 6X (%)' or 'Laser (mm)'"))
            continue
        unit = unit or TESTS[test][1]
        if unit != "cm" and unit not in allowed_units(test):
            header_errors.append(RowError(
                str(path), header_line, header,
                f"unit '{unit}' does not fit test '{test}'; column not imported"))
            continue
        test_columns.append(_TestColumn(header, test, energy, unit))
    return test_columns, header_errors


def _require_tests_and_machine(
    path: Path,
    body: pd.DataFrame,
    cols: dict[str, str],
    machine_arg: str | None,
    test_columns: list[_TestColumn],
) -> None:
    """Raise when the file has no test column, or no machine for its rows."""
    if not test_columns:
        raise NotMeasurementDataError(
            str(path), "not a recognised layout. A long file needs the columns "
            "date, machine, test, value, unit; a wide file needs a date column "
            "and test columns such as 'Output 6X (%)'; found: "
            + ", ".join(map(str, body.columns))
        )
    if "machine" not in cols and not machine_arg:
        raise InputError(
            f"{path}: wide layout without a 'machine' column; add one, or name "
            "the machine with --machine"
        )


def _with_energies(path: Path, cols: dict[str, str], test_columns: list[_TestColumn],
                   options: ReadOptions) -> list[_TestColumn]:
    """Beam-test columns take the energy of ``options`` when neither their header
    nor an energy column names one; without any, the file is refused (its
    energies would be merged into one series)."""
    if "energy" in cols:
        return test_columns
    unbeamed = [c for c in test_columns if c.test in BEAM_TESTS and not c.energy]
    if unbeamed and not options.energy:
        raise InputError(
            f"{path}: the column(s) {', '.join(shown(c.header) for c in unbeamed)} "
            "hold tests measured per beam energy but name no energy and there is "
            "no energy column, so energies would be merged into one series: name "
            "the energy in the header ('6X Output (%)'), add an 'energy' column, "
            "or give the energy of the whole file with the import's energy "
            "option (ReadOptions.energy)")
    energy = canonical_energy(options.energy) or "" if options.energy else ""
    return [c._replace(energy=energy) if c in unbeamed else c for c in test_columns]


def _row_keys(
    rej: Rejects, body: pd.DataFrame, cols: dict[str, str], machine_arg: str | None,
    options: ReadOptions,
) -> _RowKeys:
    """Date, machine and energy of each row; a row with a bad key is rejected."""
    n = len(body)
    dates = parse_date_column(
        rej, body[cols["date"]].astype(str).str.strip(), cols["date"], options
    )
    if "machine" in cols:
        machine = body[cols["machine"]].astype(str).str.strip()
        rej.add((machine == "").to_numpy(), cols["machine"], "machine is empty")
        odd = map_unique(machine, lambda m: name_problem(m, "machine") or "")
        rej.add((odd != "").to_numpy(), cols["machine"], odd.tolist())
    else:
        machine = pd.Series([machine_arg] * n)
    energy = pd.Series([""] * n)
    if "energy" in cols:
        energy = map_unique(body[cols["energy"]].astype(str).str.strip(),
                            canonical_energy)
        rej.add(energy.isna().to_numpy(), cols["energy"],
                "energy not recognised; write e.g. 6X, 10FFF, 9E or 6 MV")
        odd = map_unique(energy, lambda e: name_problem(e, "energy") or "")
        rej.add((odd != "").to_numpy(), cols["energy"], odd.tolist())
    return _RowKeys(dates, machine, energy.fillna(""), ~rej.bad)


def _column_measurements(
    rej: Rejects,
    column: _TestColumn,
    raw: pd.Series,
    keys: _RowKeys,
    lines: np.ndarray,
    options: ReadOptions,
) -> pd.DataFrame | None:
    """Measurements of one test column (None when it has none in usable rows).

    Each cell is its own measurement: a bad cell is rejected alone; an empty
    cell means the test was not done that day (no measurement).
    """
    numbers = to_number(raw, options.decimal_comma)
    values = numbers.to_numpy(dtype=float) * (10.0 if column.unit == "cm" else 1.0)
    unit = "mm" if column.unit == "cm" else column.unit
    energies = keys.energy if not column.energy else pd.Series(
        [column.energy] * len(raw))
    problems = [
        (numbers.isna() & (raw != "")).to_numpy(),
        values_out_of_range(values, pd.Series([unit] * len(raw))) & (raw != ""),
        ((energies == "") & (raw != "")).to_numpy() & (column.test in BEAM_TESTS),
    ]
    reasons = (
        lambda i: number_problem(raw.iat[i], options.decimal_comma),
        lambda i: value_reason(values[i], unit, f"{raw.iat[i]} {column.unit}"),
        lambda i: f"energy is empty, but {column.test} is measured per beam "
                  "energy: fill in the energy (6X, 10FFF, 9E, ...)",
    )
    usable = keys.good.copy()
    for mask, reason in zip(problems, reasons, strict=True):
        for i in np.flatnonzero(mask & usable):
            rej.note(i, column.header, reason(i))
        usable &= ~mask
    keep = usable & (raw != "").to_numpy()
    if not keep.any():
        return None
    values = values[keep]
    return pd.DataFrame({
        "date": keys.dates[keep].to_numpy(),
        "machine": keys.machine[keep].to_numpy(),
        "test": column.test,
        "energy": energies[keep].to_numpy(),
        "value": values,
        "unit": unit,
        "raw_value": np.nan,
        "raw_unit": None,
        "baseline": np.nan,
        "source_line": lines[keep],
        CELL: column.header,
    })
