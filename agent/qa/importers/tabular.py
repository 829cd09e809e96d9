"""Reading CSV, TSV and XLSX files into tables of text cells under their header.

Nothing here knows the layouts. A text file is one table; a workbook has one
table per sheet, and every sheet is read (or those of ``ReadOptions.sheets``);
a sheet that holds no measurement data is reported as skipped, with its name
and why. A table's header is the first row (of its first 30) that names a
date, and each data row keeps the line (sheet row) it starts on, so that
rejections name it; a sheet's rows are named ``book.xlsx[Sheet]``.

Text is read with the csv module in strict mode: a quoted field followed by
other text (``"0.5"1``) is never glued into a number. A quote that does not
close on its own line and would swallow the rows after it is reported at the
line it opens, with the number of lines it would swallow, and the lines after
it are read on their own (README.md, "Input files": what is rejected).
"""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd

from agent.qa.importers.parsing import DATE_YEARS, LONG_ALIASES, column_key
from agent.qa.importers.records import (
    ImportResult,
    InputError,
    NotMeasurementDataError,
    ReadOptions,
    RowError,
    merge_results,
    reject_overflow,
)

SUPPORTED_SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx", ".xlsm"}
_EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
_HEADER_SEARCH = 30


@dataclass(frozen=True)
class Table:
    """The data rows of one table (a text file or a sheet) under their header.

    Attributes
    ----------
    body : pandas.DataFrame
        Non-blank data rows as text, columns named by the (de-duplicated) header.
    lines : numpy.ndarray
        File line (sheet row, 1-based) where each row of ``body`` starts.
    header_line : int
        File line of the header row.
    source : str
        The name rejections give: the file, or ``book.xlsx[Sheet]``.
    sheet : str or None
        The sheet's name in a workbook; None for a text file.
    errors : tuple of RowError
        Data rows the cells could not be read from (an unbalanced quote), not
        in ``body``: they count as read and rejected.
    options : ReadOptions
        How to read the cells (``decimal_comma`` decided for this table).
    fields : numpy.ndarray or None
        How many fields each row of a text file has (None for a sheet), and
        ``header_fields`` how many the header has.
    """

    body: pd.DataFrame
    lines: np.ndarray
    header_line: int
    source: str = ""
    sheet: str | None = None
    errors: tuple[RowError, ...] = ()
    options: ReadOptions = field(default_factory=ReadOptions)
    fields: np.ndarray | None = None
    header_fields: int = 0


@dataclass
class Book:
    """Every table of a file, what was skipped and why, and the order of both."""

    tables: list[Table]
    skipped: list[RowError]
    labels: list[str]


def read_tables(path: Path, options: ReadOptions | None = None) -> Book:
    """Read every table of a file: the one of a text file, each sheet of a workbook.

    Parameters
    ----------
    path : Path
        CSV (comma, semicolon or tab), TSV or XLSX file.
    options : ReadOptions, optional
        The sheets to read (default: every one) and the decimal comma.

    Returns
    -------
    Book
        The tables, and each sheet not read with why (a :class:`RowError`
        whose file is ``book.xlsx[Sheet]``).

    Raises
    ------
    InputError
        When the file cannot be read; for a text file also when it has no
        header naming a date in its first 30 lines or no data row under it.
    """
    options = options or ReadOptions()
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"{path}: unsupported file type '{suffix or '(none)'}'; "
            "use CSV (.csv, .txt, .tsv) or Excel (.xlsx)"
        )
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if suffix in _EXCEL_SUFFIXES:
        return _read_workbook(path, options)
    sep, records, broken = _read_text(path)
    comma = options.decimal_comma
    opts = replace(options, decimal_comma=sep in ";\t" if comma is None else comma)
    table = _table(str(path), None, records, broken, opts, text=True)
    return Book([table], [], [str(path)])


def read_table(path: Path) -> Table:
    """The first table of a file with data (see :func:`read_tables`)."""
    book = read_tables(path)
    if not book.tables:
        raise InputError(f"{path}: no sheet holds measurement data ("
                         + "; ".join(e.reason for e in book.skipped) + ")")
    return book.tables[0]


def read_book(path: Path, options: ReadOptions,
              read_one: Callable[[Table], ImportResult]) -> ImportResult:
    """Read every table of a file with ``read_one`` and merge what they give.

    Parameters
    ----------
    path : Path
        The file.
    options : ReadOptions
        How to read it.
    read_one : callable
        Reads one table's rows (its layout's reader) and sets ``rows_read``;
        raises :class:`NotMeasurementDataError` for a table with no test.

    Returns
    -------
    ImportResult
        Every table's accepted rows and problems, screened
        (:func:`~agent.qa.importers.records.merge_results`).

    Raises
    ------
    InputError
        When the file, or one of its sheets, is unusable as a whole, or when
        no row of any table is usable; the message names what to fix.
    """
    book = read_tables(path, options)
    parts, headers, skipped = [], [], list(book.skipped)
    for table in book.tables:
        try:
            result = read_one(table)
        except NotMeasurementDataError as exc:
            if table.sheet is None:
                raise
            skipped.append(RowError(
                table.source, None, None,
                f"sheet skipped, no measurement data: {exc.reason}"))
            continue
        result.errors = list(table.errors) + result.errors
        result.rows_read += len(table.errors)
        if result.format in ("long", "wide") and table.fields is not None:
            reject_overflow(result, table.source, table.lines, table.fields,
                            table.header_fields)
        parts.append(result)
        headers.append(table.header_line)
    result = merge_results(str(path), parts, headers, skipped, book.labels)
    if result.frame.empty and result.events.empty:
        shown = "; ".join(str(e) for e in result.errors[:5])
        raise InputError(
            f"{path}: no usable measurement in {result.rows_read} data rows"
            + (f" (first problems: {shown})" if shown else "")
        )
    return result


# --- text files ------------------------------------------------------------------


def _read_text(path: Path) -> tuple[str, list, list]:
    """The delimiter, the records (line, cells) and the broken rows of a text file."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(
            f"{path}: not UTF-8 text; save the file as CSV UTF-8 and try again"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if not text.strip():
        raise InputError(f"{path}: the file is empty; export the QA data again")
    lines = io.StringIO(text, newline="").readlines()
    sep = _delimiter(path, lines)
    records, broken = _records(lines, sep)
    return sep, records, broken


def _delimiter(path: Path, lines: list[str]) -> str:
    """Tab for .tsv; else the one that splits the header into named columns.

    The header is the first line that, split by ',', ';' or tab, has a cell
    naming a date; the delimiter giving it the most cells wins (a decimal
    comma in the rows below does not count).
    """
    if path.suffix.lower() == ".tsv":
        return "\t"
    dates = LONG_ALIASES["date"]
    for line in lines[:_HEADER_SEARCH]:
        split = {sep: line.split(sep) for sep in (",", ";", "\t")}
        found = {sep: len(cells) for sep, cells in split.items()
                 if dates & {column_key(c.strip().strip('"')) for c in cells}}
        if found:
            return max(found, key=lambda sep: found[sep])
    try:
        return csv.Sniffer().sniff("".join(lines[:50]), delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def _records(lines: list[str], sep: str) -> tuple[list, list]:
    """Records (first line, cells) of strict CSV, and the rows that are not.

    A record that cannot be read (a quote that does not close, text after a
    closing quote) or whose quoted field swallows lines that look like rows
    is reported at its first line and skipped alone: reading resumes at the
    next line.
    """
    records: list[tuple[int, list[str]]] = []
    broken: list[tuple[int, int | None, str]] = []
    start, width = 0, 0
    while start < len(lines):
        reader = csv.reader(itertools.islice(lines, start, None), delimiter=sep,
                            strict=True)
        done = 0
        try:
            for cells in reader:
                if reader.line_num - done > 1:
                    first, span = start + done + 1, reader.line_num - done
                    if _swallows(lines[first:first + span - 1], sep, width):
                        raise csv.Error("a quoted field swallows rows")
                elif len(cells) > width:
                    width = len(cells)
                records.append((start + done + 1, cells))
                done = reader.line_num
            break
        except csv.Error as exc:
            first, end = start + done + 1, start + reader.line_num
            broken.append((first, _quoted_field(lines[first - 1], sep),
                           _quote_reason(str(exc), first, end, len(lines))))
            start = first
    return records, broken


def _swallows(continued: list[str], sep: str, width: int) -> bool:
    """Whether the lines a quoted field runs on look like rows of their own."""
    enough = max(2, width - 1)
    return any(line.count(sep) >= enough for line in continued)


def _quoted_field(line: str, sep: str) -> int | None:
    """Index of the field whose quote does not close, or is followed by text."""
    index, i, n = 0, 0, len(line.rstrip("\r\n"))
    while i < n:
        if line[i] == '"':
            close = line.find('"', i + 1)
            while close != -1 and close + 1 < n and line[close + 1] == '"':
                close = line.find('"', close + 2)
            if close == -1 or (close + 1 < n and line[close + 1] != sep):
                return index
            i = close + 1
        nxt = line.find(sep, i)
        if nxt == -1:
            return None
        index, i = index + 1, nxt + 1
    return None


def _quote_reason(error: str, first: int, end: int, total: int) -> str:
    """Why a record is not read, and what to do."""
    swallowed = end - first
    if swallowed == 0 and "expected after" in error:
        return ("a quoted field is followed by other text before the next "
                "delimiter (such as \"0.5\"1): quote the whole field or remove "
                "the quotes; this row is not imported")
    if "end of data" in error or "swallows" in error or swallowed:
        closes = ("to the end of the file" if end >= total and "end of" in error
                  else f"until line {end}")
        return (f"unbalanced quote: the quoted field that begins on this line does "
                f"not close on it and would swallow {swallowed} line(s) after it "
                f"({closes}); this row is not imported and the lines after it are "
                "read on their own: remove the stray '\"' or close the quote")
    return f"this line cannot be read as delimited text ({error}); not imported"


# --- workbooks -------------------------------------------------------------------


def _read_workbook(path: Path, options: ReadOptions) -> Book:
    """Every sheet of a workbook as a table, or skipped with why."""
    import openpyxl  # on first use: a command reading no workbook skips it

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # any failure of the parser on a damaged file (see below)
        raise _damaged(path) from None
    tables, skipped, labels = [], [], []
    opts = replace(options, decimal_comma=bool(options.decimal_comma))
    try:
        lost = [s for s in _listed_sheets(path) if s not in book.sheetnames]
        if lost:  # the parser leaves out a sheet whose data is missing
            raise InputError(f"{path}: damaged: the sheet(s) {', '.join(lost)} "
                             "are listed but their cells are missing; open it in "
                             "Excel and save it again as .xlsx, or export CSV")
        missing = [s for s in options.sheets if s not in book.sheetnames]
        if missing:
            raise InputError(f"{path}: no sheet named {', '.join(missing)}; its "
                             f"sheets are {', '.join(book.sheetnames)}")
        for name in book.sheetnames:
            label = f"{path}[{name}]"
            labels.append(label)
            try:
                tables.append(_sheet_table(book, name, label, opts))
            except NotMeasurementDataError as exc:
                skipped.append(RowError(label, None, None,
                                        f"sheet skipped: {exc.reason}"))
    except InputError:
        raise
    except Exception:  # why broad: a damaged member fails while its rows are read,
        # with whatever the zip, XML or cell parser raises (zlib.error,
        # BadZipFile, KeyError, ValueError, ...): the file is unusable either way.
        raise _damaged(path) from None
    finally:
        book.close()
    return Book(tables, skipped, labels)


def _listed_sheets(path: Path) -> list[str]:
    """The sheet names the workbook's own index (xl/workbook.xml) lists."""
    with zipfile.ZipFile(path) as archive:
        index = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    return [e.get("name", "") for e in index.iter() if e.tag.endswith("}sheet")]


def _damaged(path: Path) -> InputError:
    return InputError(
        f"{path}: cannot be read as an Excel workbook (damaged or not .xlsx); "
        "open it in Excel and save it again as .xlsx, or export it as CSV UTF-8")


def _sheet_table(book, name: str, label: str, options: ReadOptions) -> Table:
    """One sheet as a table; NotMeasurementDataError when it is none."""
    if options.sheets and name not in options.sheets:
        raise NotMeasurementDataError(label, "not in the 'sheets' setting ("
                                      + ", ".join(options.sheets) + ")")
    sheet = book[name]
    if not hasattr(sheet, "iter_rows"):
        raise NotMeasurementDataError(label, "a chart sheet, no cells")
    sheet.reset_dimensions()  # a stale size tag must not cut rows or columns
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    records = [(i, [_cell_text(v) for v in row]) for i, row in enumerate(rows, 1)]
    if not any(any(cells) for _, cells in records):
        raise NotMeasurementDataError(label, "the sheet is empty")
    header_at = _find_header(records, label)
    _serial_dates(rows, records, header_at, book.epoch)
    return _table(label, name, records, [], options)


def _cell_text(value: object) -> str:
    """A workbook cell as the text a CSV export would hold (a number exactly)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _serial_dates(rows: list, records: list, header_at: int, epoch) -> None:
    """Numbers in the date columns as the dates they are (Excel serial dates).

    Excel keeps a date as a day count; a date cell that lost its format
    shows the count (45293 is 2024-01-02). A count outside the years of QA
    records (:data:`DATE_YEARS`) is left as a number, which the date parser
    rejects with the reason.
    """
    from openpyxl.utils.datetime import from_excel

    dates = LONG_ALIASES["date"]
    columns = [j for j, h in enumerate(records[header_at][1]) if column_key(h) in dates]
    for row, (_, cells) in zip(rows[header_at + 1:], records[header_at + 1:],
                               strict=True):
        for j in columns:
            value = row[j] if j < len(row) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                try:
                    when = from_excel(value, epoch)
                except (ValueError, OverflowError, TypeError):
                    continue
                if isinstance(when, datetime) and (
                        DATE_YEARS[0] <= when.year <= DATE_YEARS[1]):
                    cells[j] = when.isoformat(sep=" ")


# --- one table -------------------------------------------------------------------


def _table(source: str, sheet: str | None, records: list, broken: list,
           options: ReadOptions, text: bool = False) -> Table:
    """The data rows under the header, padded; blank rows left out."""
    header_at = _find_header(records, source, _mapped_date(options))
    header_line, headers = records[header_at]
    width = max(len(cells) for _, cells in records)
    names = _dedupe([h.strip() for h in headers] + [""] * (width - len(headers)))
    body_rows, lines, fields = [], [], []
    for line, cells in records[header_at + 1:]:
        if "".join(cells).strip():
            n = len(cells)
            body_rows.append(cells if n == width else cells + [""] * (width - n))
            lines.append(line)
            fields.append(n)
    errors = tuple(
        RowError(source, line, names[col] if col is not None and col < width
                 else None, reason)
        for line, col, reason in broken if line > header_line)
    if not body_rows and not errors:
        raise NotMeasurementDataError(
            source, "the header is there but there are no data rows")
    body = pd.DataFrame(body_rows, columns=names, dtype=object)
    return Table(body, np.asarray(lines, dtype=int), header_line, source, sheet,
                 errors, options, np.asarray(fields, dtype=int) if text else None,
                 len(headers))


def _mapped_date(options: ReadOptions) -> set[str]:
    """The columns a confirmed mapping names, as header keys: its header row
    is the one naming them (a wrong name is then reported by the mapping)."""
    mapping = options.mapping
    return {column_key(c) for c in mapping.columns.values()} if mapping else set()


def _find_header(records: list, source: str, more: set[str] = frozenset()) -> int:
    """Index of the header record: the first of the first 30 naming a date
    (or the mapping's date column), preferring one that names three columns or
    more (a report's filter line such as "Work Completed:, 29 Mar 2024 - 07 May
    2024" stands above)."""
    date_names = LONG_ALIASES["date"] | more
    named = [i for i, (_, cells) in enumerate(records[:_HEADER_SEARCH])
             if {column_key(c) for c in cells} & date_names]
    wide = [i for i in named if sum(bool(c.strip()) for c in records[i][1]) >= 3]
    if named:
        return (wide or named)[0]
    raise NotMeasurementDataError(
        source, "no header row with a date column found in the first 30 lines; "
        "the first row should name the columns, e.g. "
        "date,machine,test,energy,value,unit")


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
