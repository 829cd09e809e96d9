"""What an import produces: the canonical tables, rejected rows and their bookkeeping.

A row with any problem is rejected whole and reported as a :class:`RowError`
with file, line, column and reason (README.md, "Input files"); a file that
cannot be used at all raises :class:`InputError`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agent.errors import UserError
from agent.qa.importers.values import (
    NAME_LIMITS,
    name_problem,
    raw_out_of_range,
    raw_reason,
    value_reason,
    values_out_of_range,
)

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
#: Columns of the event table (baseline resets).
EVENT_COLUMNS = ["date", "machine", "test", "energy", "kind", "note", "source_line"]


@dataclass(frozen=True)
class ReadOptions:
    """How to read a department's files; from the settings (``read_options``).

    Attributes
    ----------
    timezone : str
        The department's time zone (IANA name, e.g. ``Australia/Sydney``):
        a time written with an offset is converted to it, never dropped.
        Empty: the machine's local zone.
    date_order : {"iso", "day-first", "month-first"}
        How a date that is not ISO 8601 is read; never guessed.
    sheets : tuple of str
        Workbook sheets to read (empty: every sheet).
    machine : str or None
        Machine name for a file without a machine column.
    energy : str or None
        Beam energy of every beam test (output, flatness, ...) of a file
        without an energy column; without it such a file is refused.
    decimal_comma : bool or None
        Whether ``1,234`` is 1.234 (a decimal comma) rather than ambiguous.
        None: decided by the file, yes for ';'- or tab-separated text (the
        European exports), no for comma-separated text and workbooks.
    serials : tuple of (str, str)
        (serial, machine) pairs of the machine registry: how an MPC check
        folder (``NDS-WKS-SN<serial>-...``) finds its machine.
    mapping : ColumnMapping or None
        A confirmed column mapping for an export the readers do not know
        (:mod:`agent.qa.importers.mapping`).
    """

    timezone: str = ""
    date_order: str = "iso"
    sheets: tuple[str, ...] = ()
    machine: str | None = None
    energy: str | None = None
    decimal_comma: bool | None = None
    serials: tuple[tuple[str, str], ...] = ()
    mapping: Any = None


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


class NotMeasurementDataError(InputError):
    """A table (a CSV file, a workbook's sheet) that holds no measurement data.

    In a workbook the sheet is reported as skipped and the other sheets are
    read; a text file with nothing to read is an :class:`InputError`.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass
class ImportResult:
    """Measurements read from one file, and what was rejected."""

    file: str
    format: str
    frame: pd.DataFrame
    events: pd.DataFrame
    errors: list[RowError] = field(default_factory=list)
    rows_read: int = 0
    #: Data rows with a problem, when counted by the reader of a whole file
    #: (several sheets); else counted from ``errors``.
    rejected: int | None = None

    @property
    def rows_rejected(self) -> int:
        """Number of distinct rejected data lines."""
        if self.rejected is not None:
            return self.rejected
        return len({e.line for e in self.errors if e.line is not None and e.line > 1})

    def summary(self) -> str:
        """One-line human summary."""
        return (
            f"{self.file}: {self.format} format, {self.rows_read} data rows read, "
            f"{len(self.frame)} measurements accepted, "
            f"{self.rows_rejected} rows rejected"
            + (f", {len(self.events)} events" if len(self.events) else "")
        )


class Rejects:
    """Collects per-row problems; a row with any problem is rejected whole.

    Parameters
    ----------
    path : Path
        The file being read, named in every :class:`RowError`.
    lines : numpy.ndarray
        File line of each data row (1-based), in row order.
    """

    def __init__(self, path: Path, lines: np.ndarray) -> None:
        self.path = str(path)
        self.lines = lines
        self.bad = np.zeros(len(lines), dtype=bool)
        self.errors: list[RowError] = []

    def add(self, mask: np.ndarray, column: str | None, reasons) -> None:
        """Reject rows where ``mask``; ``reasons`` is a str, per-row strings, or
        a function of the row's position giving its reason."""
        mask = np.asarray(mask, dtype=bool)
        for i in np.flatnonzero(mask):
            reason = (reasons if isinstance(reasons, str)
                      else reasons(i) if callable(reasons) else reasons[i])
            self.errors.append(RowError(self.path, int(self.lines[i]), column, reason))
        self.bad |= mask

    def note(self, row: int, column: str | None, reason: str) -> None:
        """Report a problem of row ``row`` without rejecting the rest of the row."""
        self.errors.append(RowError(self.path, int(self.lines[row]), column, reason))


def empty_events() -> pd.DataFrame:
    """An event table with no rows.

    Returns
    -------
    pandas.DataFrame
        Empty frame with :data:`EVENT_COLUMNS`.
    """
    return pd.DataFrame(columns=EVENT_COLUMNS)


def frame_from_parts(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Measurements of several columns (or metrics) as one table in file order.

    Parameters
    ----------
    parts : list of pandas.DataFrame
        Measurement frames with :data:`COLUMNS`; may be empty.

    Returns
    -------
    pandas.DataFrame
        The parts concatenated and sorted by ``source_line`` (stable, so the
        column order is kept within a line).
    """
    frame = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    )
    return frame.sort_values("source_line", kind="stable").reset_index(drop=True)


# --- one file's result from its tables, screened ---------------------------------

#: Internal columns of a merged frame: the table (sheet) a row comes from and
#: the header of the cell its value was read from.
SOURCE, CELL = "_source", "_column"
#: What identifies one measurement (the store's series and time).
_KEY = ["machine", "test", "energy", "unit", "date"]


def _when(date: pd.Timestamp) -> str:
    return str(date.date()) if date == date.normalize() else str(date)


def _cell(header: object) -> str:
    """The header a value was read from ('value' when the reader did not say)."""
    return header if isinstance(header, str) and header else "value"


def conflicting_repeats(frame: pd.DataFrame) -> tuple[np.ndarray, list[RowError]]:
    """Rows of one file that give one measurement two different values.

    Rows with the same machine, test, energy, unit and date-time are repeats;
    identical repeats are kept (the store numbers them), but a measurement
    cannot have two values, so every row of such a group is rejected, each
    naming the others: which one is right is not for the importer to guess.

    Parameters
    ----------
    frame : pandas.DataFrame
        Measurements with :data:`SOURCE` and, optionally, :data:`CELL`.

    Returns
    -------
    tuple
        Mask of the rejected rows, and one :class:`RowError` per row.
    """
    bad = np.zeros(len(frame), dtype=bool)
    pos = np.flatnonzero(frame.duplicated(_KEY, keep=False).to_numpy())
    if not pos.size:
        return bad, []
    sub = frame.iloc[pos]
    groups = sub.groupby(_KEY, sort=False, dropna=False)
    differ = groups["value"].transform("nunique").to_numpy() > 1
    ids = groups.ngroup().to_numpy()[differ]
    pos = pos[differ]
    col = frame.columns.get_loc
    errors = []
    for group in pd.unique(ids):
        members = pos[ids == group]
        for i in members:
            row = frame.iloc[i]
            others = [f"{float(frame.iat[j, col('value')])!r} on line "
                      f"{frame.iat[j, col('source_line')]}"
                      + ("" if frame.iat[j, col(SOURCE)] == row[SOURCE]
                         else f" of {frame.iat[j, col(SOURCE)]}")
                      for j in members if j != i]
            what = " ".join(p for p in (row["machine"], row["test"], row["energy"])
                            if p)
            value = float(row["value"])
            errors.append(RowError(
                row[SOURCE], int(row["source_line"]), _cell(row.get(CELL)),
                f"{what} at {_when(row['date'])}: value {value!r} here but "
                f"{', '.join(others)}; one measurement cannot have two values, "
                "so neither is imported: correct or delete the wrong row (a true "
                "repeat needs its own time)"))
        bad[members] = True
    return bad, errors


def screen(frame: pd.DataFrame) -> tuple[np.ndarray, list[RowError]]:
    """Rows whose names or values the store cannot keep, and repeat conflicts.

    Every reader checks its own cells (naming the file's columns); this is
    the last check of every accepted row before the store, whatever reader
    made it: names (:func:`name_problem`), values (:func:`values_out_of_range`),
    raw readings and baselines (:func:`raw_out_of_range`), then
    :func:`conflicting_repeats`.

    Parameters
    ----------
    frame : pandas.DataFrame
        Measurements (:data:`COLUMNS`) with :data:`SOURCE`.

    Returns
    -------
    tuple
        Mask of the rejected rows, and their :class:`RowError`.
    """
    bad = np.zeros(len(frame), dtype=bool)
    errors: list[RowError] = []

    def reject(mask: np.ndarray, column: str, reasons) -> None:
        mask = np.asarray(mask, dtype=bool)
        for i in np.flatnonzero(mask & ~bad):
            errors.append(RowError(frame[SOURCE].iat[i],
                                   int(frame["source_line"].iat[i]), column,
                                   reasons(i)))
        bad[mask] = True

    for column in NAME_LIMITS:
        if column in frame:
            problems = {u: why for u in pd.unique(frame[column])
                        if isinstance(u, str) and (why := name_problem(u, column))}
            found = frame[column].map(problems)
            reject(found.notna().to_numpy(), column, lambda i, f=found: f.iat[i])
    value = frame["value"].to_numpy(dtype=float)
    reject(values_out_of_range(value, frame["unit"]), "value",
           lambda i: value_reason(value[i], frame["unit"].iat[i]))
    is_raw = frame["raw_unit"].map(lambda u: isinstance(u, str)).to_numpy(dtype=bool)
    for column in ("raw_value", "baseline"):
        numbers = frame[column].to_numpy(dtype=float)
        out = is_raw & raw_out_of_range(numbers, frame["raw_unit"])
        reject(out & ~np.isnan(numbers), column,
               lambda i, n=numbers: raw_reason(n[i], frame["raw_unit"].iat[i]))
    keep = ~bad
    conflicts, more = conflicting_repeats(frame[keep])
    bad[np.flatnonzero(keep)[conflicts]] = True
    return bad, errors + more


def event_problems(events: pd.DataFrame) -> tuple[np.ndarray, list[RowError]]:
    """Events (baseline resets) whose names the store cannot keep."""
    bad = np.zeros(len(events), dtype=bool)
    errors = []
    for column in ("machine", "test", "energy"):
        for i, name in enumerate(events[column]):
            problem = None if bad[i] else name_problem(name, column)
            if problem:
                bad[i] = True
                errors.append(RowError(events[SOURCE].iat[i],
                                       int(events["source_line"].iat[i]), column,
                                       problem))
    return bad, errors


def merge_results(file: str, parts: list[ImportResult], header_lines: list[int],
                  notes: list[RowError], labels: list[str]) -> ImportResult:
    """One file's result from the results of its tables (sheets), screened.

    Parameters
    ----------
    file : str
        The file, named in the result.
    parts : list of ImportResult
        One per table read, each named by its table (``book.xlsx[Data]``) and
        with ``rows_read`` set.
    header_lines : list of int
        Header line of each part's table: problems on or above it are no
        rejected data rows.
    notes : list of RowError
        What was not read at all (sheets skipped, with why).
    labels : list of str
        Every table's name in file order, for the order of the problems.

    Returns
    -------
    ImportResult
        The accepted rows of every part that pass :func:`screen`, and every
        problem in file order.
    """
    frames = [p.frame.assign(**{SOURCE: p.file}) for p in parts if len(p.frame)]
    frame = (pd.concat(frames, ignore_index=True) if frames
             else pd.DataFrame(columns=[*COLUMNS, SOURCE]))
    bad, found = screen(frame)
    event_parts = [p.events.assign(**{SOURCE: p.file}) for p in parts
                   if len(p.events)]
    events = (pd.concat(event_parts, ignore_index=True) if event_parts
              else empty_events().assign(**{SOURCE: ""}))
    bad_events, event_errors = event_problems(events)
    errors = [e for p in parts for e in p.errors] + found + event_errors
    rejected = sum(
        len({e.line for e in errors if e.file == p.file and e.line is not None
             and e.line > header})
        for p, header in zip(parts, header_lines, strict=True))
    order = {label: i for i, label in enumerate(labels)}
    every = notes + errors
    every.sort(key=lambda e: (order.get(e.file, len(order)), e.line or 0,
                              e.column or ""))
    formats = "+".join(dict.fromkeys(p.format for p in parts))
    internal = [SOURCE, CELL]
    return ImportResult(
        file, formats if len(formats) <= 20 else "mixed",
        frame[~bad].drop(columns=internal, errors="ignore").reset_index(drop=True),
        events[~bad_events].drop(columns=internal, errors="ignore")
        .reset_index(drop=True),
        every, rows_read=sum(p.rows_read for p in parts), rejected=rejected)


def reject_headerless(rej: Rejects, body: pd.DataFrame) -> None:
    """Reject rows with a cell right of the last column the header names.

    Such a cell cannot be placed; in a comma-separated file it mostly comes
    from a decimal comma that split a value in two (``0,5`` read as 0 and 5),
    which shifts every cell after it, so the whole row is refused.

    Parameters
    ----------
    rej : Rejects
        Where the rows are rejected.
    body : pandas.DataFrame
        Data rows under their header (blank headers are ``unnamed``).
    """
    names = [str(n) for n in body.columns]
    named = [i for i, n in enumerate(names) if not n.startswith("unnamed")]
    extra = names[(named[-1] + 1 if named else 0):]
    if not extra or body.empty:
        return
    filled = body[extra].astype(str).apply(lambda c: c.str.strip() != "").to_numpy()
    width = len(names) - len(extra)
    reasons = [
        f"this row has {width + int(np.flatnonzero(row)[-1]) + 1} cells but the "
        f"header names {width}: a decimal comma in a comma-separated file (write "
        "0.5, or quote \"0,5\") or a cell without a header; the row is not imported"
        if row.any() else "" for row in filled]
    rej.add(filled.any(axis=1), "(no header)", reasons)


def reject_overflow(result: ImportResult, source: str, lines: np.ndarray,
                    fields: np.ndarray, header_fields: int) -> None:
    """Rows of a text file with more fields than the header are not imported.

    Even when the extra fields are empty: a decimal comma in a comma-separated
    file (``0,5``) splits a value in two and shifts every cell after it,
    perhaps into a column the layout does not read (the long and wide layouts).

    Parameters
    ----------
    result : ImportResult
        What the table's reader accepted; its rows on those lines are dropped.
    source : str
        The table's name in the rejections.
    lines, fields : numpy.ndarray
        Each data row's line and number of fields.
    header_fields : int
        The header's number of fields.
    """
    over = fields > header_fields
    if not over.any():
        return
    told = {e.line for e in result.errors if e.column == "(no header)"}
    for line, n in zip(lines[over], fields[over], strict=True):
        if int(line) not in told:
            result.errors.append(RowError(
                source, int(line), "(no header)",
                f"this row has {n} fields but the header has {header_fields}: a "
                "decimal comma in a comma-separated file (write 0.5, or quote "
                "\"0,5\"), or a delimiter too many; the row is not imported"))
    result.frame = result.frame[~result.frame["source_line"].isin(lines[over])]
    result.events = result.events[~result.events["source_line"].isin(lines[over])]
