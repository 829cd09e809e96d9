"""Tests of the QA-data importers (long, wide, Daily QA 3) and the name aliases.

Every input file is written into ``tmp_path`` by the test itself, so the line
numbers asserted here can be read straight off the text in the test.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from agent.qa.importers import (
    COLUMNS,
    ImportResult,
    InputError,
    RowError,
    read_measurements,
)
from agent.vocabulary import canonical_energy, canonical_machine, canonical_test

LONG_HEADER = "date,machine,test,energy,value,unit,baseline,event"


def write(tmp_path: Path, name: str, lines: list[str] | str, **kw) -> Path:
    """Write ``lines`` (joined with newlines, trailing newline) to a file."""
    text = lines if isinstance(lines, str) else "\n".join(lines) + "\n"
    path = tmp_path / name
    path.write_text(text, encoding=kw.get("encoding", "utf-8"), newline="")
    return path


def by_line(result: ImportResult) -> dict[int, list[RowError]]:
    """Errors grouped by line number."""
    out: dict[int, list[RowError]] = {}
    for err in result.errors:
        out.setdefault(err.line, []).append(err)
    return out


def records(result: ImportResult, *cols: str) -> list[tuple]:
    """Selected columns of the accepted frame as tuples, in frame order."""
    return list(result.frame[list(cols)].itertuples(index=False, name=None))


# --- names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Output", "output"),
        ("dose", "output"),
        ("CAX Dose", "output"),
        ("6X output", "output"),
        ("6 MV FFF Output", "output"),
        ("Axial Symmetry", "symmetry_inplane"),
        ("TrSym", "symmetry_crossplane"),
        ("symmetry_inplane", "symmetry_inplane"),
        ("Gamma_Pass_Rate", "gamma_pass_rate"),
        ("Winston-Lutz", "isocenter"),
        ("  Lasers  ", "laser"),
        ("ODI", "odi"),
    ],
)
def test_canonical_test_aliases(name, expected):
    assert canonical_test(name) == expected


@pytest.mark.parametrize("name", ["banana", "", "   ", None, "output banana"])
def test_canonical_test_unknown_is_none(name):
    assert canonical_test(name) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6 MV", "6X"),
        ("10 MV", "10X"),
        ("6MV FFF", "6FFF"),
        ("10 FFF", "10FFF"),
        ("9 MeV", "9E"),
        ("12e", "12E"),
        ("6 MV photons", "6X"),
        ("6x", "6X"),
        ("6.0", "6X"),
        (6.0, "6X"),
        ("15 MV X-rays", "15X"),
    ],
)
def test_canonical_energy_aliases(text, expected):
    assert canonical_energy(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", ""), (None, ""), (float("nan"), ""), ("n/a", ""), ("7Q", None),
     ("six", None)],
)
def test_canonical_energy_empty_and_unknown(text, expected):
    assert canonical_energy(text) == expected


def test_canonical_machine_forgiving_match():
    known = ["TrueBeam2", "Halcyon1"]
    assert canonical_machine("truebeam 2", known) == "TrueBeam2"
    assert canonical_machine("TRUE_BEAM-2", known) == "TrueBeam2"
    assert canonical_machine("  Elekta 9 ", known) == "Elekta 9"
    assert canonical_machine(" TB1 ") == "TB1"


def test_canonical_machine_unique_abbreviation():
    assert canonical_machine("TB2", ["TrueBeam2", "Halcyon1"]) == "TrueBeam2"


# --- long CSV: good input -----------------------------------------------------


def test_long_csv_aliases_raw_readings_and_units(tmp_path):
    path = write(tmp_path, "long.csv", [
        LONG_HEADER,
        "2024-01-02,TB1,Output,6 MV,100.5,cGy,100,",   # 2: raw -> +0.5 %
        "2024-01-02 08:30,TB1,dose,10 MV,0.4,%,,",     # 3: date-time kept
        "2024-01-03,TB1,output,6MV FFF,-0.2,%,,",      # 4
        "2024-01-03,TB1,Laser,,0.15,cm,,",             # 5: cm -> mm
        "2024-01-03,TB1,output,9 MeV,0.3,%,,",         # 6
        "2024-01-04,TB1,Output,6X,49.5,nC,50,",        # 7: raw -> -1 %
        "2024-01-04,TB1,gantry,,0.2,°,,",              # 8: degree sign
    ])
    r = read_measurements(path)
    assert r.format == "long"
    assert list(r.frame.columns) == COLUMNS
    assert r.errors == []
    assert (r.rows_read, r.rows_rejected) == (7, 0)
    assert records(r, "date", "machine", "test", "energy", "unit", "source_line") == [
        (pd.Timestamp("2024-01-02"), "TB1", "output", "6X", "%", 2),
        (pd.Timestamp("2024-01-02 08:30"), "TB1", "output", "10X", "%", 3),
        (pd.Timestamp("2024-01-03"), "TB1", "output", "6FFF", "%", 4),
        (pd.Timestamp("2024-01-03"), "TB1", "laser", "", "mm", 5),
        (pd.Timestamp("2024-01-03"), "TB1", "output", "9E", "%", 6),
        (pd.Timestamp("2024-01-04"), "TB1", "output", "6X", "%", 7),
        (pd.Timestamp("2024-01-04"), "TB1", "gantry_angle", "", "deg", 8),
    ]
    np.testing.assert_allclose(r.frame["value"], [0.5, 0.4, -0.2, 1.5, 0.3, -1.0, 0.2])


def test_long_raw_reading_keeps_raw_value_unit_and_baseline(tmp_path):
    path = write(tmp_path, "raw.csv", [
        LONG_HEADER,
        "2024-01-02,TB1,output,6X,100.5,cGy,100,",
        "2024-01-02,TB1,output,10X,0.25,%,,",
    ])
    r = read_measurements(path)
    raw, pct = r.frame.iloc[0], r.frame.iloc[1]
    assert raw["value"] == pytest.approx(0.5)
    assert (raw["unit"], raw["raw_unit"]) == ("%", "cGy")
    assert (raw["raw_value"], raw["baseline"]) == (100.5, 100.0)
    # A reading already in percent has no raw value or baseline.
    assert pct["value"] == 0.25
    assert np.isnan(pct["raw_value"]) and np.isnan(pct["baseline"])
    assert pd.isna(pct["raw_unit"])


def test_long_repeated_measurements_on_one_day_both_kept(tmp_path):
    # Repeats of one measurement: identical values are both kept (the store
    # numbers them), repeats at their own times are separate measurements.
    path = write(tmp_path, "rep.csv", [
        "date,machine,test,energy,value,unit",
        "2024-01-02,TB1,output,6X,0.5,%",
        "2024-01-02,TB1,output,6X,0.5,%",
        "2024-01-02 08:00,TB1,output,6X,0.7,%",
    ])
    r = read_measurements(path)
    assert r.errors == []
    assert records(r, "date", "value", "source_line") == [
        (pd.Timestamp("2024-01-02"), 0.5, 2),
        (pd.Timestamp("2024-01-02"), 0.5, 3),
        (pd.Timestamp("2024-01-02 08:00"), 0.7, 4),
    ]


def test_long_same_measurement_with_two_values_is_a_conflict(tmp_path):
    # Until issue 6 both rows were kept as "repeats", so one measurement had two
    # values in the store; now neither is imported and each names the other.
    path = write(tmp_path, "rep.csv", [
        "date,machine,test,energy,value,unit",
        "2024-01-02,TB1,output,6X,0.5,%",
        "2024-01-02,TB1,output,6X,0.7,%",
        "2024-01-03,TB1,output,6X,0.1,%",
    ])
    r = read_measurements(path)
    assert records(r, "value", "source_line") == [(0.1, 4)]
    assert [(e.line, e.column) for e in r.errors] == [(2, "value"), (3, "value")]
    assert "0.7 on line 3" in r.errors[0].reason
    assert "0.5 on line 2" in r.errors[1].reason
    assert r.rows_rejected == 2


def test_long_without_unit_column_uses_the_test_default_unit(tmp_path):
    path = write(tmp_path, "nounit.csv", [
        "Date,Linac,Parameter,Beam,Result",
        "2024-01-02,TB1,laser,,0.8",
        "2024-01-02,TB1,output,6 MV,-0.3",
    ])
    r = read_measurements(path)
    assert r.format == "long"
    assert records(r, "machine", "test", "energy", "value", "unit") == [
        ("TB1", "laser", "", 0.8, "mm"),
        ("TB1", "output", "6X", -0.3, "%"),
    ]


# --- long CSV: broken input ---------------------------------------------------

BROKEN_LONG = [
    LONG_HEADER,                                      # 1
    "2024-01-02,TB1,output,6X,0.5,%,,",               # 2 good
    "2024-13-45,TB1,output,6X,0.3,%,,",               # 3 bad date
    "",                                               # 4 blank
    ",TB1,output,6X,0.3,%,,",                         # 5 empty date
    "2024-01-04,TB1,banana,6X,0.3,%,,",               # 6 unknown test
    "2024-01-04,TB1,output,7Q,0.3,%,,",               # 7 unknown energy
    "2024-01-05,TB1,laser,,0.4,mm,,",                 # 8 good
    "2024-01-04,TB1,output,6X,abc,%,,",               # 9 non-numeric value
    "2024-01-04,TB1,output,6X,,%,,",                  # 10 empty value
    "2024-01-04,TB1,output,6X,100,cGy,,",             # 11 raw unit, no baseline
    "2024-01-04,TB1,output,6X,100,cGy,0,",            # 12 baseline 0
    "",                                               # 13 blank
    "2024-01-04,TB1,laser,,1,%,,",                    # 14 unit does not fit
    "2024-01-04,TB1,output,6X,1,%,,party",            # 15 unknown event
    "2024-01-06,TB1,output,10X,-0.1,%,,",             # 16 good
]


@pytest.fixture
def broken_long(tmp_path) -> ImportResult:
    return read_measurements(write(tmp_path, "broken.csv", BROKEN_LONG))


@pytest.mark.parametrize(
    ("line", "column", "fragments"),
    [
        (3, "date", ["'2024-13-45'", "ISO 8601", "YYYY-MM-DD"]),
        (5, "date", ["date is empty"]),
        (6, "test", ["unknown test 'banana'", "use a canonical name", "output"]),
        (7, "energy", ["energy '7Q' not recognised", "write e.g. 6X"]),
        (9, "value", ["value 'abc' is not a number"]),
        (10, "value", ["value is empty"]),
        (11, "unit", ["unit 'cGy' is a raw reading", "add its baseline"]),
        (12, "baseline", ["baseline '0' is not a non-zero number"]),
        (14, "unit", ["unit '%' does not fit test 'laser'", "expected mm"]),
        (15, "event", ["unknown event 'party'", "use baseline_reset"]),
    ],
)
def test_broken_long_reports_each_bad_row(broken_long, line, column, fragments):
    errors = by_line(broken_long)[line]
    assert [(e.line, e.column) for e in errors] == [(line, column)]
    err = errors[0]
    assert err.file.endswith("broken.csv")
    for fragment in fragments:
        assert fragment in err.reason


def test_broken_long_accepts_the_good_rows_around_the_bad_ones(broken_long):
    assert broken_long.format == "long"
    assert records(broken_long, "date", "test", "energy", "value", "source_line") == [
        (pd.Timestamp("2024-01-02"), "output", "6X", 0.5, 2),
        (pd.Timestamp("2024-01-05"), "laser", "", 0.4, 8),
        (pd.Timestamp("2024-01-06"), "output", "10X", -0.1, 16),
    ]


def test_broken_long_nothing_is_silently_dropped(broken_long):
    r = broken_long
    # 16 lines - header - 2 blank lines = 13 data rows.
    assert r.rows_read == 13
    assert r.rows_rejected == 10
    assert sorted({e.line for e in r.errors}) == [3, 5, 6, 7, 9, 10, 11, 12, 14, 15]
    assert len(r.frame) + r.rows_rejected == r.rows_read
    assert set(r.frame["source_line"]).isdisjoint(e.line for e in r.errors)


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    path = write(tmp_path, "blanks.csv", [
        "date,machine,test,energy,value,unit",  # 1
        "",                                     # 2
        "2024-01-02,TB1,output,6X,0.5,%",       # 3
        "   ",                                  # 4 whitespace only
        ",,,,,",                                # 5 empty cells only
        "2024-01-03,TB1,output,6X,oops,%",      # 6
        "",                                     # 7
        "2024-01-04,TB1,output,6X,0.1,%",       # 8
    ])
    r = read_measurements(path)
    assert r.rows_read == 3
    assert list(r.frame["source_line"]) == [3, 8]
    assert [(e.line, e.column) for e in r.errors] == [(6, "value")]


def test_several_problems_on_one_row_all_reported_row_counted_once(tmp_path):
    path = write(tmp_path, "multi.csv", [
        "date,machine,test,energy,value,unit",
        "yesterday,TB1,banana,6X,abc,%",
        "2024-01-03,TB1,output,6X,0.2,%",
    ])
    r = read_measurements(path)
    assert sorted((e.line, e.column) for e in r.errors) == [
        (2, "date"), (2, "test"), (2, "value")]
    assert r.rows_rejected == 1
    assert list(r.frame["source_line"]) == [3]


def test_cm_for_a_percent_test_is_rejected(tmp_path):
    path = write(tmp_path, "cm.csv", [
        "date,machine,test,energy,value,unit",
        "2024-01-02,TB1,output,6X,0.5,cm",
        "2024-01-02,TB1,jaw,,0.5,cm",
    ])
    r = read_measurements(path)
    assert [(e.line, e.column) for e in r.errors] == [(2, "unit")]
    assert "does not fit test 'output'" in r.errors[0].reason
    assert records(r, "test", "value", "unit") == [("jaw", 5.0, "mm")]


def test_line_numbers_after_a_quoted_multiline_field(tmp_path):
    path = write(tmp_path, "note.csv", [
        "date,machine,test,energy,value,unit,note",  # 1
        '2024-01-02,TB1,output,6X,0.5,%,"two',        # 2
        'lines"',                                     # 3
        "2024-01-03,TB1,output,6X,abc,%,",            # 4
    ])
    r = read_measurements(path)
    assert [(e.line, e.column) for e in r.errors] == [(4, "value")]


def test_iso_datetime_with_offset_does_not_crash(tmp_path):
    path = write(tmp_path, "tz.csv", [
        "date,machine,test,energy,value,unit",
        "2024-01-02T08:00+01:00,TB1,output,6X,0.5,%",
        "2024-01-03,TB1,output,6X,0.6,%",
    ])
    r = read_measurements(path)
    assert 3 in set(r.frame["source_line"])
    assert set(r.frame["source_line"]) | {e.line for e in r.errors} == {2, 3}


# --- separators and encodings -------------------------------------------------


def test_semicolon_separated_csv_with_decimal_commas(tmp_path):
    path = write(tmp_path, "semi.csv", [
        "date;machine;test;energy;value;unit",
        "2024-01-02;TB1;output;6X;0,5;%",
        "2024-01-03;TB1;laser;;1,5;mm",
    ])
    r = read_measurements(path)
    assert r.errors == []
    assert records(r, "test", "energy", "value", "unit", "source_line") == [
        ("output", "6X", 0.5, "%", 2),
        ("laser", "", 1.5, "mm", 3),
    ]


def test_utf8_bom_is_not_part_of_the_first_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(
        b"\xef\xbb\xbfdate,machine,test,energy,value,unit\n"
        b"2024-01-02,TB1,output,6X,0.5,%\n"
    )
    r = read_measurements(path)
    assert r.format == "long"
    assert records(r, "date", "value", "source_line") == [
        (pd.Timestamp("2024-01-02"), 0.5, 2)]


def test_tab_separated_file(tmp_path):
    path = write(tmp_path, "data.tsv", [
        "date\tmachine\ttest\tenergy\tvalue\tunit",
        "2024-01-02\tTB1\toutput\t6X\t0.5\t%",
        "2024-01-02\tTB1\tjaws\t\t0.2\tcm",
    ])
    r = read_measurements(path)
    assert records(r, "test", "value", "unit", "source_line") == [
        ("output", 0.5, "%", 2),
        ("jaw", 2.0, "mm", 3),
    ]


# --- events -------------------------------------------------------------------


def test_baseline_reset_rows_become_events(tmp_path):
    path = write(tmp_path, "events.csv", [
        LONG_HEADER,
        "2024-01-02,TB1,output,6X,0.5,%,,",                 # 2
        "2024-01-03,TB1,output,6X,,,,baseline_reset",       # 3
        "2024-01-04,TB2,Flatness,10 MV,,,,Recalibration",   # 4
        "2024-01-05,TB1,output,6X,0.1,%,,",                 # 5
        "2024-01-06,TB1,output,6X,,,,bogus",                # 6
    ])
    r = read_measurements(path)
    ev = r.events
    assert list(ev.columns) == [
        "date", "machine", "test", "energy", "kind", "note", "source_line"]
    assert list(ev[["date", "machine", "test", "energy", "kind", "source_line"]]
                .itertuples(index=False, name=None)) == [
        (pd.Timestamp("2024-01-03"), "TB1", "output", "6X", "baseline_reset", 3),
        (pd.Timestamp("2024-01-04"), "TB2", "flatness", "10X", "baseline_reset", 4),
    ]
    assert list(r.frame["source_line"]) == [2, 5]
    # An unknown event is no event, and without a value no measurement either.
    assert sorted((e.line, e.column) for e in r.errors) == [
        (6, "event"), (6, "unit"), (6, "value")]
    assert r.rows_rejected == 1
    assert r.rows_read == len(r.frame) + len(ev) + r.rows_rejected


def test_file_with_only_events_is_usable(tmp_path):
    path = write(tmp_path, "only_events.csv", [
        LONG_HEADER,
        "2024-01-03,TB1,,,,,,baseline_reset",
    ])
    r = read_measurements(path)
    assert r.frame.empty
    assert list(r.events[["machine", "test", "source_line"]]
                .itertuples(index=False, name=None)) == [("TB1", "", 2)]


# --- XLSX ---------------------------------------------------------------------


def test_xlsx_long_with_excel_dates_and_sheet_row_numbers(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["date", "machine", "test", "energy", "value", "unit", "baseline"])
    ws.append([dt.datetime(2024, 1, 2), "TB1", "Output", "6 MV", 100.5, "cGy", 100])
    ws.append([dt.datetime(2024, 1, 2, 8, 30), "TB1", "laser", None, 0.1, "cm", None])
    ws.append([])                                                     # row 4
    ws.append([dt.date(2024, 1, 3), "TB1", "output", "6X", "abc", "%", None])
    ws.append([dt.datetime(2024, 1, 4), "TB1", "dose", 10, 0.25, "%", None])
    path = tmp_path / "long.xlsx"
    wb.save(path)

    r = read_measurements(path)
    assert r.format == "long"
    assert r.rows_read == 4
    assert records(r, "date", "test", "energy", "unit", "source_line") == [
        (pd.Timestamp("2024-01-02"), "output", "6X", "%", 2),
        (pd.Timestamp("2024-01-02 08:30"), "laser", "", "mm", 3),
        (pd.Timestamp("2024-01-04"), "output", "10X", "%", 6),
    ]
    np.testing.assert_allclose(r.frame["value"], [0.5, 1.0, 0.25])
    assert [(e.line, e.column) for e in r.errors] == [(5, "value")]


def test_xlsx_wide_with_title_rows_keeps_sheet_row_numbers(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"] = "Morning QA, bunker 2"
    # row 2 left empty; header in row 3
    for col, header in enumerate(
        ["date", "machine", "6X Output (%)", "Laser (mm)"], start=1
    ):
        ws.cell(row=3, column=col, value=header)
    ws.append([dt.datetime(2024, 1, 2), "TB1", 0.5, 1])          # row 4
    ws.append([dt.datetime(2024, 1, 3, 7, 45), "TB1", "x", 2])   # row 5
    path = tmp_path / "wide.xlsx"
    wb.save(path)

    r = read_measurements(path)
    assert r.format == "wide"
    assert records(r, "date", "test", "energy", "value", "unit", "source_line") == [
        (pd.Timestamp("2024-01-02"), "output", "6X", 0.5, "%", 4),
        (pd.Timestamp("2024-01-02"), "laser", "", 1.0, "mm", 4),
        (pd.Timestamp("2024-01-03 07:45"), "laser", "", 2.0, "mm", 5),
    ]
    assert [(e.line, e.column) for e in r.errors] == [(5, "6X Output (%)")]


def test_truncated_xlsx_raises_input_error(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append(["date", "machine", "test", "value", "unit"])
    good = tmp_path / "good.xlsx"
    wb.save(good)
    path = tmp_path / "truncated.xlsx"
    path.write_bytes(good.read_bytes()[:500])
    with pytest.raises(InputError, match=r"truncated\.xlsx"):
        read_measurements(path)


# --- wide layout --------------------------------------------------------------

WIDE = [
    "date,machine,6X Output (%),Output 10X (%),Laser (mm),ODI [mm],Jaw (cm),Comments",
    "2024-01-02,TB1,0.5,-0.3,1.0,0.5,0.1,ok",   # 2
    "2024-01-03,TB1,abc,0.2,,1.5,0.2,",         # 3: one bad cell, one empty
]


def test_wide_headers_give_test_energy_and_unit(tmp_path):
    r = read_measurements(write(tmp_path, "wide.csv", WIDE))
    assert r.format == "wide"
    assert list(r.frame.columns) == COLUMNS
    rows = records(r, "machine", "test", "energy", "value", "unit", "source_line")
    assert rows[:5] == [
        ("TB1", "output", "6X", 0.5, "%", 2),
        ("TB1", "output", "10X", -0.3, "%", 2),
        ("TB1", "laser", "", 1.0, "mm", 2),
        ("TB1", "odi", "", 0.5, "mm", 2),
        ("TB1", "jaw", "", 1.0, "mm", 2),
    ]


def test_wide_bad_cell_rejects_only_that_cell(tmp_path):
    r = read_measurements(write(tmp_path, "wide.csv", WIDE))
    assert [(e.line, e.column, e.reason) for e in r.errors] == [
        (3, "6X Output (%)",
         "value 'abc' is not a number; write a number such as 0.5")]
    line3 = r.frame[r.frame["source_line"] == 3]
    # The other cells of line 3 are kept; the empty laser cell is no measurement.
    assert list(line3[["test", "energy", "value"]].itertuples(
        index=False, name=None)) == [
        ("output", "10X", 0.2), ("odi", "", 1.5), ("jaw", "", 2.0)]


def test_wide_without_machine_column_needs_machine_argument(tmp_path):
    path = write(tmp_path, "nomachine.csv", [
        "date,6X Output (%),Laser (mm)",
        "2024-01-02,0.5,1.0",
    ])
    with pytest.raises(InputError) as info:
        read_measurements(path)
    assert "nomachine.csv" in str(info.value)
    assert "--machine" in str(info.value)

    r = read_measurements(path, machine="TB2")
    assert records(r, "machine", "test", "value") == [
        ("TB2", "output", 0.5), ("TB2", "laser", 1.0)]


def test_wide_unknown_column_reported_on_header_line(tmp_path):
    path = write(tmp_path, "unknown.csv", [
        "date,machine,Output 6X (%),Coffee level,Laser (%),Notes",
        "2024-01-02,TB1,0.5,3,1.0,fine",
    ])
    r = read_measurements(path)
    assert [(e.line, e.column) for e in r.errors] == [
        (1, "Coffee level"), (1, "Laser (%)")]
    coffee, laser = r.errors
    assert "not recognised as a QA test" in coffee.reason
    assert "rename it" in coffee.reason
    assert "unit '%' does not fit test 'laser'" in laser.reason
    assert records(r, "test", "value") == [("output", 0.5)]
    # Header problems are not rejected data rows.
    assert r.rows_rejected == 0


def test_wide_row_energy_column_applies_to_headers_without_energy(tmp_path):
    path = write(tmp_path, "energy.csv", [
        "date,machine,energy,Output (%),Flatness (%)",
        "2024-01-02,TB1,6 MV,0.5,0.2",
        "2024-01-02,TB1,9 MeV,-0.4,",
        "2024-01-02,TB1,11 Q,1.0,1.0",
    ])
    r = read_measurements(path)
    assert records(r, "test", "energy", "value", "source_line") == [
        ("output", "6X", 0.5, 2),
        ("flatness", "6X", 0.2, 2),
        ("output", "9E", -0.4, 3),
    ]
    assert [(e.line, e.column) for e in r.errors] == [(4, "energy")]


def test_wide_bad_date_or_empty_machine_rejects_the_row(tmp_path):
    path = write(tmp_path, "wdate.csv", [
        "date,machine,Laser (mm)",
        "2024-01-0x,TB1,0.1",
        "2024-01-03,,0.2",
        "2024-01-04,TB1,0.3",
    ])
    r = read_measurements(path)
    assert [(e.line, e.column) for e in r.errors] == [(2, "date"), (3, "machine")]
    assert records(r, "value", "source_line") == [(0.3, 4)]
    assert r.rows_rejected == 2


def test_wide_unknown_column_below_a_title_line(tmp_path):
    path = write(tmp_path, "title.csv", [
        "Morning QA log",
        "date,machine,6X Output (%),Coffee level",
        "2024-01-02,TB1,0.5,1",
    ])
    r = read_measurements(path)
    assert list(r.frame["source_line"]) == [3]
    assert [(e.line, e.column) for e in r.errors] == [(2, "Coffee level")]


def test_wide_row_without_any_value_is_reported(tmp_path):
    path = write(tmp_path, "empty_row.csv", [
        "date,machine,6X Output (%),Laser (mm)",
        "2024-01-02,TB1,0.5,1.0",
        "2024-01-03,TB1,,",
    ])
    r = read_measurements(path)
    assert r.rows_read == 2
    assert [e.line for e in r.errors] == [3]


# --- Daily QA 3 trend export --------------------------------------------------

DQA3_HEADER = (
    "Date Time,Room,Energy,Beam Type,Dose,Dose Baseline,Dose Diff (%),"
    "AxSym,AxSym Baseline,AxSym Diff (%),TrSym,TrSym Baseline,TrSym Diff (%),"
    "QAFlat,QAFlat Baseline,QAFlat Diff (%),"
    "Energy Value,Energy Baseline,Energy Diff (%)"
)
DQA3 = [
    "Daily QA 3 Trend Report",                                                # 1
    "Exported 2024-02-01 07:00",                                              # 2
    DQA3_HEADER + ",Accepted",                                                # 3
    "2024-01-02 07:15,TB1,6 MV,Photon,101.0,100.0,1.1,0.6,0.5,0.12,"
    "0.4,0.5,-0.13,1.2,1.0,0.21,40.1,40.0,0.25,Yes",                          # 4
    "2024-01-02 07:20,TB1,6 MV,FFF,99.0,100.0,-1.0,0.6,0.5,0.1,"
    "0.4,0.5,-0.1,1.2,1.0,0.2,40.1,40.0,0.3,Yes",                             # 5
    "2024-01-02 07:25,TB1,9 MeV,Electron,102.0,100.0,,0.8,0.5,,"
    "0.4,0.5,-0.1,1.2,1.0,0.2,,,,",                                           # 6
    "2024-01-02 07:30,TB1,6 MV,Photon,,,,,,,,,,,,,,,,Yes",                    # 7
    "2024-01-02 07:35,TB1,6 MV,Photon,101.0,100.0,1.0,0.6,0.5,0.1,"
    "0.4,0.5,-0.1,1.2,1.0,0.2,40.1,40.0,0.25,No",                             # 8
]


@pytest.fixture
def dqa3(tmp_path) -> ImportResult:
    return read_measurements(write(tmp_path, "trend.csv", DQA3))


def _dqa3_value(r: ImportResult, line: int, test: str) -> float:
    rows = r.frame[(r.frame["source_line"] == line) & (r.frame["test"] == test)]
    assert len(rows) == 1
    return float(rows["value"].iloc[0])


def test_dqa3_format_and_line_numbers_below_title_lines(dqa3):
    assert dqa3.format == "dailyqa3"
    assert list(dqa3.frame.columns) == COLUMNS
    assert dqa3.rows_read == 5
    assert sorted(set(dqa3.frame["source_line"])) == [4, 5, 6]
    assert set(dqa3.frame["machine"]) == {"TB1"}
    assert set(dqa3.frame["unit"]) == {"%"}
    first = dqa3.frame[dqa3.frame["source_line"] == 4]
    assert set(first["date"]) == {pd.Timestamp("2024-01-02 07:15")}
    assert list(first["test"]) == [
        "output", "symmetry_inplane", "symmetry_crossplane", "flatness", "energy"]


def test_dqa3_beam_types_map_to_energies(dqa3):
    energies = dqa3.frame.groupby("source_line")["energy"].unique()
    assert {line: list(v) for line, v in energies.items()} == {
        4: ["6X"], 5: ["6FFF"], 6: ["9E"]}


def test_dqa3_diff_columns_are_the_values(dqa3):
    expected = {
        "output": 1.1, "symmetry_inplane": 0.12, "symmetry_crossplane": -0.13,
        "flatness": 0.21, "energy": 0.25,
    }
    for test, value in expected.items():
        assert _dqa3_value(dqa3, 4, test) == pytest.approx(value)
    row = dqa3.frame[(dqa3.frame["source_line"] == 4)
                     & (dqa3.frame["test"] == "output")].iloc[0]
    assert (row["raw_value"], row["baseline"]) == (101.0, 100.0)


def test_dqa3_missing_diff_falls_back_to_value_and_baseline(dqa3):
    # Dose: relative deviation, 100 * (102 - 100) / 100.
    assert _dqa3_value(dqa3, 6, "output") == pytest.approx(2.0)
    # Symmetry: difference in percentage points, 0.8 - 0.5.
    assert _dqa3_value(dqa3, 6, "symmetry_inplane") == pytest.approx(0.3)
    # No energy value, baseline or diff on line 6: no energy measurement.
    line6 = dqa3.frame[dqa3.frame["source_line"] == 6]
    assert "energy" not in set(line6["test"])


def test_dqa3_relative_fallback_for_dose_is_not_a_difference(tmp_path):
    path = write(tmp_path, "dose.csv", [
        "Date Time,Room,Energy,Beam Type,Dose,Dose Baseline,Dose Diff (%)",
        "2024-01-02 07:15,TB1,6,Photon,51.0,50.0,",
    ])
    r = read_measurements(path)
    assert records(r, "test", "energy", "source_line") == [("output", "6X", 2)]
    assert r.frame["value"].iloc[0] == pytest.approx(2.0)


def test_dqa3_without_diff_columns_and_bare_energy_numbers(tmp_path):
    path = write(tmp_path, "nodiff.csv", [
        "Date Time,Room,Energy,Beam Type,Dose,Dose Baseline,QAFlat,QAFlat Baseline",
        "2024-01-02 07:15,TB1,6,Photon,51.0,50.0,1.5,1.0",
        "2024-01-02 07:20,TB1,6,FFF,49.0,50.0,,",
        "2024-01-02 07:25,TB1,9,Electron,50.5,50.0,2.0,2.4",
    ])
    r = read_measurements(path)
    assert r.format == "dailyqa3"
    assert r.errors == []
    assert records(r, "test", "energy", "source_line") == [
        ("output", "6X", 2), ("flatness", "6X", 2),
        ("output", "6FFF", 3),
        ("output", "9E", 4), ("flatness", "9E", 4),
    ]
    # Dose relative to its baseline, flatness as a difference.
    np.testing.assert_allclose(r.frame["value"], [2.0, 0.5, -2.0, 1.0, -0.4])


def test_dqa3_row_without_any_metric_is_reported(dqa3):
    errors = by_line(dqa3)[7]
    assert [(e.column, e.reason) for e in errors] == [
        (None, "no dose, symmetry, flatness or energy value")]


def test_dqa3_not_accepted_record_is_rejected(dqa3):
    errors = by_line(dqa3)[8]
    assert [e.column for e in errors] == ["Accepted"]
    assert "not accepted" in errors[0].reason
    assert 8 not in set(dqa3.frame["source_line"])
    assert dqa3.rows_rejected == 2
    assert sorted(by_line(dqa3)) == [7, 8]


# --- unusable input -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("empty.csv", b"", "empty"),
        ("header.csv", b"date,machine,test,energy,value,unit\n", "no data rows"),
        ("data.json", b"{}\n", "unsupported file type '.json'"),
        ("nodate.csv", b"day,machine,test,value\n2024-01-02,TB1,output,0.5\n",
         "no header row with a date column"),
        ("latin1.csv",
         "date,machine,test,energy,value,unit\n2024-01-02,Salle é,output,6X,0.5,%\n"
         .encode("latin-1"),
         "not UTF-8"),
        ("fake.xlsx", b"date,machine,test,value\n", "cannot be read"),
    ],
)
def test_unusable_file_raises_input_error_naming_it(tmp_path, name, content,
                                                     fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_measurements(path)
    message = str(info.value)
    assert name in message
    assert fragment in message


def test_missing_file_raises_input_error(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(InputError, match=r"nowhere\.csv: file not found"):
        read_measurements(path)


def test_latin1_byte_after_the_sniffed_sample_is_still_input_error(tmp_path):
    text = "date,machine,test,energy,value,unit\n" + (
        "2024-01-02,TB1,output,6X,0.5,%\n" * 400
    ) + "2024-01-03,Salle é,output,6X,0.5,%\n"
    path = tmp_path / "late.csv"
    path.write_bytes(text.encode("latin-1"))
    assert path.stat().st_size > 8192
    with pytest.raises(InputError, match=r"late\.csv: not UTF-8"):
        read_measurements(path)


def test_every_row_bad_raises_with_first_problems(tmp_path):
    path = write(tmp_path, "allbad.csv", [
        "date,machine,test,energy,value,unit",
        "x,TB1,output,6X,0.5,%",
        "2024-01-02,TB1,nope,6X,0.5,%",
    ])
    with pytest.raises(InputError) as info:
        read_measurements(path)
    message = str(info.value)
    assert "allbad.csv" in message
    assert "no usable measurement in 2 data rows" in message
    assert "first problems" in message
    assert "line 2, column 'date'" in message
    assert "line 3, column 'test'" in message
    assert "unknown test 'nope'" in message


# --- result objects -----------------------------------------------------------


def test_row_error_text_and_dict():
    err = RowError("qa.csv", 7, "value", "value 'x' is not a number")
    assert str(err) == "qa.csv, line 7, column 'value': value 'x' is not a number"
    assert err.as_dict() == {"file": "qa.csv", "line": 7, "column": "value",
                             "reason": "value 'x' is not a number"}
    assert str(RowError("qa.csv", None, None, "empty")) == "qa.csv: empty"


def test_summary_counts(broken_long):
    summary = broken_long.summary()
    assert "long format" in summary
    assert "13 data rows read" in summary
    assert "3 measurements accepted" in summary
    assert "10 rows rejected" in summary
