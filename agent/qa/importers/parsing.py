"""Parsing shared by the readers: header names, dates, numbers, units and events."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from agent.qa.importers.records import InputError, ReadOptions, Rejects
from agent.qa.importers.values import (  # noqa: F401 (re-exported for the readers)
    RAW_UNITS,
    allowed_units,
    normalise_unit,
    number_problem,
    shown,
    to_number,
)

#: Spellings of the event column, mapped to the event kind.
EVENT_KINDS = {
    "baseline_reset": "baseline_reset",
    "baseline reset": "baseline_reset",
    "reset": "baseline_reset",
    "new baseline": "baseline_reset",
    "recalibration": "baseline_reset",
}
#: Header names (after :func:`norm`) of the long layout's columns.
LONG_ALIASES = {
    "date": {"date", "datetime", "date time", "measured", "measurement date",
             "timestamp", "measured date", "date measured",
             # Daily QA 3 trend queries and QATrack+ reports (README.md,
             # "Input files"): the time of the measurement.
             "work started", "work completed", "measured datetime"},
    "machine": {"machine", "linac", "room", "treatment unit", "unit name",
                "machine name"},
    "test": {"test", "parameter", "measurement", "test name", "quantity"},
    "energy": {"energy", "beam", "beam energy", "nominal energy"},
    "value": {"value", "result", "reading", "measured value"},
    "unit": {"unit", "units"},
    "baseline": {"baseline", "reference", "baseline value", "reference value"},
    "event": {"event", "event type"},
}

#: A date format named in a date column's header, after :func:`norm`
#: ("Date (DD.MM.YYYY)", "Datum (TT.MM.JJJJ)"): the file says its date order.
_DATE_HINT = re.compile(
    r"\s*\b(?:(?P<dmy>(?:dd|tt) mm (?:yyyy|jjjj))|(?P<mdy>mm dd yyyy)"
    r"|(?P<ymd>(?:yyyy|jjjj) mm (?:dd|tt)))(?: hh mm(?: ss)?)?$")


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


def column_key(name: object) -> str:
    """:func:`norm` of a header without a date format it names.

    Parameters
    ----------
    name : object
        A header cell, e.g. ``"Date (DD.MM.YYYY)"``.

    Returns
    -------
    str
        The name to compare with the aliases, e.g. ``"date"``.
    """
    return _DATE_HINT.sub("", norm(name)).strip()


def date_hint(name: object) -> str | None:
    """The date order a header names (``"Date (DD.MM.YYYY)"``: day-first), if any.

    Parameters
    ----------
    name : object
        A header cell.

    Returns
    -------
    str or None
        ``"day-first"``, ``"month-first"``, ``"iso"`` or None.
    """
    found = _DATE_HINT.search(norm(name))
    if found is None:
        return None
    return {"dmy": "day-first", "mdy": "month-first", "ymd": "iso"}[
        found.lastgroup or "ymd"]


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
        key = column_key(header)
        for canonical, names in aliases.items():
            if key in names and canonical not in found:
                found[canonical] = header
    return found


#: How a date that is not ISO 8601 is read (``ReadOptions.date_order``).
DATE_ORDERS = ("iso", "day-first", "month-first")
#: Years of a plausible QA record: no linac QA record predates 1970, and a
#: year beyond 2100 is a typo or a number read as a date.
DATE_YEARS = (1970, 2100)
_CLOCK = (r"(?:(?:T|\s+)(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})"
          r"(?:[.,](?P<F>\d{1,9}))?)?\s*(?P<P>[AP]\.?M\.?)?)?$")
#: Year first (ISO 8601; also with '/' or '.'): read in every date order.
_YEAR_FIRST = re.compile(r"^(?P<y>\d{4})(?P<s>[-/.])(?P<m>\d{1,2})(?P=s)"
                         r"(?P<d>\d{1,2})" + _CLOCK, re.IGNORECASE)
#: Day and month first (03.04.2024, 03/04/2024): read only in a set order.
_YEAR_LAST = re.compile(r"^(?P<a>\d{1,2})(?P<s>[-/.])(?P<b>\d{1,2})(?P=s)"
                        r"(?P<y>\d{4})" + _CLOCK, re.IGNORECASE)
_SHORT_YEAR = re.compile(r"^\d{1,2}[-/.]\d{1,2}[-/.]\d{2}(?!\d)")
_BARE_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?(?:e[+-]?\d+)?$", re.IGNORECASE)
_ISO_HINT = "write ISO 8601 YYYY-MM-DD[ HH:MM]"
_ORDER_HINT = ("day-first or month-first dates are read only when the order is "
               "set: set date_order to \"day-first\" or \"month-first\" "
               "(QA_AGENT_DATE_ORDER), or name it in the header, e.g. "
               "'Date (DD.MM.YYYY)'")


def _clock(found: re.Match) -> tuple[int, int, int, int]:
    """Hour, minute, second and nanosecond of a date's time (0 when none)."""
    hour, minute = int(found["H"] or 0), int(found["M"] or 0)
    second, nano = int(found["S"] or 0), int((found["F"] or "0").ljust(9, "0"))
    if found["P"]:
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} with {found['P']}")
        hour = hour % 12 + (12 if found["P"][0] in "pP" else 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"time {hour}:{minute:02d}:{second:02d}")
    return hour, minute, second, nano


def _date_parts(cell: str, order: str) -> tuple[tuple | None, str]:
    """(year, month, day, hour, minute, second, ns, offset) of a cell, or why not."""
    zone = ""
    offset = _WITH_OFFSET.match(cell)
    text = offset.group("time") if offset else cell
    if offset:
        zone = offset.group("zone")
        digits = zone[1:].replace(":", "") if zone[0] in "+-" else "0000"
        if int(digits[:2]) > 14 or int(digits[2:] or 0) > 59:
            return None, f"date {shown(cell)}: '{zone}' is not a UTC offset"
    found = _YEAR_FIRST.match(text)
    how = "as ISO 8601 YYYY-MM-DD"
    if found:
        year, month, day = int(found["y"]), int(found["m"]), int(found["d"])
    elif (found := _YEAR_LAST.match(text)) is None:
        return None, _unreadable(cell, order)
    elif order not in ("day-first", "month-first"):
        return None, f"date {shown(cell)} is not ISO 8601 (YYYY-MM-DD): {_ORDER_HINT}"
    else:
        first, second = int(found["a"]), int(found["b"])
        day, month = (first, second) if order == "day-first" else (second, first)
        year = int(found["y"])
        how = f"{order} (date_order is \"{order}\")"
    try:
        clock = _clock(found)
        pd.Timestamp(year, month, day)
    except ValueError as exc:
        return None, f"date {shown(cell)} is no valid date and time read {how} ({exc})"
    if not DATE_YEARS[0] <= year <= DATE_YEARS[1]:
        return None, (f"date {shown(cell)} is outside the years {DATE_YEARS[0]}-"
                      f"{DATE_YEARS[1]} of QA records; check the year")
    return (year, month, day, *clock, zone), ""


def _unreadable(cell: str, order: str) -> str:
    """Why a cell that is no known date form is refused."""
    if _BARE_NUMBER.match(cell):
        return (f"date {shown(cell)} is a bare number, not a date: {_ISO_HINT} (an "
                "Excel serial date is read from an .xlsx date cell only)")
    if _SHORT_YEAR.match(cell):
        return f"date {shown(cell)} has a two-digit year; write the year in full"
    hint = "" if order != "iso" else f" ({_ORDER_HINT})"
    return f"date {shown(cell)} is not a date; {_ISO_HINT}{hint}"


def _read_dates(text: pd.Series, order: str, timezone: str
                ) -> tuple[pd.Series, pd.Series]:
    """Timestamps of stripped cells (NaT where not a date) and the reasons."""
    stamps: dict[str, pd.Timestamp] = {}
    reasons: dict[str, str] = {}
    zoned: dict[str, str] = {}
    for cell in pd.unique(text):
        if not cell:
            continue
        parts, why = _date_parts(cell, order)
        if parts is None:
            reasons[cell] = why
            continue
        *clock, nano, zone = parts
        stamp = pd.Timestamp(*clock) + pd.Timedelta(nanoseconds=nano)
        if zone:  # the instant it names, in the department's zone
            zoned[cell] = f"{stamp.isoformat(sep=' ', timespec='microseconds')}{zone}"
        else:
            stamps[cell] = stamp
    if zoned:
        local = to_department_time(pd.Series(list(zoned.values()), dtype=object),
                                   timezone)
        for cell, converted in zip(zoned, local, strict=True):
            if _WITH_OFFSET.match(converted):
                reasons[cell] = f"date {shown(cell)}: its offset cannot be converted"
            else:
                stamps[cell] = pd.Timestamp(converted)
    dates = pd.to_datetime(text.map(stamps), errors="coerce")
    return dates, text.map(reasons).astype(object).fillna("")


def parse_dates(raw: pd.Series, options: ReadOptions | None = None,
                order: str | None = None) -> pd.Series:
    """Dates and date-times in the one documented way (README.md, "Input files").

    * ISO 8601 (``2024-05-07``, ``2024-05-07T08:30:15``, Excel's
      ``2024-05-07 00:00:00``; ``/`` or ``.`` between the year-first parts
      too) in every date order;
    * ``07.05.2024``, ``07/05/2024``, ``07-05-2024`` (optionally with a time,
      ``AM``/``PM`` too) only in the order ``options.date_order`` or ``order``
      says, day-first or month-first; never guessed, never swapped;
    * a time with an offset (``Z``, ``UTC``, ``+10:00``) is the instant it
      names, converted to the department's zone (:func:`to_department_time`);
    * a bare number, a two-digit year, an impossible day or time, or a year
      outside :data:`DATE_YEARS` is no date.

    Parameters
    ----------
    raw : pandas.Series
        Date cells as text.
    options : ReadOptions, optional
        The department's date order and time zone (default: ISO, local zone).
    order : str, optional
        The date order, instead of ``options.date_order`` (a header says it).

    Returns
    -------
    pandas.Series
        Timestamps, ``NaT`` where a cell is empty or not a date.
    """
    options = options or ReadOptions()
    text = raw.astype(str).str.strip()
    return _read_dates(text, order or options.date_order, options.timezone)[0]


def parse_date_column(rej: Rejects, raw: pd.Series, column: str,
                      options: ReadOptions | None = None) -> pd.Series:
    """Parse the date column of a long or wide file, rejecting unusable dates.

    Parameters
    ----------
    rej : Rejects
        Where empty and unparseable dates are recorded, with the reason.
    raw : pandas.Series
        Stripped date cells.
    column : str
        Header of the date column, named in the rejections; a date format in
        it (``Date (DD.MM.YYYY)``) sets the order (:func:`date_hint`).
    options : ReadOptions, optional
        The department's date order and time zone.

    Returns
    -------
    pandas.Series
        Parsed dates (see :func:`parse_dates`).
    """
    options = options or ReadOptions()
    order = date_hint(column) or options.date_order
    dates, reasons = _read_dates(raw.astype(str).str.strip(), order,
                                 options.timezone)
    rej.add((raw == "").to_numpy(), column,
            "date is empty; fill in the measurement date")
    rej.add((reasons != "").to_numpy(), column, reasons.tolist())
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


# --- times written with an offset (README.md, "Input files": time zones) ---------

#: A date-time that ends in a UTC offset: ``Z``, ``UTC``, ``GMT``, ``+10:00``,
#: ``+1000`` or ``+10``. A time of day (HH:MM) must come first, so the day of
#: a plain date (``2024-05-07``) is never taken for an offset.
_WITH_OFFSET = re.compile(
    r"^(?P<time>.*\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)\s*"
    r"(?P<zone>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$",
    re.IGNORECASE,
)


#: A numeric date that is not ISO: day and month order matter (03/04/2024).
_NUMERIC_DATE = re.compile(r"^\s*\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}")


def department_zone(timezone: str) -> ZoneInfo | None:
    """The department's time zone (None: this machine's local zone).

    Parameters
    ----------
    timezone : str
        IANA name such as ``Australia/Sydney`` (setting ``timezone``); empty
        for the local zone of this machine.

    Returns
    -------
    zoneinfo.ZoneInfo or None
        The zone, or None for the local zone.

    Raises
    ------
    InputError
        When the name is not a known IANA time zone.
    """
    if not timezone.strip():
        return None
    try:
        return ZoneInfo(timezone.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"time zone '{timezone}' is not known; set the setting 'timezone' "
            "(QA_AGENT_TIMEZONE) to an IANA name such as Australia/Sydney or "
            "Europe/Berlin, or leave it empty for this machine's zone"
        ) from None


def to_department_time(raw: pd.Series, timezone: str = "",
                       date_order: str = "iso") -> pd.Series:
    """Date-times written with an offset, as the department's wall-clock time.

    The one rule of README.md "Input files": a time written with an offset
    (``2024-05-07 07:19+10:00``, ``2024-05-06T21:19:00Z``, ``... UTC``) is
    the instant it names, converted to the department's zone; a time written
    without one is already department time and is left as written. The
    converted cells are ISO text without an offset, so the date parser reads
    them like any other cell. A numeric date that is not ISO (``07/05/2024``)
    is read in the department's date order, never guessed; a cell whose time
    part cannot be read so is left as written and the date parser reports it.

    Parameters
    ----------
    raw : pandas.Series
        Date cells as text.
    timezone : str, optional
        The department's IANA zone (``ReadOptions.timezone``); empty: this
        machine's local zone.
    date_order : {"iso", "day-first", "month-first"}, optional
        How a numeric date that is not ISO 8601 is read
        (``ReadOptions.date_order``); with ``iso`` it is left as written.

    Returns
    -------
    pandas.Series
        The cells, those with an offset converted (``YYYY-MM-DD HH:MM:SS``).

    Raises
    ------
    InputError
        When ``timezone`` is not a known IANA zone.
    """
    text = raw.astype(str).str.strip()
    with_offset = text.str.match(_WITH_OFFSET)
    if not with_offset.any():
        return text
    zone = department_zone(timezone)
    converted = {cell: _in_zone(cell, zone, date_order)
                 for cell in pd.unique(text[with_offset])}
    return text.where(~with_offset, text.map(converted))


def _in_zone(cell: str, zone: ZoneInfo | None, date_order: str) -> str:
    """One cell with an offset as wall-clock text in ``zone`` (local if None)."""
    match = _WITH_OFFSET.match(cell)
    if match is None:
        return cell
    time = match.group("time").replace(",", ".")
    numeric = _NUMERIC_DATE.match(time) is not None
    if numeric and date_order not in {"day-first", "month-first"}:
        return cell  # 07/05/2024: never guessed (README.md, "Input files")
    try:
        written = (pd.to_datetime(time, dayfirst=date_order == "day-first")
                   if numeric else pd.Timestamp(time))
    except (ValueError, TypeError, OverflowError):
        return cell
    if pd.isna(written) or written.tzinfo is not None:
        return cell
    offset = _offset(match.group("zone"))
    instant = (written.to_pydatetime() - offset).replace(tzinfo=UTC)
    local = instant.astimezone(zone) if zone is not None else instant.astimezone()
    fraction = f".{local.microsecond:06d}" if local.microsecond else ""
    return local.strftime("%Y-%m-%d %H:%M:%S") + fraction


def _offset(zone: str) -> timedelta:
    """``Z``/``UTC``/``GMT``/``+HH[:MM]`` as the offset from UTC."""
    if zone.upper() in {"Z", "UTC", "GMT"}:
        return timedelta(0)
    digits = zone[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:]) if len(digits) > 2 else 0)
    return timedelta(minutes=minutes) * (-1 if zone[0] == "-" else 1)
