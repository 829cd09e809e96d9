"""Fuzz: mutated QA records read back against the truth they were made from.

Seeded. Clean records (date-time, machine, test, energy, value, unit; raw
cGy readings with their baseline too) are written into about 70 CSV files and
16 workbooks, and about half of them are mutated the ways real files go
wrong: dates in many forms (ISO, with ``Z``/`` UTC``/offsets, day-first and
month-first in files that do or do not set the order, two-digit years, bare
and Excel serial numbers, impossible days, year 0001), unbalanced quotes and
text after a closing quote, NUL and control characters, names longer than
the store's columns, huge/inf/nan values, decimal commas (quoted, unquoted,
ambiguous, in ';' files), duplicate keys with equal and different values,
missing energy or unit columns, damaged XLSX files. Every file is read with
``read_measurements`` and every record is checked:

* no internal error: the reader returns, or raises ``InputError`` only for a
  file that is unusable as a whole by design (a missing energy column, a
  damaged workbook);
* no silent drop: each record is accepted, or reported with its file (sheet),
  line, column and a reason;
* no bent value: each accepted record's date, names, unit and value equal the
  truth exactly, and a record that must be refused is never accepted.

Run ``.venv/bin/pytest -q -s tests/test_import_fuzz.py`` to see the figures.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from sqlalchemy import text

from agent.qa.importers import InputError, ReadOptions, RowError, read_measurements
from agent.qa.store import MeasurementStore

SEED = 20250404
CSV_FILES = 72
XLSX_FILES = 16
HEADER = ["date", "machine", "test", "energy", "value", "unit", "baseline", "note"]
#: (test as written, canonical test, energy as written, canonical energy, unit)
KINDS = [
    ("output", "output", "6X", "6X", "%"), ("Output", "output", "10 MV", "10X", "%"),
    ("dose", "output", "6MV FFF", "6FFF", "%"),
    ("flatness", "flatness", "6X", "6X", "%"),
    ("Axial Symmetry", "symmetry_inplane", "10X", "10X", "%"),
    ("laser", "laser", "", "", "mm"), ("ODI", "odi", "", "", "mm"),
    ("gantry", "gantry_angle", "", "", "deg"), ("output", "output", "6X", "6X", "cGy"),
]
MACHINES = ["TB1", "TrueBeam 2", "Halcyon-3", "Linac_4", "Versa Ω5"]
ZONES = [("Z", 0), (" UTC", 0), ("+01:00", 60), ("-05:00", -300), ("+0530", 330)]
FORMS = {
    "day-first": ["%d.%m.%Y %H:%M", "%d/%m/%Y %H:%M", "%d-%m-%Y %H:%M"],
    "month-first": ["%m/%d/%Y %H:%M", "%m-%d-%Y %H:%M", "%m/%d/%Y %I:%M %p"],
}
ISO_FORMS = ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
             "%Y/%m/%d %H:%M"]


@dataclass
class Rec:
    """One record as written, and what the importer must make of it."""

    kind: str
    cells: dict[str, str]
    truth: dict | None  # the measurement to be accepted; None: to be refused
    column: str | None = None  # the column the rejection must name (None: any)
    fragment: str = ""  # a fragment of the reason
    line: int = 0
    source: str = ""
    prefix: str = ""


@dataclass
class Tally:
    """The fuzz figures."""

    files: int = 0
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    internal_errors: list[str] = field(default_factory=list)
    silent_drops: list[str] = field(default_factory=list)
    bent: list[str] = field(default_factory=list)
    wrongly_refused: list[str] = field(default_factory=list)
    vague: list[str] = field(default_factory=list)
    whole_file: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def problems(self) -> dict[str, list[str]]:
        return {k: v[:5] for k, v in (
            ("internal errors", self.internal_errors),
            ("silent drops", self.silent_drops), ("bent values", self.bent),
            ("wrongly refused", self.wrongly_refused),
            ("rejections without file/line/column/reason", self.vague)) if v}


# --- clean records -----------------------------------------------------------------


def clean(rng: np.random.Generator, machine: str | None = None) -> Rec:
    """A record whose truth is known."""
    written, test, energy_text, energy, unit = KINDS[rng.integers(len(KINDS))]
    minutes = int(rng.integers(0, 6 * 365 * 1440))
    when = pd.Timestamp("2020-01-01") + pd.Timedelta(minutes=minutes)
    if rng.random() < 0.25:
        when = when.normalize()
    machine = machine or MACHINES[rng.integers(len(MACHINES))]
    cells = {"date": _iso(when, rng), "machine": machine, "test": written,
             "energy": energy_text, "unit": unit, "baseline": "", "note": ""}
    if unit == "cGy":
        raw = round(100 + rng.normal(0, 1.5), 2)
        base = round(100 + rng.normal(0, 0.5), 2)
        cells |= {"value": repr(raw), "baseline": repr(base)}
        value, unit = 100.0 * (raw - base) / base, "%"
    elif unit == "deg":
        value = round(float(rng.choice([rng.uniform(-1, 1), rng.uniform(358, 360)])), 2)
        cells["value"] = repr(value)
    else:
        value = round(float(rng.normal(0, 0.8)), int(rng.integers(1, 4)))
        cells["value"] = repr(value)
    truth = {"date": when, "machine": machine, "test": test, "energy": energy,
             "unit": unit, "value": value}
    return Rec("clean", cells, truth)


def _iso(when: pd.Timestamp, rng: np.random.Generator) -> str:
    if when == when.normalize() and rng.random() < 0.7:
        return when.strftime("%Y-%m-%d")
    return when.strftime(ISO_FORMS[rng.integers(len(ISO_FORMS))])


def pick(rng: np.random.Generator, options: list):
    """One of ``options`` as it is (numpy's choice would strip a NUL)."""
    return options[int(rng.integers(len(options)))]


def refuse(rec: Rec, kind: str, column: str | None, fragment: str = "") -> Rec:
    rec.kind, rec.truth, rec.column, rec.fragment = kind, None, column, fragment
    return rec


# --- mutations ---------------------------------------------------------------------


def mutate_date(rec: Rec, rng: np.random.Generator, order: str) -> Rec:
    """The record's date in another form; accepted only where it is unambiguous."""
    when = rec.truth["date"]
    choice = rng.integers(9)
    rec.kind = f"date-{choice}"
    if choice == 0:  # with a zone: the instant, in the department's zone (UTC)
        suffix, minutes = ZONES[rng.integers(len(ZONES))]
        rec.cells["date"] = when.strftime("%Y-%m-%dT%H:%M") + suffix
        rec.truth["date"] = when - pd.Timedelta(minutes=minutes)
        return rec
    if choice in (1, 2):  # day-first or month-first: read only in that order
        form_order = (order if order != "iso"
                      else ("day-first", "month-first")[choice - 1])
        forms = FORMS[form_order]
        rec.cells["date"] = when.strftime(forms[rng.integers(len(forms))])
        if order == "iso":
            return refuse(rec, rec.kind, "date", "date_order")
        return rec
    bad = {
        3: (when.strftime("%d/%m/%y"), "two-digit year"),
        4: (str(int((when - pd.Timestamp("1899-12-30")).days)), "bare number"),
        5: (when.strftime("0001-%m-%d"), "outside the years"),
        6: (when.strftime("%Y-02-30 %H:%M"), "no valid date"),
        7: ("yesterday", "not a date"),
        8: ("", "date is empty"),
    }[int(choice)]
    rec.cells["date"] = bad[0]
    return refuse(rec, rec.kind, "date", bad[1])


def mutate_value(rec: Rec, rng: np.random.Generator, sep: str) -> Rec:
    """Huge, infinite, missing or comma-written values."""
    choice = int(rng.integers(7))
    raw = rec.cells["unit"] == "cGy"
    if choice == 0:
        rec.cells["value"] = str(pick(rng, ["1e308", "-1e308", "1e400", "inf",
                                             "-Infinity", "nan", "NaN"]))
        return refuse(rec, "value-nonfinite", "value")
    if choice == 1:  # beyond the unit's plausible bound
        rec.cells["value"] = {"%": "100.5", "mm": "-150", "deg": "361",
                              "cGy": "0"}[rec.cells["unit"]]
        return refuse(rec, "value-bound", "value")
    if choice == 2 and raw:
        rec.cells["baseline"] = str(pick(rng, ["0", "-100", "1e9", "abc"]))
        return refuse(rec, "baseline-bad", "baseline")
    text = rec.cells["value"]
    if sep == ";" or "." not in text or raw:
        rec.kind = "value-plain"
        return rec
    if choice == 3:  # unquoted decimal comma in a comma file: the row shifts
        rec.cells["value"] = text.replace(".", ",")
        return refuse(rec, "value-comma-unquoted", None)
    whole, decimals = text.lstrip("-").split(".")
    if len(decimals) == 3 and whole != "0":
        rec.cells["value"] = '"' + text.replace(".", ",") + '"'
        return refuse(rec, "value-comma-ambiguous", "value", "ambiguous")
    rec.kind = "value-comma-quoted"
    rec.cells["value"] = '"' + text.replace(".", ",") + '"'
    return rec


def mutate_name(rec: Rec, rng: np.random.Generator) -> Rec:
    """Control characters, long names, quotes inside names."""
    choice = int(rng.integers(8))
    machine = rec.cells["machine"]
    if choice == 0:
        bad = pick(rng, ["\x00", "\t", "\x07", "\x1b", "\x7f"])
        rec.cells["machine"] = machine[:2] + bad + machine[2:]
        return refuse(rec, "name-control", "machine", "control character")
    if choice == 1:
        rec.cells["machine"] = machine + "M" * int(rng.integers(101, 300))
        return refuse(rec, "name-long", "machine", "characters long")
    if choice == 2:  # exactly as long as the store keeps
        rec.cells["machine"] = rec.truth["machine"] = (machine + "x" * 100)[:100]
        rec.kind = "name-100"
        return rec
    if choice == 3:  # a quote inside a name is just a character
        rec.cells["machine"] = rec.truth["machine"] = machine + '"B'
        rec.kind = "name-inner-quote"
        return rec
    if choice == 4:  # a quoted name with doubled quotes
        rec.truth["machine"] = machine + ' "A"'
        rec.cells["machine"] = '"' + rec.truth["machine"].replace('"', '""') + '"'
        rec.kind = "name-quoted"
        return rec
    if choice == 5 and rec.truth["energy"]:
        rec.cells["energy"] = "123456789012345678 MV"
        return refuse(rec, "energy-long", "energy", "characters long")
    if choice == 6 and rec.truth["energy"]:
        rec.cells["energy"] = ""
        return refuse(rec, "energy-empty", "energy", "per beam energy")
    rec.cells["machine"] = f"  {machine} "  # spaces around a cell are trimmed
    rec.kind = "name-spaces"
    return rec


def mutate_quotes(rec: Rec, rng: np.random.Generator) -> Rec:
    """Unbalanced quotes, text after a closing quote, legitimate quoted notes."""
    choice = int(rng.integers(5))
    if choice == 0:
        column = str(pick(rng, ["value", "machine", "note"]))
        rec.cells[column] = '"' + rec.cells[column].strip('"')
        return refuse(rec, "quote-unbalanced", column, "unbalanced quote")
    if choice == 1:
        rec.cells["value"] = '"' + rec.cells["value"] + '"1'
        return refuse(rec, "quote-trailing-text", "value", "followed by other text")
    if choice == 2:
        rec.cells["note"] = '"checked twice,\nsee log"'
        rec.kind = "quote-multiline-note"
        return rec
    if choice == 3:
        rec.cells["value"] = '"' + rec.cells["value"] + '"'
        rec.kind = "quote-quoted-value"
        return rec
    rec.cells["note"] = '"said ""fine"", ok"'
    rec.kind = "quote-doubled"
    return rec


MUTATIONS = ("date", "value", "name", "quotes", "duplicate")


# --- CSV files ---------------------------------------------------------------------


def build_csv(path: Path, rng: np.random.Generator
              ) -> tuple[list[Rec], ReadOptions, str]:
    """A CSV file of clean and mutated records; returns them, the options and
    what the file as a whole must do ('read' or 'refuse')."""
    sep = ";" if rng.random() < 0.3 else ","
    order = str(pick(rng, ["iso", "iso", "day-first", "month-first"]))
    whole = "read"
    columns = list(HEADER)
    roll = rng.random()
    if roll < 0.08:
        columns.remove("energy")
        whole = "refuse"
    elif roll < 0.16:
        columns.remove("unit")
    recs = []
    for _ in range(int(rng.integers(25, 55))):
        rec = clean(rng)
        if "unit" not in columns:
            while rec.cells["unit"] == "cGy":
                rec = clean(rng)
        if rng.random() < 0.5:
            kind = MUTATIONS[rng.integers(len(MUTATIONS))]
            if kind == "duplicate" and recs:
                rec = _duplicate(recs[int(rng.integers(len(recs)))], rng)
            elif kind == "date":
                rec = mutate_date(rec, rng, order)
            elif kind == "value":
                rec = mutate_value(rec, rng, sep)
            elif kind == "name":
                rec = mutate_name(rec, rng)
            elif kind == "quotes":
                rec = mutate_quotes(rec, rng)
        if sep == ";":
            rec.cells = {k: v.replace(".", ",") if k in ("value", "baseline") else v
                         for k, v in rec.cells.items()}
        recs.append(rec)
    _write_csv(path, recs, columns, sep, rng)
    return recs, ReadOptions(date_order=order, timezone="UTC"), whole


def _duplicate(original: Rec, rng: np.random.Generator) -> Rec:
    """The same measurement again: the same value (a repeat) or another one."""
    cells, truth = dict(original.cells), dict(original.truth or {}) or None
    if truth is None or rng.random() < 0.5:
        return Rec("duplicate-same", cells, truth, original.column,
                   original.fragment)
    if cells["unit"] == "cGy":
        cells["baseline"] = repr(float(cells["baseline"].replace(",", ".")) + 0.5)
    else:
        cells["value"] = repr(round(float(cells["value"].strip('"').replace(",", "."))
                                    + 0.25, 6))
    truth = None if '"' in cells["value"] else truth  # (a changed quoted value)
    return Rec("duplicate-other", cells, truth if truth is None else {
        **truth, "value": _value_of(cells)})


def _value_of(cells: dict[str, str]) -> float:
    value = float(cells["value"].strip('"').replace(",", "."))
    if cells["unit"] == "cGy":
        base = float(cells["baseline"].replace(",", "."))
        return 100.0 * (value - base) / base
    return value


def _write_csv(path: Path, recs: list[Rec], columns: list[str], sep: str,
               rng: np.random.Generator) -> None:
    newline = "\r\n" if rng.random() < 0.2 else "\n"
    out = [sep.join(columns)]
    line = 1
    for rec in recs:
        if rng.random() < 0.05:
            out.append(pick(rng, ["", sep * (len(columns) - 1), "   "]))
            line += 1
        rec.line, rec.source = line + 1, str(path)
        row = sep.join(rec.cells.get(c, "") for c in columns)
        out.append(row)
        line += 1 + row.count("\n")
    text = newline.join(out) + newline
    data = text.encode("utf-8")
    path.write_bytes(b"\xef\xbb\xbf" + data if rng.random() < 0.2 else data)


def expected_conflicts(recs: list[Rec]) -> None:
    """Records the oracle expects accepted that give one measurement two values
    are both to be refused (README.md, "Input files": what is rejected)."""
    groups: dict[tuple, list[Rec]] = {}
    for rec in recs:
        if rec.truth is not None:
            t = rec.truth
            key = (rec.source, rec.prefix, t["machine"], t["test"], t["energy"],
                   t["unit"], t["date"])
            groups.setdefault(key, []).append(rec)
    for group in groups.values():
        if len({r.truth["value"] for r in group}) > 1:
            for rec in group:
                refuse(rec, "duplicate-conflict", None, "two values")


# --- workbooks ---------------------------------------------------------------------


def build_workbook(path: Path, rng: np.random.Generator
                   ) -> tuple[list[Rec], ReadOptions]:
    """A workbook of 1-3 data sheets (Excel date cells, serial numbers, text
    dates, numbers and text), maybe a notes sheet and an empty one."""
    order = str(pick(rng, ["iso", "day-first", "month-first"]))
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    recs = []
    for s in range(int(rng.integers(1, 4))):
        name = f"Linac {s + 1}"
        ws = wb.create_sheet(name)
        ws.append(HEADER[:7])
        for row in range(2, int(rng.integers(12, 30))):
            rec = _sheet_record(rng, name, order)
            rec.line, rec.source, rec.prefix = row, f"{path}[{name}]", name
            for col, key in enumerate(HEADER[:7], start=1):
                ws.cell(row=row, column=col, value=rec.cells.get(key))
            recs.append(rec)
    if rng.random() < 0.6:
        wb.create_sheet("Notes").append(["Checked by", "AB"])
    if rng.random() < 0.3:
        wb.create_sheet("Empty")
    wb.save(path)
    return recs, ReadOptions(date_order=order, timezone="UTC")


def _sheet_record(rng: np.random.Generator, sheet: str, order: str) -> Rec:
    rec = clean(rng, machine=f"{sheet}-M{int(rng.integers(3))}")
    when = rec.truth["date"]
    cells: dict = dict(rec.cells)
    form = int(rng.integers(5))
    if form == 0:
        cells["date"] = when.to_pydatetime()
    elif form == 1:  # a date cell that lost its format: the serial number
        cells["date"] = (when - pd.Timestamp("1899-12-30")) / pd.Timedelta(days=1)
    elif form == 2 and order != "iso":
        cells["date"] = when.strftime(FORMS[order][0])
    cells["value"] = float(cells["value"])
    cells["baseline"] = float(cells["baseline"]) if cells["baseline"] else None
    rec.cells = cells
    choice = int(rng.integers(10))
    if choice == 0:
        cells["value"] = str(pick(rng, ["n/a", "N/A", "-", "#DIV/0!"]))
        return refuse(rec, "xlsx-na", "value", "not a number")
    if choice == 1 and cells["unit"] != "cGy":
        cells["value"] = float(pick(rng, [1e308, -1e300, 1e5]))
        return refuse(rec, "xlsx-huge", "value")
    if choice == 2 and cells["unit"] != "cGy" and abs(cells["value"]) < 1:
        cells["value"] = repr(cells["value"]).replace(".", ",")  # text "0,25"
        rec.kind = "xlsx-comma-text"
        return rec
    if choice == 3:
        cells["machine"] = rec.cells["machine"][:3] + str(pick(rng, ["\t", "\n"]))
        cells["machine"] += rec.truth["machine"][3:]
        return refuse(rec, "xlsx-control", "machine", "control character")
    if choice == 4:
        cells["machine"] = rec.truth["machine"] + "W" * 120
        return refuse(rec, "xlsx-long-name", "machine", "characters long")
    rec.kind = f"xlsx-date-{form}"
    return rec


def damage(good: Path, bad: Path, rng: np.random.Generator) -> str:
    """A damaged copy of a workbook; returns how it was damaged."""
    data = bytearray(good.read_bytes())
    how = int(rng.integers(4))
    if how == 0:
        for i in rng.integers(30, len(data) - 30, size=int(rng.integers(1, 12))):
            data[i] ^= int(rng.integers(1, 256))
    elif how == 1:
        data = data[: int(rng.integers(20, len(data) - 20))]
    else:
        with zipfile.ZipFile(good) as src:
            members = {i.filename: src.read(i.filename) for i in src.infolist()}
        sheets = [n for n in members if n.startswith("xl/worksheets/")]
        target = sheets[int(rng.integers(len(sheets)))]
        with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as dst:
            for name, body in members.items():
                if name == target and how == 2:
                    continue
                dst.writestr(name, body if name != target else body[: len(body) // 2])
        return ("member dropped", "member cut")[how - 2]
    bad.write_bytes(bytes(data))
    return ("bytes flipped", "truncated")[how]


# --- the check ---------------------------------------------------------------------


def check(result, recs: list[Rec], tally: Tally) -> None:
    """Every record accepted with its truth, or reported; nothing else."""
    frame = result.frame
    errors: dict[tuple[str, int], list[RowError]] = {}
    for e in result.errors:
        errors.setdefault((e.file, e.line), []).append(e)
    lines = {(r.source, r.line) for r in recs}
    for (file, line), found in errors.items():
        if line is not None and (file, line) not in lines:
            tally.vague.append(f"{file}:{line}: an error on no record: {found[0]}")
    for rec in recs:
        tally.records += 1
        tally.kinds[rec.kind] = tally.kinds.get(rec.kind, 0) + 1
        where = f"{rec.source}:{rec.line} ({rec.kind})"
        at = frame[(frame["source_line"] == rec.line)
                   & frame["machine"].astype(str).str.startswith(rec.prefix)]
        reported = errors.get((rec.source, rec.line), [])
        if rec.truth is None:
            if len(at):
                tally.bent.append(f"{where}: accepted, must be refused: {rec.cells}")
            elif not reported:
                tally.silent_drops.append(f"{where}: neither accepted nor reported")
            else:
                tally.rejected += 1
                _check_report(rec, reported, where, tally)
            continue
        if len(at) != 1 or reported:
            (tally.wrongly_refused if reported else tally.silent_drops).append(
                f"{where}: {len(at)} rows, {[str(e) for e in reported]}, {rec.cells}")
            continue
        tally.accepted += 1
        row, t = at.iloc[0], rec.truth
        got = (pd.Timestamp(row["date"]), row["machine"], row["test"], row["energy"],
               row["unit"], float(row["value"]))
        want = (t["date"], t["machine"], t["test"], t["energy"], t["unit"],
                float(t["value"]))
        if got != want:
            tally.bent.append(f"{where}: got {got}, truth {want}")


def _check_report(rec: Rec, reported: list[RowError], where: str,
                  tally: Tally) -> None:
    for e in reported:
        if not (e.file and e.line and e.column and e.reason):
            tally.vague.append(f"{where}: {e}")
    if rec.column is not None and rec.column not in {e.column for e in reported}:
        tally.vague.append(f"{where}: expected column {rec.column}: "
                           f"{[str(e) for e in reported]}")
    if rec.fragment and not any(rec.fragment in e.reason for e in reported):
        tally.vague.append(f"{where}: expected '{rec.fragment}' in "
                           f"{[e.reason for e in reported]}")


def read(path: Path, options: ReadOptions, tally: Tally):
    """read_measurements, with anything but InputError counted as internal."""
    tally.files += 1
    try:
        return read_measurements(path, options=options)
    except InputError:
        raise
    except Exception as exc:  # anything else is an internal error: counted
        tally.internal_errors.append(f"{path.name}: {type(exc).__name__}: {exc}")
        return None


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory) -> tuple[Tally, list[tuple[Path, ReadOptions, list[Rec]]]]:
    """Every file built, read and checked once; the figures."""
    rng = np.random.default_rng(SEED)
    root = tmp_path_factory.mktemp("fuzz")
    tally, files = Tally(), []
    for i in range(CSV_FILES):
        path = root / f"qa_{i:03d}.csv"
        recs, options, whole = build_csv(path, rng)
        expected_conflicts(recs)
        try:
            result = read(path, options, tally)
        except InputError as exc:
            if whole != "refuse" and any(r.truth for r in recs):
                tally.internal_errors.append(f"{path.name}: refused: {exc}")
            elif whole == "refuse" and "energy column" not in str(exc):
                tally.vague.append(f"{path.name}: refused without the reason: {exc}")
            tally.whole_file += 1
            continue
        if result is not None:
            if whole == "refuse":
                tally.bent.append(f"{path.name}: energies merged without an error")
            if result.rows_read != len(recs):
                tally.silent_drops.append(
                    f"{path.name}: rows_read {result.rows_read} != {len(recs)}")
            check(result, recs, tally)
            files.append((path, options, recs))
    for i in range(XLSX_FILES):
        path = root / f"book_{i:03d}.xlsx"
        recs, options = build_workbook(path, rng)
        expected_conflicts(recs)
        result = read(path, options, tally)
        if result is not None:
            check(result, recs, tally)
            _check_damaged(path, options, result, rng, tally)
    return tally, files


def _check_damaged(path: Path, options: ReadOptions, good, rng, tally: Tally) -> None:
    """A damaged copy is refused as a whole, or read exactly as the original."""
    for k in range(3):
        bad = path.with_name(f"{path.stem}_damaged{k}.xlsx")
        how = damage(path, bad, rng)
        try:
            result = read(bad, options, tally)
        except InputError as exc:
            tally.whole_file += 1
            if "Excel" not in str(exc) and "damaged" not in str(exc):
                tally.vague.append(f"{bad.name} ({how}): {exc}")
            continue
        if result is not None:
            same = result.frame.reset_index(drop=True).equals(
                good.frame.reset_index(drop=True))
            if not same:
                tally.bent.append(f"{bad.name} ({how}): read, but not as the original")


def test_fuzzed_records_are_stored_exactly_or_reported(fuzz):
    tally, _ = fuzz
    print(f"\nfuzz (seed {SEED}): {tally.files} files, {tally.records} records: "
          f"{tally.accepted} accepted exactly, {tally.rejected} rejected naming "
          f"file, line, column and reason; {tally.whole_file} files refused as a "
          f"whole; internal errors {len(tally.internal_errors)}, silent drops "
          f"{len(tally.silent_drops)}, bent values {len(tally.bent)}, wrongly "
          f"refused {len(tally.wrongly_refused)}, vague {len(tally.vague)}")
    assert tally.records >= 2000
    assert tally.problems() == {}
    # Every kind of mutation was exercised.
    for kind in ("date-0", "date-1", "quote-unbalanced", "name-control", "name-long",
                 "value-nonfinite", "value-comma-quoted", "duplicate-conflict",
                 "duplicate-same", "xlsx-na", "xlsx-date-1"):
        assert tally.kinds.get(kind, 0) > 0, kind


def test_fuzzed_files_in_the_store(fuzz, store_url):
    """The accepted records of fuzzed files with NUL bytes, control characters
    and long names are stored exactly, on SQLite and PostgreSQL alike."""
    _, files = fuzz
    chosen = [f for f in files if any(r.kind in ("name-control", "name-long")
                                      for r in f[2])][:4]
    assert chosen
    store = MeasurementStore(store_url)
    for path, options, recs in chosen:
        report = store.import_file(path, options=options)
        assert report.rows_read == len(recs)
        assert report.added + report.duplicates == sum(r.truth is not None
                                                       for r in recs)
    stored = {}
    for s in store.load_series():
        for when, value in zip(s.dates, s.values, strict=True):
            stored.setdefault((s.machine, s.test, s.energy, pd.Timestamp(when)),
                              []).append(value)
    for _, _, recs in chosen:
        for rec in recs:
            if rec.truth is not None:
                t = rec.truth
                key = (t["machine"], t["test"], t["energy"], t["date"])
                assert t["value"] in stored[key], (rec.kind, rec.cells)


def test_a_series_that_cannot_be_analysed_does_not_stop_the_others(tmp_path):
    """A 1e308 already in the store (from before the importer refused it)."""
    from agent.config import load_settings
    from agent.engine import QAEngine
    from agent.qa.fleet import analyze_store_fleet

    url = f"sqlite:///{tmp_path / 'qa.sqlite'}"
    rows = ["date,machine,test,energy,value,unit"]
    days = pd.date_range("2024-01-01", periods=40)
    rows += [f"{d.date()},TB1,output,6X,{0.01 * (i % 7):.2f},%"
             for i, d in enumerate(days)]
    rows += [f"{d.date()},TB1,laser,,{0.02 * (i % 5):.2f},mm"
             for i, d in enumerate(days)]
    (tmp_path / "qa.csv").write_text("\n".join(rows) + "\n")
    store = MeasurementStore(url)
    store.import_file(tmp_path / "qa.csv")
    with store.engine.begin() as conn:
        conn.execute(text(
            "UPDATE measurement SET value = 1e308 WHERE id = (SELECT MIN(m.id) "
            "FROM measurement m JOIN series s ON s.id = m.series_id "
            "WHERE s.test = 'output')"))
    settings = load_settings({"QA_AGENT_DATA_DIR": str(tmp_path),
                              "QA_AGENT_DATABASE_URL": url})
    engine = QAEngine(settings)
    for run in (engine.analyse(machine="TB1"), engine.fleet(),
                engine.fleet(machine="TB1")):
        assert [(r.test, r.energy) for r in run.results] == [("laser", "")]
        assert [e.file for e in run.errors] == ["TB1/output/6X"]
        assert "could not be analysed" in run.errors[0].reason
    parallel = analyze_store_fleet(MeasurementStore(url), engine.tables, workers=2)
    assert [r.test for r in parallel] == ["laser"]
    assert [e.file for e in parallel.errors] == ["TB1/output/6X"]


def test_no_energy_column_is_refused_not_merged(tmp_path):
    path = tmp_path / "merged.csv"
    path.write_text("date,machine,test,value,unit\n"
                    "2024-01-02,TB1,output,0.5,%\n2024-01-02 08:00,TB1,output,0.7,%\n")
    with pytest.raises(InputError) as info:
        read_measurements(path)
    assert "energy column" in str(info.value) and "merged" in str(info.value)
    # A file of one energy says so, and its beam tests take it.
    r = read_measurements(path, options=ReadOptions(energy="6 MV"))
    assert list(r.frame["energy"]) == ["6X", "6X"]


def test_an_unbalanced_quote_is_reported_where_it_began_and_the_rest_read(tmp_path):
    rows = ["date,machine,test,energy,value,unit"]
    rows += [f"2024-01-{d:02d},TB1,output,6X,0.{d},%" for d in range(1, 29)]
    rows[3] = '2024-01-03,TB1,output,6X,"0.3,%'
    path = tmp_path / "quote.csv"
    path.write_text("\n".join(rows) + "\n")
    r = read_measurements(path)
    assert r.rows_read == 28 and len(r.frame) == 27
    assert [(e.line, e.column) for e in r.errors] == [(4, "value")]
    assert "unbalanced quote" in r.errors[0].reason
    assert "swallow 25 line(s)" in r.errors[0].reason


def test_day_first_european_export_with_decimal_commas(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("Datum;Gerät;Test;Energie;Wert;Einheit\n"
                    "date;machine;test;energy;value;unit\n"
                    "04.04.2025 07:30;TB1;output;6X;0,123;%\n"
                    "13.04.2025;TB1;output;6X;-1,234;%\n", encoding="utf-8")
    r = read_measurements(path, options=ReadOptions(date_order="day-first"))
    assert list(r.frame["date"]) == [pd.Timestamp("2025-04-04 07:30"),
                                     pd.Timestamp("2025-04-13")]
    assert list(r.frame["value"]) == [0.123, -1.234]
    with pytest.raises(InputError) as info:
        read_measurements(path)
    assert "day-first" in str(info.value) and "date_order" in str(info.value)


@pytest.mark.parametrize(("cell", "order", "expected"), [
    ("04-04-2025", "iso", None),
    ("04-04-2025", "day-first", "2025-04-04"),
    ("2024-01-02 08:30 UTC", "iso", "2024-01-02 08:30"),
    ("2024-01-02T08:30Z", "iso", "2024-01-02 08:30"),
    ("2024-01-02T08:30+01:00", "iso", "2024-01-02 07:30"),
    ("2024-01-02 08:30-2025", "iso", None),
    ("13/04/2025", "month-first", None),
    ("04/13/2025 8:30 PM", "month-first", "2025-04-13 20:30"),
    ("45293", "iso", None),
])
def test_one_documented_way_to_read_dates(tmp_path, cell, order, expected):
    path = tmp_path / "d.csv"
    path.write_text("date,machine,test,energy,value,unit\n"
                    f"{cell},TB1,output,6X,0.5,%\n2024-06-01,TB1,laser,,0.1,mm\n")
    r = read_measurements(path, options=ReadOptions(date_order=order,
                                                    timezone="UTC"))
    dates = list(r.frame.loc[r.frame["test"] == "output", "date"])
    if expected is None:
        assert dates == []
        assert [(e.line, e.column) for e in r.errors] == [(2, "date")]
        assert "0001" not in str(r.frame["date"].min())
    else:
        assert dates == [pd.Timestamp(expected)]
