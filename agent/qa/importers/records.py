"""What an import produces: the canonical tables, rejected rows and their bookkeeping.

A row with any problem is rejected whole and reported as a :class:`RowError`
with file, line, column and reason (README.md, "Input files"); a file that
cannot be used at all raises :class:`InputError`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agent.errors import UserError

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
    """

    timezone: str = ""
    date_order: str = "iso"
    sheets: tuple[str, ...] = ()
    machine: str | None = None


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
        """Reject rows where ``mask``; ``reasons`` is a str or per-row strings."""
        mask = np.asarray(mask, dtype=bool)
        for i in np.flatnonzero(mask):
            reason = reasons if isinstance(reasons, str) else reasons[i]
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
