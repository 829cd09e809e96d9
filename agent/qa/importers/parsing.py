"""Parsing shared by the readers: header names, dates, numbers, units and events."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from agent.qa.importers.records import Rejects
from agent.vocabulary import TESTS

#: Spellings of the event column, mapped to the event kind.
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

#: Header names (after :func:`norm`) of the long layout's columns.
LONG_ALIASES = {
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

_UTC_OFFSET = re.compile(r"(?<=\d)(Z|[+-]\d{2}:?\d{2})$")


def norm(name: object) -> str:
    """Header name in lower case with punctuation as single spaces ('%' kept).

    Parameters
    ----------
    name : object
        A header cell.

    Returns
    -------
    str
        The normalised name, e.g. ``"Output 6X (%)"`` -> ``"output 6x %"``.
    """
    return re.sub(r"[^a-z0-9%]+", " ", str(name).strip().lower()).strip()


def map_columns(headers: list[str], aliases: dict[str, set[str]]) -> dict[str, str]:
    """Canonical name -> actual header, for headers matching an alias.

    Parameters
    ----------
    headers : list of str
        Header row, in file order.
    aliases : dict of str to set of str
        Canonical column name -> normalised spellings that mean it.

    Returns
    -------
    dict of str to str
        The first matching header for each canonical name that was found.
    """
    found: dict[str, str] = {}
    for header in headers:
        key = norm(header)
        for canonical, names in aliases.items():
            if key in names and canonical not in found:
                found[canonical] = header
    return found


def parse_dates(raw: pd.Series) -> pd.Series:
    """Parse ISO 8601 dates, keeping the local time as written.

    An offset (``Z``, ``+02:00``) is dropped: the clock time at the linac is
    what the QA record means. Excel's ``2024-01-02 00:00:00`` is accepted;
    day-first forms such as ``03/04/2024`` are deliberately not guessed.

    Parameters
    ----------
    raw : pandas.Series
        Date cells as text.

    Returns
    -------
    pandas.Series
        Timestamps, ``NaT`` where a cell is empty or not a date.
    """
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


def parse_date_column(rej: Rejects, raw: pd.Series, column: str) -> pd.Series:
    """Parse the date column of a long or wide file, rejecting unusable dates.

    Parameters
    ----------
    rej : Rejects
        Where empty and unparseable dates are recorded.
    raw : pandas.Series
        Stripped date cells.
    column : str
        Header of the date column, named in the rejections.

    Returns
    -------
    pandas.Series
        Parsed dates (see :func:`parse_dates`).
    """
    dates = parse_dates(raw)
    rej.add((raw == "").to_numpy(), column,
            "date is empty; fill in the measurement date")
    rej.add((dates.isna() & (raw != "")).to_numpy(), column,
            [f"date '{d}' is not an ISO 8601 date (YYYY-MM-DD[ HH:MM])"
             for d in raw])
    return dates


def map_unique(values: pd.Series, func: Callable[[str], object]) -> pd.Series:
    """Apply ``func`` once per distinct value (cells repeat a lot in QA files).

    Parameters
    ----------
    values : pandas.Series
        Cells to map.
    func : callable
        Mapping of one cell.

    Returns
    -------
    pandas.Series
        ``func`` of each cell.
    """
    uniques = pd.unique(values)
    table = {u: func(u) for u in uniques}
    return values.map(table)


def to_number(raw: pd.Series) -> pd.Series:
    """Cells as floats; a decimal comma is accepted, empty or bad cells are NaN.

    Parameters
    ----------
    raw : pandas.Series
        Value cells.

    Returns
    -------
    pandas.Series
        Numbers, NaN where a cell is empty or not a number.
    """
    text = raw.astype(str).str.strip().str.replace(",", ".", regex=False)
    return pd.to_numeric(text.replace("", np.nan), errors="coerce")


def normalise_unit(unit: object) -> str:
    """Canonical spelling of a unit (``%``, ``mm``, ``cm``, ``deg``) or as written.

    Parameters
    ----------
    unit : object
        A unit cell or the unit in a header.

    Returns
    -------
    str
        The canonical unit, or the stripped text when it is not one of them.
    """
    key = str(unit).strip()
    low = key.lower()
    if low in _UNITS:
        return _UNITS[low]
    return key


def allowed_units(test: str) -> set[str]:
    """Units a test's values may be given in.

    Parameters
    ----------
    test : str
        Canonical test name (a key of ``agent.vocabulary.TESTS``).

    Returns
    -------
    set of str
        The test's own unit, and ``deg`` for the couch.
    """
    default = TESTS[test][1]
    allowed = {default}
    if test == "couch":
        allowed.add("deg")
    return allowed
