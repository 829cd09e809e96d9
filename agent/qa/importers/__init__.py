"""Reading QA measurement files into one canonical table.

Three layouts are recognised from their header (README.md, "Input files"):

* **long** (the data contract): one row per measurement with
  ``date, machine, test, energy, value, unit[, baseline][, event]``;
* **wide**: one row per day (and machine/energy), one column per test, for
  example ``date, machine, 6X Output (%), Laser (mm)``;
* **Daily QA 3-style trend export**: date-time, room, energy, beam type and for
  dose, axial and transverse symmetry, flatness and energy a value, a
  baseline value and a difference.

Every row that cannot be used is reported as a :class:`RowError` with file,
line, column and reason, and the whole row is left out; nothing is dropped
silently. A file with no usable row raises :class:`InputError`.

The modules of the package:

* :mod:`~agent.qa.importers.records`: the result types and rejection bookkeeping;
* :mod:`~agent.qa.importers.parsing`: header names, dates, numbers, units;
* :mod:`~agent.qa.importers.tabular`: CSV/TSV/XLSX to text cells under a header;
* :mod:`~agent.qa.importers.long`, :mod:`~agent.qa.importers.wide`,
  :mod:`~agent.qa.importers.dqa3`: one reader per layout.
"""

from __future__ import annotations

from pathlib import Path

from agent.qa.importers.dqa3 import metric_columns, read_dqa3
from agent.qa.importers.long import read_long
from agent.qa.importers.parsing import (
    EVENT_KINDS,
    LONG_ALIASES,
    RAW_UNITS,
    map_columns,
)
from agent.qa.importers.records import (
    COLUMNS,
    EVENT_COLUMNS,
    ImportResult,
    InputError,
    ReadOptions,
    RowError,
)
from agent.qa.importers.tabular import SUPPORTED_SUFFIXES, Table, read_table
from agent.qa.importers.wide import read_wide

__all__ = [
    "COLUMNS",
    "EVENT_COLUMNS",
    "EVENT_KINDS",
    "RAW_UNITS",
    "SUPPORTED_SUFFIXES",
    "ImportResult",
    "InputError",
    "ReadOptions",
    "RowError",
    "read_measurements",
]

#: Long-layout columns a file needs to be read as the long layout.
_LONG_REQUIRED = {"date", "machine", "test", "value"}


def read_measurements(path: str | Path, machine: str | None = None,
                      options: ReadOptions | None = None) -> ImportResult:
    """Read a QA measurement file of any supported layout.

    Parameters
    ----------
    path : str or Path
        CSV, TSV or XLSX file.
    machine : str, optional
        Machine name for a wide file without a machine column (overrides
        ``options.machine``).
    options : ReadOptions, optional
        The department's time zone, date order and sheets (default: ISO dates,
        local time, every sheet).

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
    options = options or ReadOptions()
    machine = machine or options.machine
    table = read_table(path)
    result = _read_layout(path, table, machine)
    result.rows_read = len(table.body)
    if result.frame.empty and result.events.empty:
        shown = "; ".join(str(e) for e in result.errors[:5])
        raise InputError(
            f"{path}: no usable measurement in {len(table.body)} data rows"
            + (f" (first problems: {shown})" if shown else "")
        )
    result.errors.sort(key=lambda e: (e.line or 0, e.column or ""))
    return result


def _read_layout(path: Path, table: Table, machine: str | None) -> ImportResult:
    """Recognise the layout from the header and read the rows with its reader."""
    columns = list(table.body.columns)
    long_map = map_columns(columns, LONG_ALIASES)
    if set(long_map) >= _LONG_REQUIRED:
        return read_long(path, table.body, table.lines, long_map)
    if metric_columns(columns):
        return read_dqa3(path, table.body, table.lines)
    return read_wide(path, table.body, table.lines, long_map, machine,
                     table.header_line)
