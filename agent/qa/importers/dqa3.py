"""Daily QA 3-style trend exports.

Columns date-time, room, energy, beam type and, for dose, axial and transverse
symmetry, flatness and energy, a value, a baseline value and a difference
(README.md, "Input files"). Title lines above the header are fine (the header
is found by :mod:`agent.qa.importers.tabular`). Each metric becomes a
measurement in percent: the difference as exported, else computed from the
value and the baseline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from agent.qa.importers.parsing import (
    LONG_ALIASES,
    map_columns,
    norm,
    parse_dates,
    to_number,
)
from agent.qa.importers.records import (
    ImportResult,
    InputError,
    Rejects,
    empty_events,
    frame_from_parts,
)
from agent.vocabulary import canonical_energy

#: Canonical test -> header prefixes (normalised) of its metric columns.
_METRICS = {
    "output": ("dose", "cax dose", "output"),
    "symmetry_inplane": ("axsym", "ax sym", "axial symmetry", "axialsym"),
    "symmetry_crossplane": ("trsym", "tr sym", "transverse symmetry", "transsym"),
    "flatness": ("qaflat", "qa flat", "flatness", "flat"),
    "energy": ("energy",),
}
#: Role of a metric column -> what follows the metric prefix in its header.
_ROLES = {
    "diff": ("diff", "difference", "change", "delta"),
    "baseline": ("baseline", "base", "ref", "reference"),
    "value": ("value", "measured", ""),
}
_ALIASES = {
    "date": LONG_ALIASES["date"] | {"date time", "measured date time"},
    "machine": LONG_ALIASES["machine"],
    "energy": {"energy", "beam energy", "nominal energy"},
    "beam_type": {"beam type", "type", "beam", "modality"},
    "accepted": {"accepted", "status"},
}
_ACCEPTED = {"1", "true", "yes", "accepted", "y", ""}


class _RowKeys(NamedTuple):
    """Date, machine and energy of each row."""

    dates: pd.Series
    machine: pd.Series
    energy: pd.Series


def metric_columns(columns: list[str]) -> dict[str, dict[str, str]]:
    """metric -> {role: header} for Daily QA 3-style columns.

    Parameters
    ----------
    columns : list of str
        Header row, in file order.

    Returns
    -------
    dict
        For each metric with a difference or baseline column, its role
        (``diff``, ``baseline``, ``value``) -> header; empty when the file is
        not a Daily QA 3 export.
    """
    found: dict[str, dict[str, str]] = {}
    for header in columns:
        key = norm(header).replace(" %", "").replace("%", "").strip()
        for metric, prefixes in _METRICS.items():
            for prefix in prefixes:
                if not key.startswith(prefix):
                    continue
                role = _role(metric, key[len(prefix):].strip())
                if role is not None:
                    found.setdefault(metric, {}).setdefault(role, header)
                break
    # A Daily QA 3 export has at least one metric with a diff or baseline column.
    return {m: r for m, r in found.items() if {"diff", "baseline"} & set(r)}


def _role(metric: str, rest: str) -> str | None:
    """Role named by what follows the metric prefix, if any."""
    for role, words in _ROLES.items():
        if rest in words:
            if metric == "energy" and role == "value" and rest == "":
                return None  # a bare "Energy" column is the beam energy
            return role
    return None


def read_dqa3(path: Path, body: pd.DataFrame, lines: np.ndarray) -> ImportResult:
    """Read the data rows of a Daily QA 3-style trend export.

    Parameters
    ----------
    path : Path
        The file, named in the result and its rejections.
    body : pandas.DataFrame
        Data rows as text under their header.
    lines : numpy.ndarray
        File line of each row of ``body``.

    Returns
    -------
    ImportResult
        Accepted measurements (in %) and rejected rows.

    Raises
    ------
    InputError
        When the date-time, room/machine or energy column is missing.
    """
    columns = list(body.columns)
    cols = _key_columns(path, columns)
    rej = Rejects(path, lines)
    keys = _row_keys(rej, body, cols)
    good = ~rej.bad
    parts = []
    for metric, roles in metric_columns(columns).items():
        part = _metric_measurements(metric, roles, body, keys, good, lines)
        if part is not None:
            parts.append(part)
    _report_rows_without_value(rej, parts, good, lines)
    return ImportResult(str(path), "dailyqa3", frame_from_parts(parts),
                        empty_events(), rej.errors)


def _key_columns(path: Path, columns: list[str]) -> dict[str, str]:
    """Canonical key column -> header; raise when a required one is missing."""
    cols = map_columns(columns, _ALIASES)
    missing = [c for c in ("date", "machine", "energy") if c not in cols]
    if missing:
        raise InputError(
            f"{path}: looks like a Daily QA 3 trend export but lacks the "
            f"column(s) {', '.join(missing)} (date-time, room/machine, energy)"
        )
    return cols


def _row_keys(rej: Rejects, body: pd.DataFrame, cols: dict[str, str]) -> _RowKeys:
    """Date, room and energy of each row; rejects bad keys and records the
    device did not accept."""
    date_raw = body[cols["date"]].astype(str).str.strip()
    dates = parse_dates(date_raw)
    rej.add((dates.isna()).to_numpy(), cols["date"],
            [f"date '{d}' is not a date-time" for d in date_raw])
    machine = body[cols["machine"]].astype(str).str.strip()
    rej.add((machine == "").to_numpy(), cols["machine"], "room/machine is empty")
    beam_kind = (body[cols["beam_type"]].astype(str).str.strip().str.lower()
                 if "beam_type" in cols else pd.Series([""] * len(body)))
    energy = pd.Series([
        _energy(e, k) for e, k in zip(body[cols["energy"]].astype(str), beam_kind,
                                      strict=True)
    ])
    rej.add(energy.isna().to_numpy(), cols["energy"],
            "beam energy not recognised; expected e.g. '6 MV' with a beam type")
    if "accepted" in cols:
        flag = body[cols["accepted"]].astype(str).str.strip().str.lower()
        not_accepted = ~flag.isin(_ACCEPTED)
        rej.add(not_accepted.to_numpy(), cols["accepted"],
                "record not accepted on the device; not imported")
    return _RowKeys(dates, machine, energy)


def _energy(raw: str, kind: str) -> str | None:
    """Canonical energy from the energy cell ('6 MV') and the beam type."""
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


def _deviation(metric: str, value: pd.Series, base: pd.Series) -> pd.Series:
    """Difference from baseline: % of it for dose, percentage points otherwise
    (profile metrics are already in percent)."""
    return 100.0 * (value - base) / base if metric == "output" else value - base


def _metric_measurements(
    metric: str,
    roles: dict[str, str],
    body: pd.DataFrame,
    keys: _RowKeys,
    good: np.ndarray,
    lines: np.ndarray,
) -> pd.DataFrame | None:
    """Measurements of one metric (None when it gives none in usable rows)."""
    diff = to_number(body[roles["diff"]]) if "diff" in roles else None
    value = to_number(body[roles["value"]]) if "value" in roles else None
    base = to_number(body[roles["baseline"]]) if "baseline" in roles else None
    if diff is None and (value is None or base is None):
        return None  # a baseline alone gives no measurement
    if diff is None:
        diff = _deviation(metric, value, base)
    elif value is not None and base is not None:
        diff = diff.where(np.isfinite(diff), _deviation(metric, value, base))
    present = (np.isfinite(diff.to_numpy())) & good
    if not present.any():
        return None
    return pd.DataFrame({
        "date": keys.dates[present].to_numpy(),
        "machine": keys.machine[present].to_numpy(),
        "test": metric,
        "energy": keys.energy[present].to_numpy(),
        "value": diff[present].to_numpy(dtype=float),
        "unit": "%",
        "raw_value": (value[present].to_numpy(dtype=float)
                      if value is not None else np.nan),
        "raw_unit": None,
        "baseline": (base[present].to_numpy(dtype=float)
                     if base is not None else np.nan),
        "source_line": lines[present],
    })


def _report_rows_without_value(
    rej: Rejects, parts: list[pd.DataFrame], good: np.ndarray, lines: np.ndarray
) -> None:
    """A good row with no metric value at all is reported, not skipped quietly."""
    covered = np.zeros(len(good), dtype=bool)
    for part in parts:
        covered[np.searchsorted(lines, part["source_line"].to_numpy())] = True
    for i in np.flatnonzero(good & ~covered):
        rej.note(i, None, "no dose, symmetry, flatness or energy value")
