"""QATrack+ "Test Instance Details" reports (one test instance per row).

The layout is that of QATrack+'s report code (qatrack/reports/qc/
testinstance.py, ``organize_one_per_row``; the title and filter lines above it
from ``BaseReport.to_table`` in qatrack/reports/reports.py): ``Work Completed,
Test, Unit, Site, Value, Reference, Tolerance, Skipped, Performed By,
Comment`` (README.md, "Input files"). ``Unit`` is the treatment unit, i.e. the
machine, never a unit of measure.

* The beam energy is taken from the test name ("6 MV Output" -> output at 6X,
  "6 MeV Output" -> 6E); a beam test whose name gives no energy is reported,
  never merged with the other energies.
* ``Value`` is the measurement in the test's unit (a unit in brackets at the
  end of the name, "Output (%)", "Laser Alignment (mm)", else the test's own
  unit). Only a raw reading ("Output (cGy)", "(nC)", "(MU)") becomes the
  percent deviation from its ``Reference``.
* ``Reference`` and ``Tolerance`` are kept in ``extra`` as the values that
  applied in QATrack+, with every other column (site, performer, comment,
  test list) and the test name as written; they never judge the value.
* ``Work Completed`` written with an offset (QATrack+ writes
  ``2024-05-06 21:19:00+00:00``) is converted to the department's time zone.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from agent.qa.importers.dqa3 import compact, metric_role
from agent.qa.importers.parsing import (
    RAW_UNITS,
    allowed_units,
    map_unique,
    normalise_unit,
    parse_date_column,
    to_department_time,
    to_number,
)
from agent.qa.importers.records import (
    ImportResult,
    ReadOptions,
    Rejects,
    empty_events,
)
from agent.qa.importers.tabular import Table
from agent.vocabulary import (
    BEAM_TESTS,
    QUESTION_ENERGY,
    TESTS,
    canonical_energy,
    canonical_test,
)

#: Compact header names (see :func:`~agent.qa.importers.dqa3.compact`) a
#: Test Instance Details report has.
_REQUIRED = {"workcompleted", "test", "unit", "value"}
_KEYS = {"date": "workcompleted", "test": "test", "machine": "unit",
         "value": "value", "reference": "reference", "skipped": "skipped"}
_MACHINE_COLUMNS = {"machine", "machinename", "linac", "treatmentunit"}
_YES = {"true", "yes", "1", "y"}
#: Value cells QATrack+ writes for a test without a result.
_NO_RESULT = {"skipped": "skipped in QATrack+", "not done": "not done in QATrack+"}
_UNIT_AT_END = re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^()]*)\)\s*$")
#: How far below the report's title lines the column header may stand.
_HEADER_SEARCH = 60
#: QCPump's Daily QA 3 parameters (docs/pumps/dqa3.rst), each with
#: ``_baseline`` and ``_diff``; size and shift are in cm there.
_DQA3_PARAMETERS = ("dose", "axsym", "trsym", "qaflat", "energy", "xsize",
                    "ysize", "xshift", "yshift")
_REPORT_TIME = re.compile(r"^(?P<d>\d{1,2}) (?P<b>[A-Za-z]{3}) (?P<y>\d{4}) "
                          r"(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?$")
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
     "dec"], start=1)}
_DQA3_IN_CM = {"field_size_x", "field_size_y", "beam_shift_x", "beam_shift_y"}


class TestName(NamedTuple):
    """What a QATrack+ test name says: test, energy, unit, or why it cannot be used."""

    test: str | None
    energy: str
    unit: str
    problem: str | None


def is_qatrack(columns: list[str]) -> bool:
    """Whether a header is a QATrack+ Test Instance Details report's.

    Parameters
    ----------
    columns : list of str
        Header row.

    Returns
    -------
    bool
        True when Work Completed, Test, Unit and Value are all there.
    """
    keys = {compact(c) for c in columns}
    # A file with its own machine column reads "Unit" as a unit of measure.
    return keys >= _REQUIRED and not keys & _MACHINE_COLUMNS


def qatrack_table(table: Table) -> Table | None:
    """The report's rows under their real header, when the file is a report.

    QATrack+ writes title and filter lines above the data ("Report Title:",
    ..., "Work Completed:", "Test:", ...); the filter line "Work Completed:"
    names a date, so the header found by the table reader may be that line.
    The real header is the first row naming Work Completed, Test, Unit and
    Value.

    Parameters
    ----------
    table : Table
        The file as read by :func:`~agent.qa.importers.tabular.read_table`.

    Returns
    -------
    Table or None
        ``table`` itself when its header is the report's, the rows below the
        real header when it stands lower, None when the file is no report.
    """
    if is_qatrack(list(table.body.columns)):
        return table
    cells = table.body.astype(str)
    for i in range(min(_HEADER_SEARCH, len(cells))):
        headers = [c.strip() for c in cells.iloc[i].tolist()]
        if not is_qatrack(headers):
            continue
        body = table.body.iloc[i + 1:].reset_index(drop=True)
        body.columns = _unique(headers)
        return replace(table, body=body, lines=table.lines[i + 1:],
                       header_line=int(table.lines[i]))
    return None


def _unique(headers: list[str]) -> list[str]:
    """Header names made unique (``Value``, ``Value.1``); blanks 'unnamed'."""
    seen: dict[str, int] = {}
    out = []
    for h in headers:
        h = h or "unnamed"
        seen[h] = seen.get(h, -1) + 1
        out.append(f"{h}.{seen[h]}" if seen[h] else h)
    return out


def parse_test_name(name: str) -> TestName:
    """Test, energy and unit named by a QATrack+ test name.

    Parameters
    ----------
    name : str
        As written: "6 MV Output", "10 MV Output (%)", "Laser Alignment (mm)",
        "Daily QA3 Results: 6X: Dose Diff (%)".

    Returns
    -------
    TestName
        The canonical test (None with a ``problem`` when the name cannot be
        filed), the canonical energy ('' for none) and the unit ('' for the
        test's own).
    """
    text, unit = name.strip(), ""
    match = _UNIT_AT_END.match(text)
    if match and canonical_energy(match["unit"]) is None:
        text, unit = match["name"], match["unit"].strip()
    energies = {canonical_energy(f"{n} {u}") for n, u in QUESTION_ENERGY.findall(
        text.lower())}
    if len(energies) > 1:
        return TestName(None, "", unit, f"test name '{name}' names more than one "
                        "beam energy; one test is one beam")
    energy = energies.pop() if energies else ""
    words = QUESTION_ENERGY.sub(" ", text.lower()).replace("(", " ").replace(")", " ")
    segments = [s.strip(" -") for s in words.split(":") if s.strip(" -")]
    last = segments[-1] if segments else ""
    test, problem = _dqa3_parameter(last, unit)
    if test in _DQA3_IN_CM and not unit:
        unit = "cm"  # QATrack+'s DQA3 test list: size and shift in cm
    if test is None and problem is None:
        test = canonical_test(last) or canonical_test(" ".join(segments))
    if test is None:
        return TestName(None, energy, unit, problem or (
            f"test '{name}' is not a known test; name it like '6 MV Output' or "
            f"'Laser Alignment', or use a canonical name ({', '.join(list(TESTS)[:5])}"
            ", ...)"))
    if test in BEAM_TESTS and not energy:
        return TestName(None, "", unit, f"test '{name}' names no beam energy, and "
                        f"{test} is measured per beam; name it with its energy, "
                        "e.g. '6 MV Output' or '6 MeV Output'")
    return TestName(test, energy, unit, None)


def _dqa3_parameter(words: str, unit: str) -> tuple[str | None, str | None]:
    """(test, problem) for the Daily QA 3 parameters of QATrack+'s DQA3 test lists
    (QCPump's macro names, docs/pumps/dqa3.rst): a difference is the
    measurement; the reading and the baseline beside it are not."""
    key = compact(words)
    if unit.lower() in RAW_UNITS or not any(
            key in {p, f"{p}baseline", f"{p}diff"} for p in _DQA3_PARAMETERS):
        return None, None
    metric, role = metric_role(key)
    if role == "diff" or (metric == "energy" and role == "value"):
        return metric, None  # QCPump's "energy" is the energy difference
    if role == "baseline":
        return None, (f"'{words}' is a Daily QA 3 baseline, not a measurement; the "
                      "measurement is its '... Diff' test (not imported)")
    return None, (f"'{words}' is a reading (Daily QA 3 '{words}'), not a deviation; "
                  "the measurement is its '... Diff' test, or give the reading's "
                  "unit, e.g. 'Dose (cGy)', to read it against its Reference "
                  "(not imported)")


def _iso_from_report(cell: str) -> str:
    """QATrack+'s own date-time form as ISO text; other cells as written.

    QATrack+ writes Work Completed in an Excel report as local time in its
    first DATETIME_INPUT_FORMATS, ``%d %b %Y %H:%M`` (qatrack/settings.py,
    ``format_datetime`` in qatrack/qatrack_core/dates.py): "07 May 2024 07:19".
    The month names are English, read here without the machine's locale.
    """
    found = _REPORT_TIME.match(cell)
    month = _MONTHS.get(found["b"].lower()) if found else None
    if month is None:
        return cell
    return (f"{found['y']}-{month:02d}-{int(found['d']):02d} "
            f"{int(found['H']):02d}:{found['M']}" + (f":{found['S']}"
                                                    if found["S"] else ""))


def read_qatrack(path: Path, body: pd.DataFrame, lines: np.ndarray,
                 options: ReadOptions | None = None) -> ImportResult:
    """Read the data rows of a QATrack+ Test Instance Details report.

    Parameters
    ----------
    path : Path
        The file, named in the result and its rejections.
    body : pandas.DataFrame
        Data rows as text under the report's header.
    lines : numpy.ndarray
        File line of each row of ``body``.
    options : ReadOptions, optional
        The department's time zone and date order.

    Returns
    -------
    ImportResult
        Accepted measurements (``extra``: reference, tolerance and the other
        columns as written) and rejected rows.
    """
    options = options or ReadOptions()
    cols = {name: next(c for c in body.columns if compact(c) == key)
            for name, key in _KEYS.items()
            if any(compact(c) == key for c in body.columns)}
    cells = {name: body[header].astype(str).str.strip()
             for name, header in cols.items()}
    rej = Rejects(path, lines)
    written = map_unique(cells["date"], _iso_from_report)
    local = to_department_time(written, options.timezone, options.date_order)
    dates = parse_date_column(rej, local, cols["date"], options)
    rej.add((cells["machine"] == "").to_numpy(), cols["machine"],
            "Unit (the machine) is empty")
    names = map_unique(cells["test"], parse_test_name)
    rej.add(names.map(lambda t: t.problem is not None).to_numpy(), cols["test"],
            [t.problem for t in names])
    value, unit, raw, baseline = _values(rej, cells, cols, names)
    good = ~rej.bad
    extra = _extras(body, cols, cells["date"], local, written)
    frame = pd.DataFrame({
        "date": dates[good].to_numpy(),
        "machine": cells["machine"][good].to_numpy(),
        "test": names[good].map(lambda t: t.test).to_numpy(),
        "energy": names[good].map(lambda t: t.energy).to_numpy(),
        "value": value[good].to_numpy(dtype=float),
        "unit": unit[good].to_numpy(),
        "raw_value": raw[good].to_numpy(dtype=float),
        "raw_unit": names[good].map(lambda t: t.unit).where(raw[good].notna(),
                                                            None).to_numpy(),
        "baseline": baseline[good].to_numpy(dtype=float),
        "source_line": lines[good],
        "extra": [extra[i] for i in np.flatnonzero(good)],
    })
    return ImportResult(str(path), "qatrack", frame, empty_events(), rej.errors)


def _values(rej: Rejects, cells: dict[str, pd.Series], cols: dict[str, str],
            names: pd.Series) -> tuple[pd.Series, ...]:
    """Value in its reported unit, the unit, and for raw readings the reading
    and its reference; rejects rows without a usable value."""
    written = cells["value"]
    skipped = (cells["skipped"].str.lower().isin(_YES) if "skipped" in cells
               else pd.Series(False, index=written.index))
    no_result = written.str.lower().map(lambda v: _NO_RESULT.get(v))
    rej.add((skipped | no_result.notna()).to_numpy(), cols["value"],
            [f"{r if isinstance(r, str) else 'skipped in QATrack+'}: no value; "
             "not imported" for r in no_result])
    number = to_number(written)
    rej.add(((written == "") & ~skipped).to_numpy(), cols["value"],
            "Value is empty; not imported")
    rej.add(((written != "") & ~np.isfinite(number) & no_result.isna()
             & ~skipped).to_numpy(), cols["value"],
            [f"Value '{v}' is not a number (a pass/fail or text result); "
             "not imported" for v in written])
    reference = (to_number(cells["reference"]) if "reference" in cells
                 else pd.Series(np.nan, index=written.index))
    out = [_in_unit(t, v, r) for t, v, r in zip(names, number, reference,
                                                 strict=True)]
    problems = [o[4] for o in out]
    rej.add(np.array([p is not None for p in problems]), cols["test"], problems)
    value, unit, raw, base = (pd.Series([o[k] for o in out], index=written.index)
                              for k in range(4))
    return value.astype(float), unit, raw.astype(float), base.astype(float)


def _in_unit(name: TestName, value: float, reference: float
             ) -> tuple[float, str, float, float, str | None]:
    """(value, unit, raw reading, its reference, problem) of one row."""
    nan = float("nan")
    if name.test is None or not np.isfinite(value):
        return nan, "", nan, nan, None
    own = TESTS[name.test][1]
    if not name.unit:
        return value, own, nan, nan, None
    unit = normalise_unit(name.unit)
    if unit.lower() in RAW_UNITS:
        if own != "%":
            return nan, "", nan, nan, (f"unit '{name.unit}' is a raw reading, "
                                       f"but {name.test} is given in {own}")
        if not (np.isfinite(reference) and reference != 0):
            return nan, "", nan, nan, (
                f"unit '{name.unit}' is a raw reading and needs its Reference "
                "(a non-zero number) to become a percent deviation")
        return 100.0 * (value - reference) / reference, "%", value, reference, None
    if unit == "cm":
        value, unit = float(Decimal(repr(float(value))) * 10), "mm"
    if unit not in allowed_units(name.test):
        return nan, "", nan, nan, (
            f"unit '{name.unit}' does not fit test {name.test} (expected "
            f"{' or '.join(sorted(allowed_units(name.test)))})")
    return value, unit, nan, nan, None


def _extras(body: pd.DataFrame, cols: dict[str, str], date_raw: pd.Series,
            local: pd.Series, written: pd.Series) -> list[dict]:
    """Per row: reference and tolerance as written, the other columns, the
    test name as written and the time as written when it was converted."""
    keys = {cols[k] for k in ("date", "test", "machine", "value", "skipped")
            if k in cols}
    kept = [c for c in body.columns if c not in keys and not c.startswith("unnamed")]
    extra: list[dict] = [{} for _ in range(len(body))]
    for header in kept:
        key = re.sub(r"[^a-z0-9]+", "_", header.lower()).strip("_")
        raw = body[header].astype(str).str.strip()
        numbers = to_number(raw) if key == "reference" else None
        for i, cell in enumerate(raw):
            if cell:
                number = numbers.iloc[i] if numbers is not None else np.nan
                extra[i][key] = float(number) if np.isfinite(number) else cell
    for i, name in enumerate(body[cols["test"]].astype(str).str.strip()):
        extra[i]["test_name"] = name
    for i in np.flatnonzero((local != written).to_numpy()):
        extra[i]["time_as_written"] = date_raw.iloc[i]
    return extra
