"""Units, numbers and what the store accepts: values within bounds, clean names.

Every reader checks its cells with these (README.md, "Input files": what is
rejected), and :func:`agent.qa.importers.records.screen` checks every accepted
row once more before the store, whatever reader made it.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from agent.qa.schema import measurement_table, series_table
from agent.vocabulary import TESTS

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


#: Characters never part of a name: C0 and C1 control characters (NUL, tab,
#: line breaks, ...). PostgreSQL refuses a NUL in text outright.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Longest name the store keeps, per column of the canonical table: the
#: lengths of the store's own columns (agent/qa/schema.py), so a name that
#: fits here always fits there, on SQLite and PostgreSQL alike.
NAME_LIMITS: dict[str, int] = {
    "machine": series_table.c.machine.type.length,
    "test": series_table.c.test.type.length,
    "energy": series_table.c.energy.type.length,
    "unit": series_table.c.unit.type.length,
    "raw_unit": measurement_table.c.raw_unit.type.length,
}
#: Largest magnitude of a stored value, per unit. The bounds are far beyond
#: any tolerance (TG-142's largest are a few % or mm), so a real reading is
#: never refused, while a typo, a wrong unit, a shifted column or an overflow
#: (1e308) is: a deviation or a pass rate beyond 100 % is not a measurement;
#: every mm test is a deviation from a nominal position, and 100 mm (10 cm) is
#: far beyond any of them; an angle reads within one turn (0-360 or ±360).
VALUE_LIMITS: dict[str, float] = {"%": 100.0, "mm": 100.0, "deg": 360.0}
#: Largest raw reading (and baseline) per raw unit; both must be positive (a
#: reading of negative polarity is given as its magnitude). The bounds are
#: about a hundred times the largest QA delivery: a daily output field gives
#: about 100 cGy, 100 MU and a few nC in a Farmer chamber.
RAW_LIMITS: dict[str, float] = {
    "cgy": 1e4, "gy": 100.0, "mgy": 1e5, "mu": 1e5, "nc": 1e4, "pc": 1e7,
    "cgy/mu": 10.0,
}
#: Bound of any other raw unit (device counts or readings, a unit given with
#: a baseline): no physical scale, so only what arithmetic cannot carry.
RAW_LIMIT_OTHER = 1e9


def shown(text: object, width: int = 40) -> str:
    """A cell as quoted in a message: control characters escaped, long text cut.

    Parameters
    ----------
    text : object
        The cell.
    width : int
        Longest text shown before it is cut with '...'.

    Returns
    -------
    str
        The text in single quotes, e.g. ``'TB\\x001'``.
    """
    out = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    return f"'{out[: width - 3]}...'" if len(out) > width else f"'{out}'"


def name_problem(text: object, column: str) -> str | None:
    """Why a name cannot be stored, or None when it can.

    Parameters
    ----------
    text : object
        The name (machine, test, energy or unit) as it would be stored.
    column : str
        The canonical column, a key of :data:`NAME_LIMITS`.

    Returns
    -------
    str or None
        The reason, naming what to do.
    """
    if not isinstance(text, str):
        return None
    what = column.replace("_", " ")
    if _CONTROL.search(text):
        return (f"{what} {shown(text)} contains a control character (NUL, tab "
                "or line break); retype the name")
    limit = NAME_LIMITS[column]
    if len(text) > limit:
        return (f"{what} {shown(text)} is {len(text)} characters long; the store "
                f"keeps at most {limit}: shorten it")
    return None


def value_limit(unit: str) -> float:
    """Largest magnitude of a stored value in ``unit`` (see :data:`VALUE_LIMITS`)."""
    return VALUE_LIMITS.get(unit, RAW_LIMIT_OTHER)


def values_out_of_range(values: np.ndarray, units: pd.Series) -> np.ndarray:
    """Which values are not finite or beyond their unit's bound.

    Parameters
    ----------
    values : numpy.ndarray
        Values in their stored unit.
    units : pandas.Series
        The unit of each value.

    Returns
    -------
    numpy.ndarray of bool
        True where the value cannot be stored.
    """
    values = np.asarray(values, dtype=float)
    limits = _per_unit(units, value_limit)
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(values) | (np.abs(values) > limits)


def _per_unit(units: pd.Series, limit) -> np.ndarray:
    """``limit`` of each unit, computed once per distinct unit (any but text:
    :data:`RAW_LIMIT_OTHER`)."""
    table = {u: limit(u) for u in pd.unique(units) if isinstance(u, str)}
    return units.map(table).to_numpy(dtype=float, na_value=RAW_LIMIT_OTHER)


def value_reason(value: float, unit: str, written: str | None = None) -> str:
    """Why a value is refused (see :func:`values_out_of_range`)."""
    cell = shown(written) if written is not None else shown(repr(float(value)))
    limit = value_limit(unit)
    if not np.isfinite(value):
        return f"value {cell} is not a finite number; write the measured value"
    return (f"value {cell} is beyond the plausible ±{limit:g} {unit} for a QA "
            "measurement; check the value, its unit and its column")


def raw_limit(unit: object) -> float:
    """Largest raw reading in ``unit`` (see :data:`RAW_LIMITS`)."""
    return RAW_LIMITS.get(str(unit).strip().lower(), RAW_LIMIT_OTHER)


def raw_out_of_range(values: np.ndarray, units: pd.Series) -> np.ndarray:
    """Which raw readings (or baselines) are not positive or beyond their bound."""
    values = np.asarray(values, dtype=float)
    limits = _per_unit(units, raw_limit)
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(values) | (values <= 0) | (values > limits)


def raw_reason(value: object, unit: object, what: str = "reading") -> str:
    """Why a raw reading or baseline is refused (see :func:`raw_out_of_range`)."""
    return (f"{what} {shown(value)} {unit} must be a positive number up to "
            f"{raw_limit(unit):g} {unit}; check the value and its unit")


#: A number after a decimal comma became a point (no thousands separators).
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$", re.IGNORECASE)
#: ``1,234``: a decimal comma (1.234) or a thousands separator (1234)?
_AMBIGUOUS_COMMA = re.compile(r"^[+-]?[1-9]\d{0,2},\d{3}$")


def to_number(raw: pd.Series, decimal_comma: bool | None = False) -> pd.Series:
    """Cells as floats; empty cells, and cells that are not a number, are NaN.

    A number is written with digits, one decimal point or comma and an
    optional exponent (``0.5``, ``0,5``, ``-1.2e-3``); ``inf``, ``nan``,
    thousands separators and a comma before exactly three digits (``1,234``:
    1.234 or 1234?) are not numbers, the last one unless ``decimal_comma``
    (a ';'- or tab-separated European export, ``ReadOptions.decimal_comma``).

    Parameters
    ----------
    raw : pandas.Series
        Value cells.
    decimal_comma : bool, optional
        Read ``1,234`` as 1.234.

    Returns
    -------
    pandas.Series
        Numbers, NaN where a cell is empty or not a number (see
        :func:`number_problem` for why).
    """
    text = raw.astype(str).str.strip().str.replace("\u2212", "-", regex=False)
    usable = text.str.replace(",", ".", regex=False)
    if not decimal_comma:
        usable = usable.where(~text.str.match(_AMBIGUOUS_COMMA), "")
    usable = usable.where(usable.str.match(_NUMBER), "")
    return pd.to_numeric(usable.replace("", np.nan), errors="coerce")


def number_problem(cell: object, decimal_comma: bool | None = False) -> str:
    """Why a non-empty cell is not a number (see :func:`to_number`).

    Parameters
    ----------
    cell : object
        The cell as written.
    decimal_comma : bool, optional
        As for :func:`to_number`.

    Returns
    -------
    str
        The reason, naming what to write.
    """
    text = str(cell).strip()
    if not decimal_comma and _AMBIGUOUS_COMMA.match(text):
        return (f"value {shown(text)} is ambiguous: a decimal comma ("
                f"{text.replace(',', '.')}) or a thousands separator "
                f"({text.replace(',', '')})? write it with a decimal point")
    return f"value {shown(text)} is not a number; write a number such as 0.5"


def known_unit(text: object) -> bool:
    """Whether a cell names a unit the importers know (canonical or raw)."""
    low = str(text).strip().lower()
    return low in _UNITS or low in RAW_UNITS


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
