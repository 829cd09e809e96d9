"""Hand-kept workbooks are read whole: every sheet, every cell, every date.

The workbook is built here with openpyxl from a truth table, and what the
importer gives is checked value for value and date for date against it:
a long sheet with Excel date cells and bare serial dates, a wide sheet, a
day-first sheet, a notes sheet and an empty one, with "n/a" cells.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from agent.qa.importers import InputError, ReadOptions, read_measurements
from agent.qa.store import MeasurementStore

#: (sheet, row, date, machine, test, energy, value, unit) of every measurement.
TRUTH = [
    ("TB1", 2, dt.datetime(2024, 1, 2, 8, 30), "TB1", "output", "6X", 0.25, "%"),
    ("TB1", 3, dt.datetime(2024, 1, 3), "TB1", "output", "6X", -0.4, "%"),
    ("TB1", 5, dt.datetime(2024, 1, 4, 12), "TB1", "laser", "", 0.7, "mm"),
    ("TB1", 6, dt.datetime(2024, 1, 5, 7, 15), "TB1", "output", "10X", 1.125, "%"),
    ("TB2", 3, dt.datetime(2024, 2, 1), "TB2", "output", "6X", 0.5, "%"),
    ("TB2", 3, dt.datetime(2024, 2, 1), "TB2", "laser", "", 1.0, "mm"),
    ("TB2", 4, dt.datetime(2024, 2, 2, 7, 45), "TB2", "output", "6X", -0.3, "%"),
    ("TB2", 5, dt.datetime(2024, 2, 5), "TB2", "laser", "", 0.4, "mm"),
    ("Europe", 2, dt.datetime(2025, 4, 4, 7, 30), "TB3", "output", "6X", 0.5, "%"),
    ("Europe", 3, dt.datetime(2025, 4, 13), "TB3", "output", "6X", -1.25, "%"),
]
#: (sheet, row, column) of every cell that must be reported, not dropped.
REJECTED = [("TB1", 4, "value"), ("TB2", 4, "Laser (mm)"), ("Europe", 4, "Value")]


def _serial(when: dt.datetime) -> float:
    """Excel's day count for a date-time (1900 date system)."""
    return (when - dt.datetime(1899, 12, 30)) / dt.timedelta(days=1)


def build_workbook(path: Path) -> Path:
    """The test workbook, written from :data:`TRUTH`."""
    wb = openpyxl.Workbook()
    tb1 = wb.active
    tb1.title = "TB1"
    tb1.append(["date", "machine", "test", "energy", "value", "unit"])
    tb1.append([dt.datetime(2024, 1, 2, 8, 30), "TB1", "Output", "6 MV", 0.25, "%"])
    tb1.append([_serial(dt.datetime(2024, 1, 3)), "TB1", "output", "6X", -0.4, "%"])
    tb1.append([dt.date(2024, 1, 3), "TB1", "output", "10X", "n/a", "%"])
    tb1.append([_serial(dt.datetime(2024, 1, 4, 12)), "TB1", "laser", None, 0.07, "cm"])
    date_cell = tb1.cell(row=6, column=1, value=_serial(dt.datetime(2024, 1, 5, 7, 15)))
    date_cell.number_format = "yyyy-mm-dd hh:mm"  # a real Excel date cell
    for col, value in enumerate(["TB1", "output", "10X", 1.125, "%"], start=2):
        tb1.cell(row=6, column=col, value=value)

    tb2 = wb.create_sheet("TB2")
    tb2.append(["Morning QA, bunker 2"])
    tb2.append(["date", "machine", "6X Output (%)", "Laser (mm)", "Comments"])
    tb2.append([dt.datetime(2024, 2, 1), "TB2", 0.5, 1.0, "ok"])
    tb2.append([dt.datetime(2024, 2, 2, 7, 45), "TB2", -0.3, "N/A", "laser broken"])
    tb2.append([int(_serial(dt.datetime(2024, 2, 5))), "TB2", None, 0.4, None])

    notes = wb.create_sheet("Notes")
    notes.append(["Who measured what"])
    notes.append(["Anna", "mornings"])

    europe = wb.create_sheet("Europe")
    europe.append(["Date (DD.MM.YYYY)", "Machine", "Test", "Energy", "Value", "Unit"])
    europe.append(["04.04.2025 07:30", "TB3", "output", "6X", "0,5", "%"])
    europe.append(["13.04.2025", "TB3", "output", "6X", -1.25, "%"])
    europe.append(["14.04.2025", "TB3", "output", "6X", "n/a", "%"])

    wb.create_sheet("Empty")
    wb.save(path)
    return path


@pytest.fixture
def book(tmp_path) -> Path:
    return build_workbook(tmp_path / "qa_book.xlsx")


def _where(path: Path, sheet: str) -> str:
    return f"{path}[{sheet}]"


def test_every_sheet_is_read_value_for_value_and_date_for_date(book):
    r = read_measurements(book)
    got = sorted(
        ((row.machine, pd.Timestamp(row.date).to_pydatetime(), row.test,
          row.energy, row.unit, row.source_line), row.value)
        for row in r.frame.itertuples())
    want = sorted(((m, d, t, e, u, line), v) for _, line, d, m, t, e, v, u in TRUTH)
    assert [key for key, _ in got] == [key for key, _ in want]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want],
                               rtol=0, atol=1e-12)
    # The 0.07 cm laser reading is stored in mm.
    assert ("TB1", "laser", 0.7) in {(k[0], k[2], round(v, 12)) for k, v in got}


def test_na_cells_are_reported_with_sheet_line_and_column(book):
    r = read_measurements(book)
    cells = {(e.file, e.line, e.column) for e in r.errors if e.line is not None}
    assert cells == {(_where(book, s), line, c) for s, line, c in REJECTED}
    for e in r.errors:
        if e.line is not None:
            assert "'n/a'" in e.reason.lower() and "not a number" in e.reason


def test_sheets_without_data_are_reported_as_skipped_with_why(book):
    r = read_measurements(book)
    skipped = {e.file: e.reason for e in r.errors if e.line is None}
    assert set(skipped) == {_where(book, "Notes"), _where(book, "Empty")}
    assert "no header row with a date column" in skipped[_where(book, "Notes")]
    assert "empty" in skipped[_where(book, "Empty")]
    assert all(r.startswith("sheet skipped") for r in skipped.values())


def test_rows_read_counts_the_data_rows_of_every_sheet(book):
    r = read_measurements(book)
    # TB1: 5 rows, TB2: 3, Europe: 3 (the notes and empty sheets hold none).
    assert r.rows_read == 11
    assert r.rows_rejected == 3  # TB1 line 4, Europe line 4, TB2's N/A cell
    accepted = {(m, line) for _, line, _, m, *_ in TRUTH}
    assert len(accepted) + 2 == r.rows_read  # TB2 line 4 keeps its 6X output


def test_only_the_sheets_named_are_read(book):
    r = read_measurements(book, options=ReadOptions(sheets=("TB2",)))
    assert set(r.frame["machine"]) == {"TB2"}
    skipped = {e.file for e in r.errors if e.line is None}
    assert _where(book, "TB1") in skipped and _where(book, "Europe") in skipped
    with pytest.raises(InputError, match="no sheet named Missing"):
        read_measurements(book, options=ReadOptions(sheets=("Missing",)))


def test_day_first_setting_reads_a_sheet_without_a_format_in_its_header(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["date", "machine", "test", "energy", "value", "unit"])
    ws.append(["04-04-2025", "TB1", "output", "6X", 0.1, "%"])
    ws.append(["05/04/2025 08:00", "TB1", "output", "6X", 0.2, "%"])
    path = tmp_path / "dayfirst.xlsx"
    wb.save(path)
    r = read_measurements(path, options=ReadOptions(date_order="day-first"))
    assert list(r.frame["date"]) == [pd.Timestamp("2025-04-04"),
                                     pd.Timestamp("2025-04-05 08:00")]
    # With ISO dates (the default) they are refused, and the reason says how.
    with pytest.raises(InputError) as info:
        read_measurements(path)
    assert "date_order" in str(info.value) and "day-first" in str(info.value)


def test_a_sheet_of_beam_tests_without_energy_refuses_the_file(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Output"
    ws.append(["date", "machine", "test", "value", "unit"])
    ws.append([dt.datetime(2024, 1, 2), "TB1", "output", 0.1, "%"])
    path = tmp_path / "noenergy.xlsx"
    wb.save(path)
    with pytest.raises(InputError) as info:
        read_measurements(path)
    message = str(info.value)
    assert "noenergy.xlsx[Output]" in message and "energy column" in message


@pytest.mark.parametrize("damage", ["member", "truncated", "missing sheet"])
def test_a_damaged_workbook_is_an_input_error_saying_what_to_do(book, tmp_path,
                                                                 damage):
    bad = tmp_path / f"damaged_{damage.replace(' ', '_')}.xlsx"
    with zipfile.ZipFile(book) as src:
        members = {i.filename: src.read(i.filename) for i in src.infolist()}
    if damage == "truncated":
        bad.write_bytes(book.read_bytes()[:1500])
    else:
        with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as dst:
            for name, data in members.items():
                if name == "xl/worksheets/sheet1.xml":
                    if damage == "missing sheet":
                        continue
                    data = data[: len(data) // 2] + b"\x00garbage<<" + data[-40:]
                dst.writestr(name, data)
        if damage == "member":  # flip bytes inside the compressed member
            raw = bytearray(bad.read_bytes())
            for i in range(200, 260):
                raw[i] ^= 0x5A
            bad.write_bytes(bytes(raw))
    with pytest.raises(InputError) as info:
        read_measurements(bad)
    assert bad.name in str(info.value)
    assert "save it again as .xlsx" in str(info.value) or "cannot" in str(info.value)


def test_the_workbook_is_stored_exactly(book, store_url):
    store = MeasurementStore(store_url)
    report = store.import_file(book)
    assert report.added == len(TRUTH)
    stored = {(s.machine, s.test, s.energy): s for s in store.load_series()}
    for _, _, when, machine, test, energy, value, _ in TRUTH:
        series = stored[(machine, test, energy)]
        at = np.flatnonzero(series.dates == np.datetime64(when, "s"))
        assert at.size == 1, (machine, test, energy, when)
        assert series.values[at[0]] == pytest.approx(value, abs=1e-12)
