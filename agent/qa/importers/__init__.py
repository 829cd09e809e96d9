"""Reading QA measurement files into one canonical table.

The layouts are recognised from their header (README.md, "Input files"):

* **long** (the data contract): one row per measurement with
  ``date, machine, test, energy, value, unit[, baseline][, event]``;
* **wide**: one row per day (and machine/energy), one column per test, for
  example ``date, machine, 6X Output (%), Laser (mm)``;
* **Daily QA 3-style trend export**: date-time, room, energy, beam type and for
  dose, axial and transverse symmetry, flatness and energy a value, a
  baseline value and a difference; Sun Nuclear Daily QA 3 / Atlas trend data
  with the column names of QATrack+'s QCPump queries (``work_started``,
  ``machine_name``, ``beam_energy``, ``dose_diff``, ...);
* **QATrack+ Test Instance Details report**: ``Work Completed, Test, Unit,
  Site, Value, Reference, Tolerance, ...`` (``Unit`` is the machine);
* **Varian MPC TDS tree** (a folder or ``.zip`` of check folders, each with a
  ``Results.csv``): :mod:`~agent.qa.importers.mpc`, recognised by the path.

Every row that cannot be used is reported as a :class:`RowError` with file,
line, column and reason, and the whole row is left out; nothing is dropped
silently. A file with no usable row raises :class:`InputError`.

The modules of the package:

* :mod:`~agent.qa.importers.records`: the result types and rejection bookkeeping;
* :mod:`~agent.qa.importers.parsing`: header names, dates, numbers, units;
* :mod:`~agent.qa.importers.tabular`: CSV/TSV/XLSX to text cells under a header;
* :mod:`~agent.qa.importers.long`, :mod:`~agent.qa.importers.wide`,
  :mod:`~agent.qa.importers.dqa3`, :mod:`~agent.qa.importers.qatrack`: one
  reader per layout.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agent.qa.importers.dqa3 import metric_columns, read_dqa3
from agent.qa.importers.long import read_long
from agent.qa.importers.mapping import ColumnMapping, proposal_for
from agent.qa.importers.mpc import TreeResult, is_mpc_input, read_mpc
from agent.qa.importers.parsing import (
    EVENT_KINDS,
    LONG_ALIASES,
    RAW_UNITS,
    map_columns,
)
from agent.qa.importers.qatrack import is_qatrack, qatrack_table, read_qatrack
from agent.qa.importers.records import (
    COLUMNS,
    EVENT_COLUMNS,
    ImportResult,
    InputError,
    ReadOptions,
    RowError,
)
from agent.qa.importers.tabular import SUPPORTED_SUFFIXES, Table, read_book
from agent.qa.importers.wide import read_wide

__all__ = [
    "COLUMNS",
    "EVENT_COLUMNS",
    "EVENT_KINDS",
    "RAW_UNITS",
    "SUPPORTED_SUFFIXES",
    "ColumnMapping",
    "ImportResult",
    "InputError",
    "ReadOptions",
    "RowError",
    "TreeResult",
    "is_mpc_input",
    "read_measurements",
]

#: Long-layout columns a file needs to be read as the long layout.
_LONG_REQUIRED = {"date", "machine", "test", "value"}


def read_measurements(path: str | Path, machine: str | None = None,
                      options: ReadOptions | None = None, *,
                      registry: dict[str, str] | None = None,
                      leaves: bool = False) -> ImportResult:
    """Read a QA measurement file of any supported layout.

    Parameters
    ----------
    path : str or Path
        CSV, TSV or XLSX file; or a Varian MPC tree (a folder, a ``.zip``, or
        a ``Results.csv`` in a check folder), read by
        :func:`~agent.qa.importers.mpc.read_mpc` (``registry``: serial ->
        machine, default ``options.serials``; ``leaves``: keep
        each MLC leaf as a series; ``machine`` is not used: MPC names the
        machine by its serial).
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
    if is_mpc_input(path):
        known = dict(options.serials) if registry is None else registry
        return read_mpc(path, registry=known, leaves=leaves)
    machine = machine or options.machine
    # Every table: a text file's one, each sheet of a workbook (tabular.py).
    try:
        return read_book(path, options, lambda table: _read_table(table, machine))
    except InputError as exc:
        proposal = None if options.mapping is not None else proposal_for(path)
        if proposal is None or not proposal.mapping.columns:
            raise
        raise InputError(f"{exc}. Proposed column mapping (check it): "
                         f"{proposal.text()}. To import with it: qa-agent import "
                         f"{path} {proposal.as_options()} (add --save-profile NAME "
                         "to keep it for the next export)") from None


def _read_table(table: Table, machine: str | None) -> ImportResult:
    """One table (a text file, a sheet) read by the reader of its layout."""
    source, options = Path(table.source), table.options
    if options.mapping is not None:  # a confirmed mapping: the long layout's names
        table = replace(table, body=options.mapping.apply(table.body, table.source))
    table = qatrack_table(table) or table  # a report's title lines stand above
    result = _read_layout(source, table, machine, options)
    result.rows_read = len(table.body)
    return result


def _read_layout(path: Path, table: Table, machine: str | None,
                 options: ReadOptions) -> ImportResult:
    """Recognise the layout from the header and read the rows with its reader."""
    columns = list(table.body.columns)
    if is_qatrack(columns):
        return read_qatrack(path, table.body, table.lines, options)
    long_map = map_columns(columns, LONG_ALIASES)
    if set(long_map) >= _LONG_REQUIRED:
        return read_long(path, table.body, table.lines, long_map, options)
    if metric_columns(columns):
        return read_dqa3(path, table.body, table.lines, options)
    return read_wide(path, table.body, table.lines, long_map, machine,
                     table.header_line, options)
