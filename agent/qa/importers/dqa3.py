"""Sun Nuclear Daily QA 3 trend exports (Firebird Sncdata.fdb and Atlas/SQL Server).

The columns are those of QATrack+'s QCPump trend queries
(qcpump/contrib/pumps/dqa3/queries/{fdb/01.03, fdb/01.04, mssql/01.06,
atlas/1.5}/trend.sql): ``work_started`` (or ``work_completed``), the machine
(``machine_name``, ``dqa3_unit_name``; ``room_name`` is kept beside it), the
beam (``beam_energy``/``beamenergy`` with ``beam_type`` Photon, FFF or
Electron), and per metric a value, a baseline and a difference: ``dose``,
``axsym``, ``trsym``, ``qaflat``, ``energy``, ``xsize``, ``ysize``,
``xshift``, ``yshift`` with ``_baseline`` and ``_diff``. The older
"Daily QA 3-style" layout (``Date Time, Room, Energy, Beam Type, Dose, Dose
Baseline, Dose Diff (%), ...``) is read too (README.md, "Input files").
Header names are compared without case, spaces or punctuation.

Each metric becomes one measurement: the difference as the file states it
(dose in % of its baseline, profile metrics in percentage points), else
computed from the value and the baseline; the value and the baseline are kept
as written (``raw_value``, ``baseline``). Field size and shift are in cm in
the file; their difference, value and baseline are all stored in mm (the
decimal point moved, nothing rounded). In QCPump's queries
``energy`` is the energy-constancy difference (``energy_baseline`` is 0), never
the beam energy. Every other column (temperature, pressure, device, wedge,
comment, ...) is kept in the frame's ``extra`` column, as written.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from agent.qa.importers.parsing import (
    parse_date_column,
    to_department_time,
    to_number,
)
from agent.qa.importers.records import (
    ImportResult,
    InputError,
    ReadOptions,
    Rejects,
    empty_events,
    frame_from_parts,
)
from agent.vocabulary import canonical_energy

#: Canonical test -> header prefixes (compact, see :func:`compact`) of its
#: metric columns; QCPump's names first.
_METRICS = {
    "output": ("dose", "caxdose", "output"),
    "symmetry_inplane": ("axsym", "axialsym", "axialsymmetry"),
    "symmetry_crossplane": ("trsym", "transsym", "transversesymmetry"),
    "flatness": ("qaflat", "flatness", "flat"),
    "energy": ("energy",),
    "field_size_x": ("xsize",),
    "field_size_y": ("ysize",),
    "beam_shift_x": ("xshift",),
    "beam_shift_y": ("yshift",),
}
#: (prefix, metric), longest prefix first, so "flatness" is not "flat" + "ness".
_PREFIXES = sorted(((p, m) for m, ps in _METRICS.items() for p in ps),
                   key=lambda pm: -len(pm[0]))
#: Role of a metric column -> what follows the metric prefix in its header.
_ROLES = {
    "diff": ("diff", "difference", "change", "delta"),
    "baseline": ("baseline", "base", "ref", "reference"),
    "value": ("", "value", "measured"),
}
#: Metrics the export gives in cm (QATrack+'s Daily QA 3 test list labels
#: size and shift cm: qatrackplus scripts/create_dqa3_testlist.py); in mm here.
_IN_CM = {"field_size_x", "field_size_y", "beam_shift_x", "beam_shift_y"}
#: Key column -> compact header names, the preferred one first.
_KEYS = {
    "date": ("workstarted", "workcompleted", "measureddatetime", "datetime",
             "date", "measured", "timestamp",
             "measurementdate", "measureddate", "datemeasured"),
    "machine": ("machinename", "dqa3unitname", "machine", "linac",
                "treatmentunit", "unitname", "room", "roomname"),
    "beam_energy": ("beamenergy", "nominalenergy"),
    "beam_type": ("beamtype", "type", "modality", "beam"),
    "accepted": ("accepted", "status"),
}
_ACCEPTED = {"1", "true", "yes", "accepted", "y", ""}
#: Wedge cells that mean an open beam (QCPump's beam_params_for_row).
_OPEN = {"", "none", "open", "0", "nan"}
_BEAM_KINDS = {
    "photon": "X", "photons": "X", "x": "X", "xray": "X", "x-ray": "X",
    "fff": "FFF", "photon fff": "FFF", "electron": "E", "electrons": "E", "e": "E",
}


class _RowKeys(NamedTuple):
    """Date, machine, energy and the kept cells of each row."""

    dates: pd.Series
    machine: pd.Series
    energy: pd.Series
    extra: list[dict]


def compact(name: object) -> str:
    """Header name without case, spaces or punctuation (``dose_diff``: ``dosediff``).

    Parameters
    ----------
    name : object
        A header cell.

    Returns
    -------
    str
        Lower-case letters and digits only.
    """
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def metric_role(key: str) -> tuple[str, str] | None:
    """(metric, role) named by a compact header, e.g. ``axsymdiff`` -> symmetry.

    Parameters
    ----------
    key : str
        A compact header name (:func:`compact`).

    Returns
    -------
    tuple of str or None
        The canonical test and the role (``value``, ``baseline``, ``diff``),
        or None when the header names no Daily QA 3 metric.
    """
    for prefix, metric in _PREFIXES:
        if key.startswith(prefix):
            rest = key[len(prefix):]
            for role, words in _ROLES.items():
                if rest in words:
                    return metric, role
            return None
    return None


def metric_columns(columns: list[str]) -> dict[str, dict[str, str]]:
    """metric -> {role: header} for Daily QA 3 columns.

    A bare ``energy`` column is the energy-constancy value when the file names
    its beam energy elsewhere (``beam_energy``) or gives ``energy_baseline`` /
    ``energy_diff`` without an ``energy value`` column (QCPump's queries);
    otherwise it is the beam energy of the older layout and no metric.

    Parameters
    ----------
    columns : list of str
        Header row, in file order.

    Returns
    -------
    dict
        For each metric with a difference or baseline column, its role ->
        header; empty when the file is not a Daily QA 3 export.
    """
    found: dict[str, dict[str, str]] = {}
    bare_is_beam = _bare_energy_is_beam(columns)
    for header in columns:
        key = compact(header)
        named = metric_role(key)
        if named is None or (key == "energy" and bare_is_beam):
            continue
        found.setdefault(named[0], {}).setdefault(named[1], header)
    # A Daily QA 3 export has at least one metric with a diff or baseline column.
    return {m: r for m, r in found.items() if {"diff", "baseline"} & set(r)}


def _bare_energy_is_beam(columns: list[str]) -> bool:
    """Whether a bare ``energy`` column is the beam energy (older layout)."""
    keys = {compact(c) for c in columns}
    if "energy" not in keys or keys & set(_KEYS["beam_energy"]):
        return False
    if keys & {"energyvalue", "energymeasured"}:
        return True
    return not keys & {f"energy{w}" for w in _ROLES["diff"] + _ROLES["baseline"]}


def read_dqa3(path: Path, body: pd.DataFrame, lines: np.ndarray,
              options: ReadOptions | None = None) -> ImportResult:
    """Read the data rows of a Daily QA 3 trend export.

    Parameters
    ----------
    path : Path
        The file, named in the result and its rejections.
    body : pandas.DataFrame
        Data rows as text under their header.
    lines : numpy.ndarray
        File line of each row of ``body``.
    options : ReadOptions, optional
        The department's time zone and date order (times written with an
        offset are converted to the zone).

    Returns
    -------
    ImportResult
        Accepted measurements and rejected rows; ``extra`` holds the cells
        kept beside each value (temperature, pressure, device, ...).

    Raises
    ------
    InputError
        When the date-time, machine or beam-energy column is missing.
    """
    options = options or ReadOptions()
    columns = list(body.columns)
    metrics = metric_columns(columns)
    cols = _key_columns(path, columns)
    rej = Rejects(path, lines)
    _reject_bad_numbers(rej, body, metrics)
    keys = _row_keys(rej, body, cols, _kept_columns(columns, cols, metrics), options)
    good = ~rej.bad
    parts = []
    for metric, roles in metrics.items():
        part = _metric_measurements(metric, roles, body, keys, good, lines, rej)
        if part is not None:
            parts.append(part)
    _report_rows_without_value(rej, parts, good, lines)
    frame = frame_from_parts(parts)
    if "extra" in frame and not frame["extra"].map(bool).any():
        frame = frame.drop(columns="extra")
    return ImportResult(str(path), "dailyqa3", frame, empty_events(), rej.errors)


def _key_columns(path: Path, columns: list[str]) -> dict[str, str]:
    """Key column -> header; raise when a required one is missing."""
    by_key: dict[str, str] = {}
    for header in columns:
        by_key.setdefault(compact(header), header)
    cols = {}
    for name, keys in _KEYS.items():
        for key in keys:
            if key in by_key:
                cols[name] = by_key[key]
                break
    if "beam_energy" not in cols and "energy" in by_key and _bare_energy_is_beam(
            columns):
        cols["beam_energy"] = by_key["energy"]
    missing = [c for c in ("date", "machine", "beam_energy") if c not in cols]
    if missing:
        names = {"date": "date-time (work_started)", "machine": "machine "
                 "(machine_name or dqa3_unit_name)", "beam_energy": "beam energy "
                 "(beam_energy or beamenergy, with beam_type)"}
        note = (" ('energy' is the energy-constancy difference, not the beam "
                "energy)" if "beam_energy" in missing and "energy" in by_key else "")
        raise InputError(
            f"{path}: looks like a Daily QA 3 trend export but lacks the "
            f"column(s) {', '.join(names[c] for c in missing)}{note}; export "
            "the trend data with these columns"
        )
    return cols


def _kept_columns(columns: list[str], cols: dict[str, str],
                  metrics: dict[str, dict[str, str]]) -> list[str]:
    """Columns kept in ``extra``: all that are neither keys nor metric columns."""
    used = set(cols.values()) | {h for roles in metrics.values()
                                 for h in roles.values()}
    return [c for c in columns if c not in used and not c.startswith("unnamed")]


def _reject_bad_numbers(rej: Rejects, body: pd.DataFrame,
                        metrics: dict[str, dict[str, str]]) -> None:
    """A metric cell that is written but not a number rejects its row."""
    for roles in metrics.values():
        for header in roles.values():
            raw = body[header].astype(str).str.strip()
            bad = (raw != "") & ~np.isfinite(to_number(raw))
            rej.add(bad.to_numpy(), header,
                    [f"'{v}' is not a number; correct the cell or delete the row"
                     for v in raw])


def _row_keys(rej: Rejects, body: pd.DataFrame, cols: dict[str, str],
              kept: list[str], options: ReadOptions) -> _RowKeys:
    """Date, machine and beam of each row; rejects bad keys, records the device
    did not accept and wedged beams."""
    date_raw = body[cols["date"]].astype(str).str.strip()
    local = to_department_time(date_raw, options.timezone, options.date_order)
    dates = parse_date_column(rej, local, cols["date"], options)
    machine = body[cols["machine"]].astype(str).str.strip()
    rej.add((machine == "").to_numpy(), cols["machine"], "machine is empty")
    energy = _energies(rej, body, cols)
    if "accepted" in cols:
        flag = body[cols["accepted"]].astype(str).str.strip().str.lower()
        rej.add((~flag.isin(_ACCEPTED)).to_numpy(), cols["accepted"],
                "record not accepted on the device; not imported")
    _reject_wedged(rej, body)
    extra = _extras(body, kept)
    for i in np.flatnonzero((local != date_raw).to_numpy()):
        extra[i]["time_as_written"] = date_raw.iloc[i]
    return _RowKeys(dates, machine, energy, extra)


def _energies(rej: Rejects, body: pd.DataFrame, cols: dict[str, str]) -> pd.Series:
    """Canonical energy of each row from the beam energy and the beam type."""
    raw = body[cols["beam_energy"]].astype(str).str.strip()
    kind = (body[cols["beam_type"]].astype(str).str.strip().str.lower()
            if "beam_type" in cols else pd.Series([""] * len(body)))
    pairs = list(zip(raw, kind, strict=True))
    table = {pair: _energy(*pair) for pair in set(pairs)}
    energy = pd.Series([table[p] for p in pairs], dtype=object)
    rej.add(energy.isna().to_numpy(), cols["beam_energy"],
            [f"beam energy '{e}' with beam type '{k}' not recognised; expected "
             "e.g. 6 with Photon, FFF or Electron" for e, k in pairs])
    return energy


def _energy(raw: str, kind: str) -> str | None:
    """Canonical energy from the energy cell ('6', '6.00', '6 MV') and the beam type."""
    if re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", raw):
        raw = f"{float(raw):g}"  # a database number: 6.00 is 6
    base = canonical_energy(raw)
    if not base:
        return None
    if kind.replace("-", "").replace(" ", "") in {"", "nan"}:
        return base
    letter = _BEAM_KINDS.get(kind)
    if letter is None:
        return None
    number = re.match(r"^\s*(\d+(?:\.\d+)?)", raw).group(1).removesuffix(".0")
    bare = re.fullmatch(r"\s*\d+(?:\.\d+)?\s*(mv)?\s*", raw.lower()) is not None
    if base.endswith("FFF") and letter == "X":
        return base  # "6 MV FFF" with beam type Photon
    if (not bare and base != f"{number}{letter}") or (
            letter == "E" and "mv" in raw.lower()):
        return None  # "9 MeV" with beam type Photon: the cells disagree
    return f"{number}{letter}"


def _reject_wedged(rej: Rejects, body: pd.DataFrame) -> None:
    """A wedged beam has its own baseline: it is not the open beam's series."""
    wedge = next((c for c in body.columns if compact(c) == "wedgetype"), None)
    if wedge is None:
        return
    cells = body[wedge].astype(str).str.strip()
    angle = next((c for c in body.columns if compact(c) == "wedgeangle"), None)
    angles = (body[angle].astype(str).str.strip() if angle is not None
              else pd.Series([""] * len(body)))
    wedged = ~cells.str.lower().isin(_OPEN)
    rej.add(wedged.to_numpy(), wedge,
            [f"wedged beam ({w} {a}°): its baseline is the wedged beam's, so it is "
             "not filed with the open beam; not imported (export open beams, or "
             "keep wedged-beam checks in their own file)" for w, a in
             zip(cells, angles, strict=True)])


def _extras(body: pd.DataFrame, kept: list[str]) -> list[dict]:
    """The kept cells of each row by snake-case name; temperature and pressure
    as numbers when they are numbers."""
    extra: list[dict] = [{} for _ in range(len(body))]
    for header in kept:
        key = re.sub(r"[^a-z0-9]+", "_", header.lower()).strip("_")
        for name in ("temperature", "pressure"):
            key = name if compact(header).startswith(name) else key
        raw = body[header].astype(str).str.strip()
        numbers = to_number(raw) if key in {"temperature", "pressure"} else None
        for i, cell in enumerate(raw):
            if cell == "":
                continue
            number = numbers.iloc[i] if numbers is not None else np.nan
            extra[i][key] = float(number) if np.isfinite(number) else cell
    return extra


def _deviation(metric: str, value: pd.Series, base: pd.Series) -> pd.Series:
    """Difference from baseline: % of it for dose, in the metric's unit
    otherwise (profile metrics are already in percent)."""
    if metric == "output":
        return 100.0 * (value - base) / base.where(base != 0)
    return value - base


def _cm_to_mm(values: pd.Series) -> pd.Series:
    """Lengths in cm as mm, the decimal point moved (0.12 cm is 1.2 mm exactly)."""
    return values.map(lambda v: float(Decimal(repr(float(v))) * 10)
                      if np.isfinite(v) else np.nan)


def _metric_measurements(
    metric: str,
    roles: dict[str, str],
    body: pd.DataFrame,
    keys: _RowKeys,
    good: np.ndarray,
    lines: np.ndarray,
    rej: Rejects,
) -> pd.DataFrame | None:
    """Measurements of one metric (None when it gives none in usable rows)."""
    cells = {role: to_number(body[header]) for role, header in roles.items()}
    value, base = cells.get("value"), cells.get("baseline")
    diff = cells.get("diff", pd.Series(np.nan, index=body.index))
    if value is not None and base is not None:
        diff = diff.where(np.isfinite(diff), _deviation(metric, value, base))
    present = np.isfinite(diff.to_numpy()) & good
    # A value or difference written but nothing to file (a baseline alone,
    # such as QCPump's constant energy_baseline of 0, is no measurement).
    written = np.isfinite(diff.to_numpy()) | (
        np.isfinite(value.to_numpy()) if value is not None else False)
    for i in np.flatnonzero(written & good & ~present):
        rej.note(i, roles.get("diff", roles.get("value")),
                 f"{metric}: no difference and no usable value and baseline; "
                 "this metric is not imported for the row")
    if not present.any():
        return None
    if metric in _IN_CM:  # the value, its reading and its baseline: all in mm
        diff, value, base = (_cm_to_mm(c) if c is not None else None
                             for c in (diff, value, base))
    extra = [keys.extra[i] for i in np.flatnonzero(present)]
    return pd.DataFrame({
        "date": keys.dates[present].to_numpy(),
        "machine": keys.machine[present].to_numpy(),
        "test": metric,
        "energy": keys.energy[present].to_numpy(),
        "value": diff[present].to_numpy(dtype=float),
        "unit": "mm" if metric in _IN_CM else "%",
        "raw_value": (value[present].to_numpy(dtype=float)
                      if value is not None else np.nan),
        "raw_unit": None,
        "baseline": (base[present].to_numpy(dtype=float)
                     if base is not None else np.nan),
        "source_line": lines[present],
        "extra": extra,
    })


def _report_rows_without_value(
    rej: Rejects, parts: list[pd.DataFrame], good: np.ndarray, lines: np.ndarray
) -> None:
    """A good row with no metric value at all is reported, not skipped quietly."""
    covered = np.zeros(len(good), dtype=bool)
    for part in parts:
        covered[np.searchsorted(lines, part["source_line"].to_numpy())] = True
    noted = {e.line for e in rej.errors}
    for i in np.flatnonzero(good & ~covered):
        if int(lines[i]) not in noted:
            rej.note(i, None, "no dose, symmetry, flatness or energy value")
