"""Reading QA measurement files into one canonical table.

Three layouts are recognised from their header:

* **long** (the data contract in DESIGN.md): one row per measurement with
  ``date, machine, test, energy, value, unit[, baseline][, event]``;
* **wide**: one row per day (and machine/energy), one column per test, for
  example ``date, machine, 6X Output (%), Laser (mm)``;
* **Daily QA 3-style trend export**: date-time, room, energy, beam type and for
  dose, axial and transverse symmetry, flatness and energy a value, a
  baseline value and a difference.

Every row that cannot be used is reported as a :class:`RowError` with file,
line, column and reason, and the whole row is left out; nothing is dropped
silently. A file with no usable row raises :class:`InputError`.
"""

from __future__ import annotations

import csv
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agent.errors import UserError
from agent.vocabulary import TESTS, canonical_energy, canonical_test

#: Columns of the canonical measurement table.
COLUMNS = [
    "date",
    "machine",
    "test",
    "energy",
    "value",
    "unit",
    "raw_value",
    "raw_unit",
    "baseline",
    "source_line",
]
EVENT_COLUMNS = ["date", "machine", "test", "energy", "kind", "note", "source_line"]
EVENT_KINDS = {
    "baseline_reset": "baseline_reset",
    "baseline reset": "baseline_reset",
    "reset": "baseline_reset",
    "new baseline": "baseline_reset",
    "recalibration": "baseline_reset",
}
_UNITS = {
    "%": "%",
    "percent": "%",
    "pct": "%",
    "% dev": "%",
    "mm": "mm",
    "cm": "cm",
    "deg": "deg",
    "degree": "deg",
    "degrees": "deg",
    "°": "deg",
}
#: Units that are raw readings and need a baseline to become a % deviation.
RAW_UNITS = {"cgy", "gy", "nc", "mu", "rdg", "counts", "pc", "mgy", "cgy/mu"}
SUPPORTED_SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx", ".xlsm"}


@dataclass(frozen=True)
class RowError:
    """One rejected row (or header problem) of an input file."""

    file: str
    line: int | None
    column: str | None
    reason: str

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.file}"
        if self.line is not None:
            where += f", line {self.line}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.reason}"


class InputError(UserError):
    """The input as a whole cannot be used (exit code 2 on the command line)."""


@dataclass
class ImportResult:
    """Measurements read from one file, and what was rejected."""

    file: str
    format: str
    frame: pd.DataFrame
    events: pd.DataFrame
    errors: list[RowError] = field(default_factory=list)
    rows_read: int = 0

    @property
    def rows_rejected(self) -> int:
        """Number of distinct rejected data lines."""
        return len({e.line for e in self.errors if e.line is not None and e.line > 1})

    def summary(self) -> str:
        """One-line human summary."""
        return (
            f"{self.file}: {self.format} format, {self.rows_read} data rows read, "
            f"{len(self.frame)} measurements accepted, "
            f"{self.rows_rejected} rows rejected"
            + (f", {len(self.events)} events" if len(self.events) else "")
        )


def _norm(name: object) -> str:
    return re.sub(r"[^a-z0-9%]+", " ", str(name).strip().lower()).strip()


_LONG_ALIASES = {
    "date": {"date", "datetime", "date time", "measured", "measurement date",
             "timestamp", "measured date", "date measured"},
    "machine": {"machine", "linac", "room", "treatment unit", "unit name",
                "machine name"},
    "test": {"test", "parameter", "measurement", "test name", "quantity"},
    "energy": {"energy", "beam", "beam energy", "nominal energy"},
    "value": {"value", "result", "reading", "measured value"},
    "unit": {"unit", "units"},
    "baseline": {"baseline", "reference", "baseline value", "reference value"},
    "event": {"event", "event type"},
}


def _map_columns(headers: list[str], aliases: dict[str, set[str]]) -> dict[str, str]:
    """Canonical name -> actual header, for headers matching an alias."""
    found: dict[str, str] = {}
    for header in headers:
        key = _norm(header)
        for canonical, names in aliases.items():
            if key in names and canonical not in found:
                found[canonical] = header
    return found


# --- reading the raw grid ---------------------------------------------------------


def _read_grid(path: Path) -> pd.DataFrame:
    """All cells as strings, no header interpretation; row i is file line i+1."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"{path}: unsupported file type '{suffix or '(none)'}'; "
            "use CSV (.csv, .txt, .tsv) or Excel (.xlsx)"
        )
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        if suffix in {".xlsx", ".xlsm"}:
            try:
                grid = pd.read_excel(path, header=None, dtype=str, sheet_name=0)
            except (zipfile.BadZipFile, KeyError, OSError) as exc:
                raise InputError(
                    f"{path}: not a readable Excel workbook ({type(exc).__name__}); "
                    "open it in Excel and save it again as .xlsx, or export CSV"
                ) from None
            return grid.fillna("")
        with path.open("r", encoding="utf-8-sig", errors="strict") as handle:
            sample = handle.read(8192)
        if not sample.strip():
            raise InputError(f"{path}: the file is empty; export the QA data again")
        sep = _delimiter(path, sample)
        try:
            return pd.read_csv(
                path,
                sep=sep,
                header=None,
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
                encoding="utf-8-sig",
                engine="c",
            )
        except pd.errors.ParserError:
            # Ragged rows (a title line above the header, as device exports
            # have): read line by line and pad.
            with path.open("r", encoding="utf-8-sig", newline="") as handle:
                rows = list(csv.reader(handle, delimiter=sep))
            width = max((len(r) for r in rows), default=0)
            return pd.DataFrame([r + [""] * (width - len(r)) for r in rows])
    except InputError:
        raise
    except UnicodeDecodeError:
        raise InputError(
            f"{path}: not UTF-8 text; save the file as CSV UTF-8 and try again"
        ) from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read as a table ({first})") from None


def _delimiter(path: Path, sample: str) -> str:
    """Tab for .tsv, else the separator the sample shows (comma by default)."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def _line_numbers(path: Path, grid: pd.DataFrame) -> np.ndarray:
    """File line where each grid row starts (1-based).

    Row i is line i + 1 unless a quoted cell spans several lines; then the
    lines are counted again with the csv module.
    """
    default = np.arange(1, len(grid) + 1)
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        return default
    spans = grid.apply(lambda col: col.astype(str).str.contains("\n")).any().any()
    if not spans:
        return default
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        sample = handle.read(8192)
        handle.seek(0)
        reader = csv.reader(handle, delimiter=_delimiter(path, sample))
        starts, previous = [], 0
        for _ in reader:
            starts.append(previous + 1)
            previous = reader.line_num
    return np.asarray(starts[: len(grid)]) if len(starts) >= len(grid) else default


def _find_header(grid: pd.DataFrame, path: Path) -> int:
    """Index of the header row: the first of the first 30 rows naming a date."""
    date_names = _LONG_ALIASES["date"]
    for i in range(min(30, len(grid))):
        cells = {_norm(c) for c in grid.iloc[i].tolist()}
        if cells & date_names:
            return i
    raise InputError(
        f"{path}: no header row with a date column found in the first 30 lines; "
        "the first row should name the columns, e.g. "
        "date,machine,test,energy,value,unit"
    )


# --- public entry point -------------------------------------------------------------


def read_measurements(path: str | Path, machine: str | None = None) -> ImportResult:
    """Read a QA measurement file of any supported layout.

    Parameters
    ----------
    path : str or Path
        CSV, TSV or XLSX file.
    machine : str, optional
        Machine name for a wide file without a machine column.

    Returns
    -------
    ImportResult
        Accepted measurements in :data:`COLUMNS`, events, and rejected rows.

    Raises
    ------
    InputError
        When the file cannot be read, required columns are missing or no row
        is usable; the message names the file and what to fix.
    """
    path = Path(path)
    grid = _read_grid(path)
    line_of_row = _line_numbers(path, grid)
    header_at = _find_header(grid, path)
    headers = [str(h).strip() for h in grid.iloc[header_at].tolist()]
    body = grid.iloc[header_at + 1 :].reset_index(drop=True)
    body.columns = _dedupe(headers)
    lines = line_of_row[header_at + 1 :]
    header_line = int(line_of_row[header_at])
    blank = (body.apply(lambda col: col.astype(str).str.strip()) == "").all(axis=1)
    body, lines = body[~blank.to_numpy()].reset_index(drop=True), lines[~blank]
    if body.empty:
        raise InputError(f"{path}: the header is there but there are no data rows")

    columns = list(body.columns)
    long_map = _map_columns(columns, _LONG_ALIASES)
    if {"date", "machine", "test", "value"} <= set(long_map):
        result = _read_long(path, body, lines, long_map)
    elif _dqa3_metric_columns(columns):
        result = _read_dqa3(path, body, lines)
    else:
        result = _read_wide(path, body, lines, long_map, machine, header_line)
    result.rows_read = len(body)
    if result.frame.empty and result.events.empty:
        shown = "; ".join(str(e) for e in result.errors[:5])
        raise InputError(
            f"{path}: no usable measurement in {len(body)} data rows"
            + (f" (first problems: {shown})" if shown else "")
        )
    result.errors.sort(key=lambda e: (e.line or 0, e.column or ""))
    return result


def _dedupe(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in headers:
        h = h or "unnamed"
        if h in seen:
            seen[h] += 1
            out.append(f"{h}.{seen[h]}")
        else:
            seen[h] = 0
            out.append(h)
    return out


# --- shared vectorised parsing -----------------------------------------------------


class _Rejects:
    """Collects per-row problems; a row with any problem is rejected whole."""

    def __init__(self, path: Path, lines: np.ndarray) -> None:
        self.path = str(path)
        self.lines = lines
        self.bad = np.zeros(len(lines), dtype=bool)
        self.errors: list[RowError] = []

    def add(self, mask: np.ndarray, column: str | None, reasons) -> None:
        """Reject rows where ``mask``; ``reasons`` is a str or per-row strings."""
        mask = np.asarray(mask, dtype=bool)
        for i in np.flatnonzero(mask):
            reason = reasons if isinstance(reasons, str) else reasons[i]
            self.errors.append(RowError(self.path, int(self.lines[i]), column, reason))
        self.bad |= mask


_UTC_OFFSET = re.compile(r"(?<=\d)(Z|[+-]\d{2}:?\d{2})$")


def _parse_dates(raw: pd.Series) -> pd.Series:
    """Parse ISO 8601 dates; an offset is dropped, keeping the local time as
    written (the clock time at the linac is what the QA record means)."""
    text = raw.astype(str).str.strip().str.replace(_UTC_OFFSET, "", regex=True)
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
    missing = parsed.isna() & (text != "")
    if missing.any():
        # Excel cells come back as "2024-01-02 00:00:00"; day-first forms are
        # deliberately not guessed (03/04 is ambiguous).
        retry = pd.to_datetime(text[missing], errors="coerce", format="mixed",
                               dayfirst=False)
        ambiguous = text[missing].str.match(r"^\d{1,2}[/.]\d{1,2}[/.]\d{2,4}")
        retry[ambiguous] = pd.NaT
        parsed[missing] = retry
    return parsed


def _map_unique(values: pd.Series, func) -> pd.Series:
    uniques = pd.unique(values)
    table = {u: func(u) for u in uniques}
    return values.map(table)


def _to_number(raw: pd.Series) -> pd.Series:
    text = raw.astype(str).str.strip().str.replace(",", ".", regex=False)
    return pd.to_numeric(text.replace("", np.nan), errors="coerce")


def _normalise_unit(unit: object) -> str:
    key = str(unit).strip()
    low = key.lower()
    if low in _UNITS:
        return _UNITS[low]
    return key


def _allowed_units(test: str) -> set[str]:
    default = TESTS[test][1]
    allowed = {default}
    if test == "couch":
        allowed.add("deg")
    return allowed


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame(columns=EVENT_COLUMNS)


# --- long layout ---------------------------------------------------------------------


def _read_long(path: Path, body: pd.DataFrame, lines: np.ndarray, cols: dict):
    rej = _Rejects(path, lines)
    n = len(body)
    get = lambda name: (  # noqa: E731
        body[cols[name]].astype(str).str.strip() if name in cols
        else pd.Series([""] * n)
    )
    date_raw, machine = get("date"), get("machine")
    test_raw, energy_raw = get("test"), get("energy")
    value_raw, unit_raw = get("value"), get("unit")
    base_raw, event_raw = get("baseline"), get("event")

    event = _map_unique(event_raw.str.lower(), lambda e: EVENT_KINDS.get(e, e or ""))
    unknown_event = (event != "") & ~event.isin(set(EVENT_KINDS.values()))
    rej.add(unknown_event.to_numpy(), cols.get("event"),
            [f"unknown event '{e}'; use baseline_reset" for e in event_raw])
    event_only = (event == "baseline_reset") & (value_raw == "")

    dates = _parse_dates(date_raw)
    rej.add((date_raw == "").to_numpy(), cols["date"],
            "date is empty; fill in the measurement date")
    rej.add((dates.isna() & (date_raw != "")).to_numpy(), cols["date"],
            [f"date '{d}' is not an ISO 8601 date (YYYY-MM-DD[ HH:MM])"
             for d in date_raw])
    rej.add((machine == "").to_numpy(), cols["machine"], "machine is empty")

    test = _map_unique(test_raw, canonical_test)
    bad_test = test.isna() & ~(event_only & (test_raw == ""))
    rej.add(bad_test.to_numpy(), cols["test"],
            [f"unknown test '{t}'; use a canonical name such as "
             f"{', '.join(list(TESTS)[:6])}, ..." for t in test_raw])

    energy = _map_unique(energy_raw, canonical_energy)
    rej.add(energy.isna().to_numpy(), cols.get("energy"),
            [f"energy '{e}' not recognised; write e.g. 6X, 10FFF, 9E or 6 MV"
             for e in energy_raw])

    values = _to_number(value_raw)
    measured = ~event_only
    rej.add((measured & (value_raw == "")).to_numpy(), cols["value"],
            "value is empty; fill in the measurement or delete the row")
    rej.add((measured & (value_raw != "") & ~np.isfinite(values)).to_numpy(),
            cols["value"], [f"value '{v}' is not a number; write a number such as 0.5"
             for v in value_raw])

    unit = _map_unique(unit_raw, _normalise_unit)
    if "unit" not in cols:
        unit = test.map(lambda t: TESTS[t][1] if isinstance(t, str) else "")
    baseline = _to_number(base_raw)
    raw_unit = unit.str.lower().isin(RAW_UNITS) | (
        ~unit.isin({"%", "mm", "cm", "deg", ""}) & (base_raw != "")
    )
    rej.add((measured & (unit == "")).to_numpy(), cols.get("unit"),
            "unit is empty; give %, mm, deg, or a raw unit with a baseline")
    rej.add((measured & raw_unit & (base_raw == "")).to_numpy(), cols.get("unit"),
            [f"unit '{u}' is a raw reading: add its baseline in a 'baseline' "
             "column so the percent deviation can be computed" for u in unit])
    rej.add((measured & (base_raw != "") & ~(np.isfinite(baseline)
            & (baseline != 0))).to_numpy(), cols.get("baseline"),
            [f"baseline '{b}' is not a non-zero number; give the reference "
             "reading of this raw unit" for b in base_raw])
    unknown_unit = measured & (unit != "") & ~raw_unit & ~unit.isin(
        {"%", "mm", "cm", "deg"})
    rej.add(unknown_unit.to_numpy(), cols.get("unit"),
            [f"unit '{u}' not recognised; use %, mm, cm, deg or a raw unit "
             "(cGy, nC, MU) with a baseline" for u in unit])

    # Raw readings become percent deviation from their baseline.
    pct = 100.0 * (values - baseline) / baseline
    final_value = values.where(~raw_unit, pct)
    final_unit = unit.where(~raw_unit, "%")
    cm = final_unit == "cm"
    final_value = final_value.where(~cm, values * 10.0)
    final_unit = final_unit.where(~cm, "mm")
    fits = [
        not isinstance(t, str) or u == "" or u in _allowed_units(t)
        for t, u in zip(test, final_unit, strict=True)
    ]
    misfit = measured & ~pd.Series(fits) & ~pd.Series(rej.bad)
    rej.add(misfit.to_numpy(), cols.get("unit"),
            [f"unit '{u}' does not fit test '{t}' (expected "
             f"{' or '.join(sorted(_allowed_units(t)))})" if isinstance(t, str)
             else "" for t, u in zip(test, final_unit, strict=True)])

    good = ~rej.bad
    keep = good & measured.to_numpy()
    frame = pd.DataFrame({
        "date": dates[keep].to_numpy(),
        "machine": machine[keep].to_numpy(),
        "test": test[keep].to_numpy(),
        "energy": energy[keep].fillna("").to_numpy(),
        "value": final_value[keep].to_numpy(dtype=float),
        "unit": final_unit[keep].to_numpy(),
        "raw_value": values.where(raw_unit)[keep].to_numpy(dtype=float),
        "raw_unit": unit.where(raw_unit)[keep].to_numpy(),
        "baseline": baseline.where(raw_unit)[keep].to_numpy(dtype=float),
        "source_line": lines[keep],
    })
    ev_mask = good & (event == "baseline_reset").to_numpy()
    events = pd.DataFrame({
        "date": dates[ev_mask].to_numpy(),
        "machine": machine[ev_mask].to_numpy(),
        "test": test[ev_mask].fillna("").to_numpy(),
        "energy": energy[ev_mask].fillna("").to_numpy(),
        "kind": "baseline_reset",
        "note": "",
        "source_line": lines[ev_mask],
    }) if ev_mask.any() else _empty_events()
    return ImportResult(str(path), "long", frame, events, rej.errors)


# --- wide layout ----------------------------------------------------------------------

_UNIT_IN_HEADER = re.compile(r"[\(\[]\s*(%|mm|cm|deg|degrees?|°)\s*[\)\]]", re.I)
_ENERGY_TOKEN = re.compile(
    r"(?<![a-z0-9])(\d+(?:\.\d+)?\s*(?:mv\s*fff|x\s*fff|fff|mv|mev|x|e))(?![a-z0-9])",
    re.I,
)


def _parse_wide_header(header: str) -> tuple[str | None, str, str | None]:
    """(test, energy, unit) from a header like '6X Output (%)' or 'Laser [mm]'."""
    unit = None
    m = _UNIT_IN_HEADER.search(header)
    text = header
    if m:
        unit = _normalise_unit(m.group(1).lower())
        text = _UNIT_IN_HEADER.sub(" ", text)
    energy = ""
    e = _ENERGY_TOKEN.search(text)
    if e:
        energy = canonical_energy(e.group(1)) or ""
        text = (text[: e.start()] + " " + text[e.end():]).strip(" -_:")
    return canonical_test(text), energy, unit


def _read_wide(path, body, lines, cols, machine_arg, header_line=1):
    rej = _Rejects(path, lines)
    headers_errors: list[RowError] = []
    used = {cols.get(k) for k in ("date", "machine", "energy")}
    test_columns = []
    for header in body.columns:
        if header in used or _norm(header) in {"comment", "comments", "notes",
                                                "note", "initials", "user", "by"}:
            continue
        test, energy, unit = _parse_wide_header(header)
        if test is None:
            headers_errors.append(RowError(
                str(path), header_line, header,
                "column not recognised as a QA test and not imported; rename it "
                "to a test name such as 'Output 6X (%)' or 'Laser (mm)'"))
            continue
        unit = unit or TESTS[test][1]
        if unit == "cm":
            pass
        elif unit not in _allowed_units(test):
            headers_errors.append(RowError(
                str(path), header_line, header,
                f"unit '{unit}' does not fit test '{test}'; column not imported"))
            continue
        test_columns.append((header, test, energy, unit))
    if not test_columns:
        raise InputError(
            f"{path}: not a recognised layout. A long file needs the columns "
            "date, machine, test, value, unit; a wide file needs a date column "
            "and test columns such as 'Output 6X (%)'; found: "
            + ", ".join(map(str, body.columns))
        )
    if "machine" not in cols and not machine_arg:
        raise InputError(
            f"{path}: wide layout without a 'machine' column; add one, or name "
            "the machine with --machine"
        )
    n = len(body)
    date_raw = body[cols["date"]].astype(str).str.strip()
    dates = _parse_dates(date_raw)
    rej.add((date_raw == "").to_numpy(), cols["date"],
            "date is empty; fill in the measurement date")
    rej.add((dates.isna() & (date_raw != "")).to_numpy(), cols["date"],
            [f"date '{d}' is not an ISO 8601 date (YYYY-MM-DD[ HH:MM])"
             for d in date_raw])
    if "machine" in cols:
        machine = body[cols["machine"]].astype(str).str.strip()
        rej.add((machine == "").to_numpy(), cols["machine"], "machine is empty")
    else:
        machine = pd.Series([machine_arg] * n)
    row_energy = pd.Series([""] * n)
    if "energy" in cols:
        row_energy = _map_unique(body[cols["energy"]].astype(str).str.strip(),
                                 canonical_energy)
        rej.add(row_energy.isna().to_numpy(), cols["energy"],
                "energy not recognised; write e.g. 6X, 10FFF, 9E or 6 MV")
    good = ~rej.bad
    parts = []
    any_value = np.zeros(n, dtype=bool)
    for header, test, energy, unit in test_columns:
        raw = body[header].astype(str).str.strip()
        any_value |= (raw != "").to_numpy()
        numbers = _to_number(raw)
        # Each cell is its own measurement: a bad cell is rejected alone.
        bad_cell = (raw != "") & ~np.isfinite(numbers)
        for i in np.flatnonzero(bad_cell.to_numpy() & good):
            rej.errors.append(RowError(str(path), int(lines[i]), header,
                                       f"value '{raw.iloc[i]}' is not a number"))
        # An empty cell means the test was not done that day: no measurement.
        keep = good & np.isfinite(numbers.to_numpy())
        if not keep.any():
            continue
        energies = (row_energy[keep].fillna("") if not energy
                    else pd.Series([energy] * int(keep.sum())))
        values = numbers[keep].to_numpy(dtype=float)
        if unit == "cm":
            values, unit_out = values * 10.0, "mm"
        else:
            unit_out = unit
        parts.append(pd.DataFrame({
            "date": dates[keep].to_numpy(),
            "machine": machine[keep].to_numpy(),
            "test": test,
            "energy": energies.to_numpy(),
            "value": values,
            "unit": unit_out,
            "raw_value": np.nan,
            "raw_unit": None,
            "baseline": np.nan,
            "source_line": lines[keep],
        }))
    for i in np.flatnonzero(good & ~any_value):
        rej.errors.append(RowError(str(path), int(lines[i]), None,
                                   "no test value in this row; nothing imported "
                                   "from it"))
    frame = (pd.concat(parts, ignore_index=True) if parts
             else pd.DataFrame(columns=COLUMNS))
    frame = frame.sort_values("source_line", kind="stable").reset_index(drop=True)
    return ImportResult(str(path), "wide", frame, _empty_events(),
                        headers_errors + rej.errors)


# --- Daily QA 3-style trend export -----------------------------------------------

_DQA3_METRICS = {
    "output": ("dose", "cax dose", "output"),
    "symmetry_inplane": ("axsym", "ax sym", "axial symmetry", "axialsym"),
    "symmetry_crossplane": ("trsym", "tr sym", "transverse symmetry", "transsym"),
    "flatness": ("qaflat", "qa flat", "flatness", "flat"),
    "energy": ("energy",),
}
_DQA3_ROLES = {
    "diff": ("diff", "difference", "change", "delta"),
    "baseline": ("baseline", "base", "ref", "reference"),
    "value": ("value", "measured", ""),
}


def _dqa3_metric_columns(columns: list[str]) -> dict[str, dict[str, str]]:
    """metric -> {role: header} for Daily QA 3-style columns."""
    found: dict[str, dict[str, str]] = {}
    for header in columns:
        key = _norm(header).replace(" %", "").replace("%", "").strip()
        for metric, prefixes in _DQA3_METRICS.items():
            for prefix in prefixes:
                if not key.startswith(prefix):
                    continue
                rest = key[len(prefix):].strip()
                for role, words in _DQA3_ROLES.items():
                    if rest in words:
                        if metric == "energy" and role == "value" and rest == "":
                            continue  # a bare "Energy" column is the beam energy
                        found.setdefault(metric, {}).setdefault(role, header)
                        break
                break
    # A Daily QA 3 export has at least one metric with a diff or baseline column.
    return {m: r for m, r in found.items() if {"diff", "baseline"} & set(r)}


_DQA3_ALIASES = {
    "date": _LONG_ALIASES["date"] | {"date time", "measured date time"},
    "machine": _LONG_ALIASES["machine"],
    "energy": {"energy", "beam energy", "nominal energy"},
    "beam_type": {"beam type", "type", "beam", "modality"},
    "accepted": {"accepted", "status"},
}


def _read_dqa3(path, body, lines):
    rej = _Rejects(path, lines)
    columns = list(body.columns)
    cols = _map_columns(columns, _DQA3_ALIASES)
    metrics = _dqa3_metric_columns(columns)
    missing = [c for c in ("date", "machine", "energy") if c not in cols]
    if missing:
        raise InputError(
            f"{path}: looks like a Daily QA 3 trend export but lacks the "
            f"column(s) {', '.join(missing)} (date-time, room/machine, energy)"
        )
    date_raw = body[cols["date"]].astype(str).str.strip()
    dates = _parse_dates(date_raw)
    rej.add((dates.isna()).to_numpy(), cols["date"],
            [f"date '{d}' is not a date-time" for d in date_raw])
    machine = body[cols["machine"]].astype(str).str.strip()
    rej.add((machine == "").to_numpy(), cols["machine"], "room/machine is empty")
    beam_kind = (body[cols["beam_type"]].astype(str).str.strip().str.lower()
                 if "beam_type" in cols else pd.Series([""] * len(body)))

    def energy_of(raw: str, kind: str) -> str | None:
        number = re.match(r"^\s*(\d+(?:\.\d+)?)", raw)
        base = canonical_energy(raw)
        if not number:
            return base
        num = number.group(1).removesuffix(".0")
        if "electron" in kind:
            return f"{num}E"
        if "fff" in kind:
            return f"{num}FFF"
        if "photon" in kind or kind in {"x", "xray", "x-ray"}:
            return base if base and base.endswith("FFF") else f"{num}X"
        return base

    energy = pd.Series([
        energy_of(e, k) for e, k in zip(body[cols["energy"]].astype(str), beam_kind,
                                        strict=True)
    ])
    rej.add(energy.isna().to_numpy(), cols["energy"],
            "beam energy not recognised; expected e.g. '6 MV' with a beam type")
    if "accepted" in cols:
        flag = body[cols["accepted"]].astype(str).str.strip().str.lower()
        not_accepted = ~flag.isin({"1", "true", "yes", "accepted", "y", ""})
        rej.add(not_accepted.to_numpy(), cols["accepted"],
                "record not accepted on the device; not imported")

    good = ~rej.bad
    parts = []
    for metric, roles in metrics.items():
        diff = _to_number(body[roles["diff"]]) if "diff" in roles else None
        value = _to_number(body[roles["value"]]) if "value" in roles else None
        base = _to_number(body[roles["baseline"]]) if "baseline" in roles else None
        if diff is None and (value is None or base is None):
            continue  # a baseline alone gives no measurement
        if diff is None:
            # Profile metrics are already in percent: percentage points.
            diff = (100.0 * (value - base) / base if metric == "output"
                    else value - base)
        elif value is not None and base is not None:
            fallback = (100.0 * (value - base) / base if metric == "output"
                        else value - base)
            diff = diff.where(np.isfinite(diff), fallback)
        present = (np.isfinite(diff.to_numpy())) & good
        if not present.any():
            continue
        parts.append(pd.DataFrame({
            "date": dates[present].to_numpy(),
            "machine": machine[present].to_numpy(),
            "test": metric,
            "energy": energy[present].to_numpy(),
            "value": diff[present].to_numpy(dtype=float),
            "unit": "%",
            "raw_value": (value[present].to_numpy(dtype=float)
                          if value is not None else np.nan),
            "raw_unit": None,
            "baseline": (base[present].to_numpy(dtype=float)
                         if base is not None else np.nan),
            "source_line": lines[present],
        }))
    # A good row with no metric value at all is reported, not skipped quietly.
    if parts:
        covered = np.zeros(len(body), dtype=bool)
        for part in parts:
            covered[np.searchsorted(lines, part["source_line"].to_numpy())] = True
        empty_rows = good & ~covered
    else:
        empty_rows = good
    for i in np.flatnonzero(empty_rows):
        rej.errors.append(RowError(str(path), int(lines[i]), None,
                                   "no dose, symmetry, flatness or energy value"))
    frame = (pd.concat(parts, ignore_index=True) if parts
             else pd.DataFrame(columns=COLUMNS))
    frame = frame.sort_values("source_line", kind="stable").reset_index(drop=True)
    return ImportResult(str(path), "dailyqa3", frame, _empty_events(), rej.errors)
