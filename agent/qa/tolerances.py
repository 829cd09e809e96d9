"""Tolerance tables as data: TG-142, MPPG 9.a, TG-218 and institutional overrides.

The shipped tables are ``knowledge/tolerances/*.yaml``; a department's
``institutional.yaml`` (shipped empty, or in the data directory) wins: a row
with a shipped row's ``id`` replaces it, a new id adds a row that is preferred
over the shipped ones for the same test. Machines and their class (non-IMRT,
IMRT, SRS/SBRT) come from ``machines.yaml``.

A check returns one of TG-142's levels: ``ok``, ``inspection`` (still inside
tolerance but unusual: review) or ``action`` (beyond tolerance: scheduled or
immediate action as the institution decides).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from agent.errors import ServiceError
from agent.vocabulary import MACHINE_CLASSES, TABLE_FREQUENCIES, TESTS, beam_type

FREQUENCIES = TABLE_FREQUENCIES
Level = Literal["ok", "inspection", "action"]
LimitValue = float | str | None


class ToleranceFileError(ServiceError):
    """A tolerance or machine file cannot be used; the message says where."""


class ToleranceRow(BaseModel):
    """One row of a tolerance table."""

    id: str
    table: str = ""
    frequency: Literal["daily", "weekly", "monthly", "annual"]
    description: str
    test: str | None = None
    beam: Literal["photon", "electron", "any"] = "any"
    unit: str
    kind: Literal["deviation", "minimum", "functional"] = "deviation"
    nominal: float = 0.0
    limits: dict[str, LimitValue]
    action_limits: dict[str, LimitValue] | None = None
    inspection_limits: dict[str, LimitValue] | None = None
    verified: bool = True
    note: str = ""
    document: str = ""
    citation: str = ""
    institutional: bool = False

    @field_validator("limits", "action_limits", "inspection_limits")
    @classmethod
    def _known_classes(cls, value: dict | None) -> dict | None:
        if value is None:
            return value
        unknown = set(value) - set(MACHINE_CLASSES)
        if unknown:
            raise ValueError(
                f"unknown machine class(es) {sorted(unknown)}; "
                f"use {', '.join(MACHINE_CLASSES)}"
            )
        return value

    @field_validator("test")
    @classmethod
    def _known_test(cls, value: str | None) -> str | None:
        if value is not None and value not in TESTS:
            raise ValueError(f"unknown test {value!r}; known: {sorted(TESTS)}")
        return value

    def limit(self, machine_class: str, which: str = "limits") -> float | None:
        """The numeric limit for a machine class, or None (NA or functional)."""
        table = getattr(self, which)
        if not table:
            return None
        value = table.get(machine_class)
        if value is None or isinstance(value, str):
            return None
        return float(value)

    @property
    def source(self) -> str:
        """Human-readable source: document and table."""
        parts = [self.document or "", self.table]
        text = ", ".join(p for p in parts if p)
        if not self.verified:
            text += " (unverified: check the original report)"
        return text


class Machine(BaseModel):
    """A linac in the department's registry."""

    name: str
    model: str = ""
    machine_class: Literal["non-IMRT", "IMRT", "SRS/SBRT"] = "IMRT"
    energies: list[str] = Field(default_factory=list)
    #: Serial number as Varian MPC writes it in its check folder names
    #: (``NDS-WKS-SN<serial>-...``): how an MPC import finds the machine.
    serial: str | None = None

    @field_validator("serial", mode="before")
    @classmethod
    def _serial_as_text(cls, value: object) -> str | None:
        if value is None:
            return None
        # YAML reads ``serial: 1234`` as a number; quoting keeps leading zeros.
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError('serial must be text, e.g. serial: "1234"')
        return str(value).strip() or None


def serial_key(serial: str) -> str:
    """A serial number as compared: upper case, without a leading ``SN``."""
    return serial.strip().upper().removeprefix("SN")


def serial_registry(machines: Iterable[Machine]) -> dict[str, str]:
    """Serial number (:func:`serial_key`) -> machine name, for MPC imports.

    Raises
    ------
    ToleranceFileError
        When two machines give the same serial number.
    """
    found: dict[str, str] = {}
    for machine in machines:
        if not machine.serial:
            continue
        key = serial_key(machine.serial)
        if found.get(key, machine.name) != machine.name:
            raise ToleranceFileError(
                f"machines.yaml: serial {machine.serial!r} is given to both "
                f"{found[key]} and {machine.name}; each machine has its own")
        found[key] = machine.name
    return found


def load_machines(tolerance_dir: Path, extra_dirs: Iterable[Path] = ()
                  ) -> list[Machine]:
    """The machine registry: the shipped ``machines.yaml``, then each extra
    directory's own (a machine of the same name there wins).

    Raises
    ------
    ToleranceFileError
        When a registry file cannot be read or a machine entry is invalid.
    """
    machines: dict[str, Machine] = {}
    paths = [tolerance_dir / "machines.yaml"]
    paths += [Path(extra) / "machines.yaml" for extra in extra_dirs]
    for path in paths:
        if not path.is_file():
            continue
        for i, raw in enumerate(_read_yaml(path).get("machines") or []):
            try:
                machine = Machine(**raw)
            except (ValidationError, TypeError) as exc:
                raise ToleranceFileError(f"{path}: machine #{i + 1}: {exc}") from None
            machines[machine.name] = machine
    return list(machines.values())


# --- tolerance arithmetic: the one place "beyond", "margin" and bands are computed


def deviation(values: np.ndarray | float, nominal: float) -> np.ndarray:
    """Distance of each value from the row's nominal (0 for percent deviations)."""
    return np.abs(np.asarray(values, dtype=float) - nominal)


def beyond(values: np.ndarray | float, kind: str, nominal: float,
           limit: float) -> np.ndarray:
    """Whether each value is beyond a limit of a row.

    A ``minimum`` row (gamma pass rate) is passed below the limit; a
    ``deviation`` row when the distance from its nominal exceeds the limit.
    """
    values = np.asarray(values, dtype=float)
    if kind == "minimum":
        return values < limit
    return deviation(values, nominal) > limit


def margin(value: float, kind: str, nominal: float, limit: float) -> float:
    """How much of its tolerance a value uses: 0 at nominal, 1 at the limit.

    For a minimum row the distance from 100% is compared with the distance of
    the limit from 100% (a 97% pass rate against a 95% limit uses 0.6).
    """
    if kind == "minimum":
        return (100.0 - value) / max(100.0 - limit, 1e-9)
    return abs(value - nominal) / limit if limit else 0.0


def bands(kind: str, nominal: float, limit: float,
          action_limit: float | None) -> dict[str, float | None]:
    """Lower/upper tolerance and action bounds (charts, projected crossings)."""
    if kind == "minimum":
        return {"tol_low": limit, "tol_high": None, "act_low": action_limit,
                "act_high": None}
    return {
        "tol_low": nominal - limit,
        "tol_high": nominal + limit,
        "act_low": None if action_limit is None else nominal - action_limit,
        "act_high": None if action_limit is None else nominal + action_limit,
    }


def spec_limits(kind: str, nominal: float, limit: float,
                unit: str) -> tuple[float | None, float | None, float]:
    """(lower, upper, target) specification limits for capability indices.

    A minimum row has only a lower limit; its target is 100% for a percent
    pass rate (TG-218), else the limit itself.
    """
    if kind == "minimum":
        return limit, None, (100.0 if unit == "%" else limit)
    return nominal - limit, nominal + limit, nominal


@dataclass(frozen=True)
class AppliedTolerance:
    """The tolerance row that applies to a series, with how it was chosen."""

    row: ToleranceRow
    machine_class: str
    limit: float
    action_limit: float | None
    inspection_limit: float | None
    frequency_used: str
    class_assumed: bool

    def level(self, value: float) -> Level:
        """TG-142 level of one value against this row."""
        return str(self.levels(np.array([value], dtype=float))[0])  # type: ignore

    def levels(self, values: np.ndarray) -> np.ndarray:
        """TG-142 level of each value: "ok", "inspection" or "action".

        With an action limit (TG-218), beyond the tolerance is inspection and
        beyond the action limit is action; otherwise beyond the tolerance is
        action and beyond an institutional inspection limit is inspection.
        """
        values = np.asarray(values, dtype=float)
        out = np.full(values.size, "ok", dtype=object)
        if self.action_limit is not None:
            out[self.beyond(values)] = "inspection"
            out[self.beyond(values, self.action_limit)] = "action"
            return out
        if self.inspection_limit is not None:
            out[self.beyond(values, self.inspection_limit)] = "inspection"
        out[self.beyond(values)] = "action"
        return out

    def beyond(self, values: np.ndarray, limit: float | None = None) -> np.ndarray:
        """Whether each value is beyond the tolerance (or the given limit)."""
        return beyond(values, self.row.kind, self.row.nominal,
                      self.limit if limit is None else limit)

    def bands(self) -> dict[str, float | None]:
        """Lower/upper tolerance and action bounds for charts."""
        return bands(self.row.kind, self.row.nominal, self.limit, self.action_limit)

    def spec_limits(self) -> tuple[float | None, float | None, float]:
        """(lower, upper, target) specification limits (see :func:`spec_limits`)."""
        return spec_limits(self.row.kind, self.row.nominal, self.limit,
                           self.row.unit)

    def as_dict(self) -> dict:
        """JSON-ready description of the row that applied."""
        return {
            "id": self.row.id,
            "description": self.row.description,
            "frequency": self.row.frequency,
            "frequency_of_data": self.frequency_used,
            "machine_class": self.machine_class,
            "machine_class_assumed": self.class_assumed,
            "kind": self.row.kind,
            "nominal": self.row.nominal,
            "limit": self.limit,
            "action_limit": self.action_limit,
            "unit": self.row.unit,
            "source": self.row.source,
            "citation": self.row.citation,
            "verified": self.row.verified,
            "institutional": self.row.institutional,
        }


def _read_yaml(path: Path) -> dict:
    try:
        with path.open(encoding="utf-8") as handle:
            # libyaml's loader when built in: the same documents, 8x faster
            # (the tables are read at every start of the command line).
            data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader",
                                                    yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ToleranceFileError(f"{path}{where}: not valid YAML ({exc})") from None
    except OSError as exc:
        raise ToleranceFileError(f"{path}: cannot be read ({exc.strerror})") from None
    return data or {}


def _rows_from(path: Path, institutional: bool) -> list[ToleranceRow]:
    data = _read_yaml(path)
    rows = []
    for i, raw in enumerate(data.get("rows") or []):
        try:
            row = ToleranceRow(
                document=data.get("document", path.stem),
                citation=data.get("citation", ""),
                institutional=institutional,
                **raw,
            )
        except (ValidationError, TypeError) as exc:
            ident = raw.get("id", f"#{i + 1}") if isinstance(raw, dict) else i + 1
            raise ToleranceFileError(
                f"{path}: row {ident}: {exc}. Fix the row or remove it."
            ) from None
        rows.append(row)
    return rows


def frequency_of(days_between: float) -> str:
    """The QA frequency a typical interval (in days) corresponds to."""
    if days_between <= 1.5:
        return "daily"
    if days_between <= 10:
        return "weekly"
    if days_between <= 60:
        return "monthly"
    return "annual"


class ToleranceTables:
    """All tolerance rows and the machine registry, with look-ups.

    Parameters
    ----------
    rows : list of ToleranceRow
    machines : list of Machine
    default_class : str
        Class assumed for a machine missing from the registry.
    """

    def __init__(
        self,
        rows: list[ToleranceRow],
        machines: list[Machine],
        default_class: str = "IMRT",
    ) -> None:
        self.rows = rows
        self.machines = {m.name: m for m in machines}
        self.serials = serial_registry(machines)
        self.default_class = default_class

    def machine_for_serial(self, serial: str) -> str | None:
        """The registered machine with this serial number (MPC), or None."""
        return self.serials.get(serial_key(serial))

    @classmethod
    def load(
        cls,
        tolerance_dir: Path,
        extra_dirs: Iterable[Path] = (),
        default_class: str = "IMRT",
    ) -> ToleranceTables:
        """Load shipped tables and overrides.

        ``tolerance_dir`` holds the shipped ``*.yaml`` tables,
        ``machines.yaml`` and ``institutional.yaml``; each of ``extra_dirs``
        (the data directory) may hold its own ``machines.yaml`` and
        ``institutional.yaml``, which win.
        """
        shipped: dict[str, ToleranceRow] = {}
        for path in sorted(tolerance_dir.glob("*.yaml")):
            if path.name in ("machines.yaml", "institutional.yaml"):
                continue
            for row in _rows_from(path, institutional=False):
                if row.id in shipped:
                    raise ToleranceFileError(f"{path}: duplicate row id {row.id!r}")
                shipped[row.id] = row
        extra_dirs = list(extra_dirs)
        override_files = [tolerance_dir / "institutional.yaml"]
        override_files += [Path(extra) / "institutional.yaml" for extra in extra_dirs]
        for path in override_files:
            if path.is_file():
                for row in _rows_from(path, institutional=True):
                    shipped[row.id] = row
        machines = load_machines(tolerance_dir, extra_dirs)
        return cls(list(shipped.values()), machines, default_class)

    def machine_class(self, machine: str) -> tuple[str, bool]:
        """(class, assumed): the registry's class, or the default when unknown."""
        found = self.machines.get(machine)
        if found is not None:
            return found.machine_class, False
        return self.default_class, True

    def lookup(
        self,
        test: str,
        unit: str,
        energy: str = "",
        frequency: str = "daily",
        machine_class: str = "IMRT",
    ) -> tuple[ToleranceRow, str] | None:
        """The row that applies, and the frequency of that row.

        Preference: institutional rows, then the row of the data's frequency,
        then the nearest other frequency, then symmetric over asymmetric rows,
        then the tightest limit.
        """
        beam = beam_type(energy)
        want = FREQUENCIES.index(frequency) if frequency in FREQUENCIES else 0
        candidates = []
        for row in self.rows:
            if row.test != test or row.kind == "functional" or row.unit != unit:
                continue
            if row.beam != "any" and beam and row.beam != beam:
                continue
            limit = row.limit(machine_class)
            if limit is None:
                continue
            distance = abs(FREQUENCIES.index(row.frequency) - want)
            key = (
                not row.institutional,
                distance,
                row.id.endswith("-asymmetric"),
                limit if row.kind == "deviation" else -limit,
            )
            candidates.append((key, row))
        if not candidates:
            return None
        candidates.sort(key=lambda item: item[0])
        row = candidates[0][1]
        return row, row.frequency

    def applicable(
        self,
        machine: str,
        test: str,
        unit: str,
        energy: str = "",
        frequency: str = "daily",
    ) -> AppliedTolerance | None:
        """The tolerance that applies to a machine's series, or None."""
        machine_class, assumed = self.machine_class(machine)
        found = self.lookup(test, unit, energy, frequency, machine_class)
        if found is None:
            return None
        row, _ = found
        return AppliedTolerance(
            row=row,
            machine_class=machine_class,
            limit=row.limit(machine_class),  # type: ignore[arg-type]
            action_limit=row.limit(machine_class, "action_limits"),
            inspection_limit=row.limit(machine_class, "inspection_limits"),
            frequency_used=frequency,
            class_assumed=assumed,
        )

    def find(
        self,
        test: str | None = None,
        frequency: str | None = None,
        machine_class: str | None = None,
    ) -> list[ToleranceRow]:
        """Rows matching the given test, frequency and class (for look-ups)."""
        out = []
        for row in self.rows:
            if test and row.test != test:
                continue
            if frequency and row.frequency != frequency:
                continue
            if machine_class and row.limits.get(machine_class) is None:
                continue
            out.append(row)
        return out
