"""Varian MPC (Machine Performance Check) results, read as MPC exports them.

The layout is the one QATrack+'s QCPump reads (qcpump/contrib/pumps/mpc/mpc.py,
test_mpc.py, docs/pumps/mpc.rst): a TDS tree of check folders (named as in
:func:`check_folder`), each with a ``Results.csv`` (``Name [Unit],Value,
Threshold,Evaluation Result``). The folder name gives serial, date-time (the
linac's clock, stored as written), beam and template; the serial gives the
machine (``serial`` in ``machines.yaml``; unknown: reported, never guessed).
Each quantity is its own series (:data:`QUANTITIES`), MPC's threshold and
evaluation kept in ``extra``; MLC leaves are summarised per bank unless asked
for. Every record is accepted or reported; a non-check folder is reported.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import pandas as pd

from agent.qa.importers.parsing import allowed_units, norm, normalise_unit
from agent.qa.importers.records import (
    COLUMNS,
    ImportResult,
    InputError,
    RowError,
    empty_events,
)
from agent.qa.tolerances import serial_key

#: MPC quantity (its Results.csv name without the unit) -> test. Shown by
#: QCPump (docs/pumps/mpc.rst, contrib/pumps/mpc/test_mpc.py):
QUANTITIES: dict[str, str] = {
    "BeamGroup/BeamOutputChange": "mpc_output_change",
    "BeamGroup/BeamUniformityChange": "mpc_uniformity_change",
    "BeamGroup/BeamCenterShift": "mpc_beam_center_shift",
    "IsoCenterGroup/IsoCenterSize": "mpc_iso_size",
    "IsoCenterGroup/IsoCenterMVOffset": "mpc_iso_mv_offset",
    "IsoCenterGroup/IsoCenterKVOffset": "mpc_iso_kv_offset",
    "GantryGroup/GantryAbsolute": "mpc_gantry_absolute",
    "GantryGroup/GantryRelative": "mpc_gantry_relative",
    **{f"CollimationGroup/MLCGroup/MLC{k}Offset{b}": f"mpc_mlc_{k.lower()}_offset_"
       f"{b.lower()}" for k in ("Max", "Mean") for b in "AB"},
    # ASSUMED: QCPump shows no jaw, couch or backlash-summary name (only the
    # per-leaf backlash rows). These spellings are this project's assumption;
    # a file that spells them otherwise gets each such row reported as "not
    # mapped", never merged into another series.
    **{f"CollimationGroup/MLCBacklashGroup/MLCBacklashMax{b}": f"mpc_mlc_backlash_"
       f"{b.lower()}" for b in "AB"},
    **{f"CollimationGroup/JawsGroup/Jaw{j}": f"mpc_jaw_{j.lower()}"
       for j in ("X1", "X2", "Y1", "Y2")},
    **{f"EnhancedCouchGroup/Couch{a}": f"mpc_couch_{a.lower()}"
       for a in ("Lat", "Lng", "Vrt", "Rtn", "Pitch", "Roll")},
}
#: Per-leaf rows (QCPump's EXCLUDED_TESTS): offset or backlash, bank, leaf.
LEAF = re.compile(r"CollimationGroup/(?:MLCGroup/MLCLeaves(?P<a>[AB])/MLCLeaf|"
                  r"MLCBacklashGroup/MLCBacklashLeaves(?P<b>[AB])/MLCBacklashLeaf)"
                  r"(?P<leaf>\d+)")

# QCPump's MPC_PATH_RE and MPC_PATH_RE_OLD, anchored on the folder's own name.
_BEAM = (r"(?P<energy>\d+(?:\.\d+)?)(?P<kind>[xXeE])(?P<fff>(?i:FFF))?"
         r"(?P<hdtse>(?i:HDTSE))?")
_CHECK_NAME = re.compile(
    r"(?P<pre>[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*?)-SN(?P<serial>\w+)"
    r"-(?P<date>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)-(?P<beam>\d{4})-(?P<check>.+)")
_NEW = re.compile(rf"(?P<template>[A-Za-z]+){_BEAM}(?P<rest>[A-Za-z0-9]*)")
_OLD = re.compile(rf"{_BEAM}(?P<mvkv>(?i:MVkV))?-(?P<template>[A-Za-z]+)(?P<rest>.*)")
LAYOUT = ("NDS-WKS-SN<serial>-<YYYY-MM-DD-HH-MM-SS>-<beam no>-<template><energy>"
          "<x|e>[FFF][MVkV]...")
_RESULTS = "results.csv"
_NAME = re.compile(r"(.+?)\s*\[([^\]]*)\]")  # Name [Unit]
_MAX_BYTES = 8 << 20  # a Results.csv is a few kB; larger is not one
#: Results.csv header (normalised) -> column role.
_HEADER = {"name unit": "name", "name": "name", "value": "value",
           "threshold": "threshold", "evaluation result": "evaluation",
           "evaluation": "evaluation"}
_SHOWN = {"name": "Name [Unit]", "value": "Value", "threshold": "Threshold",
          "evaluation": "Evaluation Result"}


class CheckFolder(NamedTuple):
    """What an MPC check folder's name says."""

    name: str
    serial: str
    date: datetime
    beam_no: int
    template: str
    energy: str


def check_folder(name: str) -> CheckFolder | None:
    """Read an MPC check folder name (QCPump's ``mpc_path_to_meta``): ``<pre>-SN
    <serial>-<YYYY-MM-DD-HH-MM-SS>-<beam no>-<template><energy><x|e>[FFF][HDTSE]
    [MVkV][Enhanced...]``, or older ``...-<energy><x|e>[FFF]-<Beam|Geometry>``.

    Parameters
    ----------
    name : str
        The folder's own name, e.g.
        ``NDS-WKS-SN1234-2020-11-06-09-59-21-0009-GeometryCheckTemplate6xMVkV``.

    Returns
    -------
    CheckFolder or None
        None when the name is not a check folder's (or its date is invalid).
    """
    found = _CHECK_NAME.fullmatch(name)
    beam = found and (_NEW.fullmatch(found["check"]) or _OLD.fullmatch(found["check"]))
    if not beam:
        return None
    try:
        date = datetime(*map(int, found["date"].split("-")))
    except ValueError:
        return None
    kind = ("HDTSE" if beam["hdtse"] else "FFF" if beam["fff"]
            else beam["kind"].upper())
    return CheckFolder(name, found["serial"], date, int(found["beam"]),
                       found["check"], beam["energy"].removesuffix(".0") + kind)


def is_mpc_input(path: Path) -> bool:
    """Whether a path is for this reader.

    Parameters
    ----------
    path : Path

    Returns
    -------
    bool
        True for a folder, a ``.zip`` or a ``Results.csv`` in a check folder.
    """
    if path.is_dir() or path.suffix.lower() == ".zip":
        return True
    return (path.name.lower() == _RESULTS
            and check_folder(path.resolve().parent.name) is not None)


@dataclass(frozen=True)
class CheckFile:
    """One check folder's Results.csv as read (the store logs each check)."""

    file: str
    sha256: str  # of the folder name and the file's bytes
    rows_read: int
    rejected: int


@dataclass
class TreeResult(ImportResult):
    """An MPC tree read. ``frame`` has, beside :data:`COLUMNS`, ``extra`` (what
    MPC said), ``seq`` (from the beam number: a check has the same key in every
    import) and ``check`` (the index into :attr:`checks`)."""

    checks: list[CheckFile] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        """Distinct rejected data lines over all Results.csv files."""
        return len({(e.file, e.line) for e in self.errors
                    if e.line is not None and e.line > 1})


#: Check folders of a tree: (folder, Results.csv as shown, its reader).
_Checks = list[tuple[CheckFolder, str, Callable[[], bytes]]]


def _plan(files: list[str], dirs: set[str]
          ) -> tuple[dict[str, str | None], list[tuple[str, str]]]:
    """Check folder -> its Results.csv (or None), and (folder, why) skipped; a
    folder in a check folder is the check's, one holding check folders a
    container (not reported). Paths are relative, with "/"."""
    for path in [*files, *dirs]:
        dirs.update(_ancestors(path))
    checks = {d: None for d in dirs if check_folder(d.rpartition("/")[2])}
    inside = {d for d in dirs if any(a in checks for a in _ancestors(d))}
    loose = set()
    for path in files:
        parent, _, base = path.rpartition("/")
        if base.lower() == _RESULTS and parent in checks:
            checks[parent] = path
        elif base.lower() == _RESULTS and parent not in inside:
            loose.add(parent)
    parents = {d.rpartition("/")[0] for d in dirs}
    skipped = []
    for d in sorted((dirs | (loose & {""})) - inside):
        if d in checks and checks[d] is None:
            skipped.append((d, "check folder without a Results.csv; skipped"))
        elif d not in checks and (d in loose or d not in parents):
            what = "holds a Results.csv" if d in loose else "holds no check folder"
            skipped.append((d, f"not an MPC check folder ({what}; a check folder "
                               f"is named {LAYOUT}); skipped"))
    return checks, skipped


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


@cache
def _units(test: str) -> frozenset[str]:
    return frozenset(allowed_units(test))


def _listing(base: str, plan: tuple, reader: Callable[[str], bytes]
             ) -> tuple[_Checks, list[RowError]]:
    """The plan's checks in time order with their readers; skipped as errors."""
    checks, skipped = plan
    shown = (lambda p: f"{base}/{p}" if p else base) if base != "." else str
    listed = sorted(((check_folder(d.rpartition("/")[2]), shown(f),
                      lambda f=f: reader(f)) for d, f in checks.items() if f),
                    key=lambda c: (c[0].serial, c[0].date, c[0].beam_no, c[1]))
    return listed, [RowError(shown(d), None, None, why) for d, why in skipped]


def _dir_checks(root: Path) -> tuple[_Checks, list[RowError]]:
    """Check folders under a directory (which may be one itself)."""
    files, dirs, top = [], set(), str(root)
    for here, subdirs, names in os.walk(top):
        rel = root.name + here[len(top):].replace(os.sep, "/")
        subdirs.sort()
        dirs.add(rel)
        if check_folder(os.path.basename(here)):
            subdirs[:] = []  # the check's own folders
            names = [n for n in names if n.lower() == _RESULTS]
        files += [f"{rel}/{n}" for n in names]
    return _listing(str(root.parent), _plan(files, dirs),
                    lambda f: (root.parent / f).read_bytes())


def _zip_checks(path: Path, archive: zipfile.ZipFile
                ) -> tuple[_Checks, list[RowError]]:
    """Check folders in a zip; a member path leaving the archive refuses it."""
    files, dirs, members = [], set(), {}
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
            raise InputError(f"{path}: member '{info.filename}' points outside the "
                             "archive; the archive is refused, nothing imported")
        if info.is_dir():
            dirs.add(name.rstrip("/"))
        else:
            files.append(name)
            members[name] = info
    checks, skipped = _plan(files, dirs)
    for d, f in checks.items():
        if f and members[f].file_size > _MAX_BYTES:
            checks[d] = None
            skipped.append((d, "its Results.csv is too large to be MPC's; skipped"))
    return _listing(str(path), (checks, skipped),
                    lambda f: archive.read(members[f]))


class _Record(NamedTuple):
    line: int
    quantity: str
    unit: str
    value: float
    threshold: float | None
    evaluation: str | None


def _number(cell: str, comma: bool) -> float | None:
    """A finite number (a decimal comma allowed when ``comma``), else None."""
    try:
        value = float(cell.replace(",", ".") if comma else cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_results(data: bytes, file: str
                   ) -> tuple[list[_Record], list[RowError], int]:
    """A Results.csv's usable records, its problems, and its data rows."""
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:  # Windows-1252, as Windows writes the degree sign
        lines = data.decode("cp1252", errors="replace").splitlines()
    top = next((i for i, line in enumerate(lines) if line.strip()), None)
    if top is None:
        return [], [RowError(file, None, None, "Results.csv is empty")], 0
    delimiter = max(",;\t", key=lines[top].count)
    comma = delimiter != ","
    rows = list(csv.reader(lines[top:], delimiter=delimiter, skipinitialspace=True))
    roles = {_HEADER.get(norm(h)): i for i, h in enumerate(rows[0])}
    body = [(top + 1 + n, r) for n, r in enumerate(rows[1:], 1)
            if any(c.strip() for c in r)]
    missing = [_SHOWN[r] for r in ("name", "value") if r not in roles]
    if missing:
        return [], [RowError(file, top + 1, missing[0], (
            f"header lacks the '{missing[0]}' column (MPC writes Name [Unit],Value,"
            f"Threshold,Evaluation Result); none of its {len(body)} rows read"))
        ], len(body)
    errors = [RowError(file, top + 1, _SHOWN[r], f"no '{_SHOWN[r]}' column; values "
                       "read without it") for r in ("threshold", "evaluation")
              if r not in roles]
    records = []
    for line, row in body:
        cell = [c.strip() for c in row] + [""] * len(rows[0])
        name = _NAME.fullmatch(cell[roles["name"]])
        value = _number(cell[roles["value"]], comma)
        if name is None or value is None:
            errors.append(RowError(file, line, *_problem(cell, roles, name)))
            continue
        records.append(_Record(
            line, name[1], name[2], value,
            _number(cell[roles["threshold"]], comma) if "threshold" in roles else None,
            cell[roles["evaluation"]] or None if "evaluation" in roles else None))
    return records, errors, len(body)


def _problem(cell: list[str], roles: dict, name: re.Match | None) -> tuple[str, str]:
    """(column, reason) of an unusable data row."""
    quantity, value = cell[roles["name"]], cell[roles["value"]]
    if name is None:
        return "Name [Unit]", f"name '{quantity}' has no [unit]"
    if value == "":
        return "Value", f"{quantity}: no value"
    return "Value", f"{quantity}: value '{value}' is not a number"


def _check_rows(check: CheckFolder, records: list[_Record], file: str,
                leaves: bool) -> tuple[list[tuple], list[RowError]]:
    """(test, unit, value, line, extra) of a check's records, and rejections;
    with ``leaves``, each MLC leaf as its own series too (``mpc_mlc_leaf_a12``)."""
    rows, errors, seen, banks = [], [], {}, {}
    for rec in records:
        leaf = LEAF.fullmatch(rec.quantity)
        test = (f"mpc_mlc_{'leaf' if leaf['a'] else 'backlash_leaf'}_"
                f"{(leaf['a'] or leaf['b']).lower()}{int(leaf['leaf'])}"
                if leaf else QUANTITIES.get(rec.quantity))
        unit = normalise_unit(rec.unit)
        if rec.quantity in seen:
            why = f"{rec.quantity} again (first at line {seen[rec.quantity]})"
        elif test is None:
            why = f"MPC quantity '{rec.quantity}' is not mapped to a test"
        elif unit not in _units(test):
            why = (f"{rec.quantity} in '{rec.unit}' where {test} is in "
                   f"{', '.join(sorted(_units(test)))}")
        else:
            why = ""
        seen.setdefault(rec.quantity, rec.line)
        if why:
            errors.append(RowError(file, rec.line, "Name [Unit]", why + "; not "
                                   "imported"))
            continue
        if leaf:
            kind = "offset" if leaf["a"] else "backlash"
            banks.setdefault((kind, (leaf["a"] or leaf["b"]).lower()), []).append(rec)
        if leaves or not leaf:
            rows.append((test, unit, rec.value, rec.line, _extra(check, rec)))
    return rows + _bank_summaries(check, banks, rows), errors


def _extra(check: CheckFolder, rec: _Record) -> dict:
    return {"source": "MPC", "quantity": f"{rec.quantity} [{rec.unit}]",
            "threshold": rec.threshold, "evaluation": rec.evaluation,
            "template": check.template, "folder": check.name}


def _bank_summaries(check: CheckFolder, banks: dict, rows: list) -> list[tuple]:
    """Per bank, the leaf with the largest absolute value: noted on MPC's own
    summary row when the file has one, else the bank's value itself."""
    out, given = [], {row[0]: row for row in rows}
    for (kind, bank), recs in sorted(banks.items()):
        worst = max(recs, key=lambda r: abs(r.value))
        about = {"leaves": len(recs), "worst_leaf_value": worst.value,
                 "worst_leaf": int(LEAF.fullmatch(worst.quantity)["leaf"])}
        test = {"offset": "mpc_mlc_max_offset_", "backlash": "mpc_mlc_backlash_"}[
            kind] + bank
        if test in given:
            given[test][4].update(about)
            continue
        failed = any((r.evaluation or "").lower() == "fail" for r in recs)
        group = worst.quantity.rsplit("/", 1)[0]
        out.append((test, "mm", abs(worst.value), worst.line, _extra(check, worst) | {
            "quantity": f"largest |{group}/*| [{worst.unit}]",
            "evaluation": "Fail" if failed else worst.evaluation} | about))
    return out


def read_mpc(path: str | Path, registry: Mapping[str, str] | None = None,
             leaves: bool = False) -> TreeResult:
    """Read an MPC TDS tree: a folder, a zip of folders, one check folder or the
    ``Results.csv`` in one.

    Parameters
    ----------
    path : str or Path
        The tree.
    registry : mapping of str to str, optional
        Serial number -> machine name (the machine registry's serials, which
        ``QAEngine`` passes in); default none: every serial is then reported
        as unknown, never guessed.
    leaves : bool
        Also keep each MLC leaf as its own series (default: per bank only).

    Returns
    -------
    TreeResult

    Raises
    ------
    InputError
        No usable record in any check folder, an unreadable zip, or a zip
        member pointing outside the archive.
    """
    path = Path(path)
    known = registry or {}
    serials = {serial_key(k): v for k, v in known.items()}
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                return _read(path, *_zip_checks(path, archive), serials, leaves)
        except zipfile.BadZipFile as exc:
            raise InputError(f"{path}: not a readable zip archive ({exc})") from None
    root = path.parent if path.is_file() else path
    return _read(path, *_dir_checks(root if root.name else root.resolve()),
                 serials, leaves)


def _read(path: Path, found: _Checks, skipped: list[RowError],
          serials: Mapping[str, str], leaves: bool) -> TreeResult:
    """The checks found, read into one result (see :func:`read_mpc`)."""
    cols: dict[str, list] = {k: [] for k in (*_KEYS, "test", "unit", "value",
                                             "source_line", "extra")}
    errors, checks, ranks, first, rows_read = list(skipped), [], {}, {}, 0
    for check, shown, read in found:
        machine = serials.get(serial_key(check.serial))
        try:
            data = b"" if machine is None else read()
        except (OSError, EOFError, RuntimeError, NotImplementedError,
                zipfile.BadZipFile, zlib.error) as exc:  # a damaged file or member
            errors.append(RowError(shown, None, None, f"cannot be read ({exc})"))
            continue
        digest = hashlib.sha256(check.name.encode() + b"\0" + data).hexdigest()
        if machine is None or digest in first:
            errors.append(RowError(shown, None, None, (
                f"the same check as {first[digest]}; read once" if machine else
                f"check folder {check.name}: serial {check.serial} is not in the "
                f"machine registry; add serial: \"{check.serial}\" to its machine in "
                "machines.yaml (the data directory's); folder not imported")))
            continue
        first[digest] = shown
        records, problems, seen = _parse_results(data, shown)
        rows, rejected = _check_rows(check, records, shown, leaves)
        problems += rejected
        key = (*check[1:4], check.energy)  # serial, date-time, beam no, energy
        rank = ranks[key] = ranks.get(key, -1) + 1
        for key, item in zip(_KEYS, (check.date, machine, check.energy,
                                     100 * check.beam_no + rank, len(checks)),
                             strict=True):
            cols[key] += [item] * len(rows)
        for key, items in zip(("test", "unit", "value", "source_line", "extra"),
                              zip(*rows, strict=True) if rows else [()] * 5,
                              strict=True):
            cols[key] += items
        checks.append(CheckFile(shown, digest, seen, len(
            {e.line for e in problems if e.line is not None and e.line > 1})))
        errors += problems
        rows_read += seen
    if not cols["value"]:
        shown = "; ".join(str(e) for e in errors[:5])
        raise InputError(f"{path}: no usable MPC measurement in {len(checks)} check "
                         f"folder(s) read (a check folder is named {LAYOUT}, with "
                         f"a Results.csv){'; first: ' + shown if shown else ''}")
    frame = pd.DataFrame(cols).assign(raw_value=float("nan"), raw_unit=None,
                                      baseline=float("nan"))
    frame["date"] = pd.to_datetime(frame["date"])
    return TreeResult(str(path), "mpc", frame[[*COLUMNS, "extra", "seq", "check"]],
                      empty_events(), errors, rows_read, checks=checks)


#: Columns of a check's rows that come from its folder.
_KEYS = ("date", "machine", "energy", "seq", "check")
