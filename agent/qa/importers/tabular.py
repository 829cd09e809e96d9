"""Reading CSV, TSV and XLSX files into a table of text cells under their header.

Nothing here knows the layouts: the grid is read as strings, the header is the
first row (of the first 30) that names a date, and each data row keeps the
file line it starts on, so rejections can name it.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agent.qa.importers.parsing import LONG_ALIASES, norm
from agent.qa.importers.records import InputError

SUPPORTED_SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx", ".xlsm"}
_EXCEL_SUFFIXES = {".xlsx", ".xlsm"}


@dataclass(frozen=True)
class Table:
    """The data rows of a file under their header.

    Attributes
    ----------
    body : pandas.DataFrame
        Non-blank data rows as text, columns named by the (de-duplicated) header.
    lines : numpy.ndarray
        File line (1-based) where each row of ``body`` starts.
    header_line : int
        File line of the header row.
    """

    body: pd.DataFrame
    lines: np.ndarray
    header_line: int


def read_table(path: Path) -> Table:
    """Read a file's header and its non-blank data rows.

    Parameters
    ----------
    path : Path
        CSV (comma, semicolon or tab), TSV or XLSX file.

    Returns
    -------
    Table
        The data rows, their file lines and the header line.

    Raises
    ------
    InputError
        When the file cannot be read, has no header naming a date in its first
        30 lines, or has no data row under the header.
    """
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
    return Table(body, lines, header_line)


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
        if suffix in _EXCEL_SUFFIXES:
            return _read_workbook(path)
        return _read_text(path)
    except InputError:
        raise
    except UnicodeDecodeError:
        raise InputError(
            f"{path}: not UTF-8 text; save the file as CSV UTF-8 and try again"
        ) from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read as a table ({first})") from None


def _read_workbook(path: Path) -> pd.DataFrame:
    """The first sheet of a workbook as strings, empty cells as ''."""
    try:
        grid = pd.read_excel(path, header=None, dtype=str, sheet_name=0)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise InputError(
            f"{path}: not a readable Excel workbook ({type(exc).__name__}); "
            "open it in Excel and save it again as .xlsx, or export CSV"
        ) from None
    return grid.fillna("")


def _read_text(path: Path) -> pd.DataFrame:
    """A delimited text file as strings, ragged rows padded with ''."""
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
    if path.suffix.lower() in _EXCEL_SUFFIXES:
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
    date_names = LONG_ALIASES["date"]
    for i in range(min(30, len(grid))):
        cells = {norm(c) for c in grid.iloc[i].tolist()}
        if cells & date_names:
            return i
    raise InputError(
        f"{path}: no header row with a date column found in the first 30 lines; "
        "the first row should name the columns, e.g. "
        "date,machine,test,energy,value,unit"
    )


def _dedupe(headers: list[str]) -> list[str]:
    """Header names made unique (``Value``, ``Value.1``, ...); blanks 'unnamed'."""
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
