"""Varian MPC TDS trees built from a known truth, in the published layout.

The layout is the one QATrack+'s QCPump reads (qatrackplus/qcpump,
qcpump/contrib/pumps/mpc/mpc.py, test_mpc.py and docs/pumps/mpc.rst):

* check folders ``NDS-WKS-SN<serial>-<YYYY-MM-DD-HH-MM-SS>-<beam no>-
  <template><energy><x|e>[FFF][HDTSE][MVkV][EnhancedCouch]`` (Halcyon:
  ``HAL-TRT-SN...``; older versions: ``...-<beam no>-<energy><x|e>[FFF]-Beam``
  or ``-Geometry``), under ``TDS/<serial>/MPCChecks/`` (QCPump's fast search
  looks in ``*/MPCChecks/**``);
* in each, ``Results.csv``: ``Name [Unit],Value,Threshold,Evaluation Result``
  and one row per quantity; the names QCPump shows (BeamGroup/...,
  IsoCenterGroup/..., CollimationGroup/MLCGroup/MLCMaxOffsetA, ...
  MLCLeavesA/MLCLeaf<n>, CollimationGroup/MLCBacklashGroup/MLCBacklashLeavesA/
  MLCBacklashLeaf<n>, GantryGroup/...). The jaw and couch names are not shown
  by QCPump; the ones written here (``CollimationGroup/JawsGroup/JawX1``,
  ``EnhancedCouchGroup/CouchLat``, ...) are the importer's assumption.

The truth (:meth:`Check.expected`) is computed here from the values written,
with this module's own name -> test table, not the importer's.
"""

from __future__ import annotations

import random
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

#: Results.csv name -> (test, unit as written, threshold), per group of rows.
BEAM = [("BeamGroup/BeamOutputChange", "mpc_output_change", "%", 2.0),
        ("BeamGroup/BeamUniformityChange", "mpc_uniformity_change", "%", 2.0),
        ("BeamGroup/BeamCenterShift", "mpc_beam_center_shift", "mm", 0.5)]
ISO = [("IsoCenterGroup/IsoCenterSize", "mpc_iso_size", "mm", 0.5),
       ("IsoCenterGroup/IsoCenterMVOffset", "mpc_iso_mv_offset", "mm", 0.5),
       ("IsoCenterGroup/IsoCenterKVOffset", "mpc_iso_kv_offset", "mm", 0.5)]
MLC = [("CollimationGroup/MLCGroup/MLCMeanOffsetA", "mpc_mlc_mean_offset_a", "mm", 1.0),
       ("CollimationGroup/MLCGroup/MLCMeanOffsetB", "mpc_mlc_mean_offset_b", "mm", 1.0)]
JAWS = [(f"CollimationGroup/JawsGroup/Jaw{j}", f"mpc_jaw_{j.lower()}", "mm", 1.0)
        for j in ("X1", "X2", "Y1", "Y2")]
GANTRY = [("GantryGroup/GantryAbsolute", "mpc_gantry_absolute", "°", 0.3),
          ("GantryGroup/GantryRelative", "mpc_gantry_relative", "°", 0.3)]
COUCH = [(f"EnhancedCouchGroup/Couch{a}", f"mpc_couch_{a.lower()}", u, t)
         for a, u, t in (("Lat", "mm", 1.0), ("Lng", "mm", 1.0), ("Vrt", "mm", 1.0),
                         ("Rtn", "°", 0.3), ("Pitch", "°", 0.3), ("Roll", "°", 0.3))]
LEAF = "CollimationGroup/MLCGroup/MLCLeaves{bank}/MLCLeaf{n}"
BACKLASH = ("CollimationGroup/MLCBacklashGroup/MLCBacklashLeaves{bank}/"
            "MLCBacklashLeaf{n}")
MAX_OFFSET = "CollimationGroup/MLCGroup/MLCMaxOffset{bank}"
UNITS = {"%": "%", "mm": "mm", "°": "deg"}
HEADER = "Name [Unit],Value,Threshold,Evaluation Result"


@dataclass
class Row:
    """One Results.csv row as written (the value is what the file says)."""

    name: str
    unit: str
    value: float
    threshold: float | None
    test: str | None = None  # None: a per-leaf row

    def line(self) -> str:
        """The CSV line: ``Name [Unit],Value,Threshold,Evaluation Result``."""
        threshold = "" if self.threshold is None else f"{self.threshold:g}"
        verdict = ("Pass" if self.threshold is None or abs(self.value) <= self.threshold
                   else "Fail")
        return f"{self.name} [{self.unit}],{self.value:.2f},{threshold},{verdict}"


@dataclass
class Check:
    """One MPC check folder and the rows of its Results.csv."""

    prefix: str
    serial: str
    when: datetime
    beam_no: int
    check: str  # the folder name after the beam number, e.g. BeamCheckTemplate6x
    energy: str  # canonical, e.g. 6FFF
    rows: list[Row] = field(default_factory=list)
    encoding: str = "utf-8"

    @property
    def folder(self) -> str:
        """The check folder's name."""
        return (f"{self.prefix}-SN{self.serial}-{self.when:%Y-%m-%d-%H-%M-%S}-"
                f"{self.beam_no:04d}-{self.check}")

    def text(self) -> str:
        """The Results.csv text (CRLF line ends, as written on Windows)."""
        return "\r\n".join([HEADER, *(r.line() for r in self.rows)]) + "\r\n"

    def expected(self, leaves: bool = False) -> list[tuple[str, str, float]]:
        """(test, unit, value) the importer must store for this check.

        Per bank, MPC's own MLCMaxOffset row when written, else the largest
        absolute leaf offset; the backlash per bank is the largest absolute
        leaf backlash; with ``leaves``, every leaf as ``mpc_mlc_leaf_a12``.
        """
        out = [(r.test, UNITS[r.unit], round(r.value, 2)) for r in self.rows if r.test]
        kinds = (("leaf", LEAF, "mpc_mlc_max_offset_"),
                 ("backlash_leaf", BACKLASH, "mpc_mlc_backlash_"))
        for kind, pattern, summary in kinds:
            for bank in "AB":
                prefix = pattern.format(bank=bank, n="")
                values = {int(r.name[len(prefix):]): round(r.value, 2)
                          for r in self.rows if r.name.startswith(prefix)}
                if not values:
                    continue
                if leaves:
                    out += [(f"mpc_mlc_{kind}_{bank.lower()}{n}", "mm", v)
                            for n, v in values.items()]
                if not any(t == summary + bank.lower() for t, _, _ in out):
                    out.append((summary + bank.lower(), "mm",
                                max(abs(v) for v in values.values())))
        return out


def rows_of(rng: random.Random, spec: list, scale: float) -> list[Row]:
    """Rows of a group (name, test, unit, threshold), normal around 0."""
    return [Row(name, unit, round(rng.gauss(0, scale * thr), 2), thr, test)
            for name, test, unit, thr in spec]


def mlc_rows(rng: random.Random, leaves: int = 60, summary: bool = True
             ) -> list[Row]:
    """MLC rows: MPC's per-bank summary (when ``summary``), then every leaf's
    offset and backlash, bank A then B."""
    offsets = {b: [round(rng.gauss(0, 0.25), 2) for _ in range(leaves)] for b in "AB"}
    rows = []
    if summary:
        rows += [Row(MAX_OFFSET.format(bank=b), "mm", max(map(abs, offsets[b])), 1.0,
                     f"mpc_mlc_max_offset_{b.lower()}") for b in "AB"]
        rows += rows_of(rng, MLC, 0.1)
    for bank in "AB":
        rows += [Row(LEAF.format(bank=bank, n=n + 1), "mm", v, 1.0)
                 for n, v in enumerate(offsets[bank])]
    for bank in "AB":
        rows += [Row(BACKLASH.format(bank=bank, n=n + 1), "mm",
                     round(abs(rng.gauss(0, 0.1)), 2), 1.0) for n in range(leaves)]
    return rows


def geometry_rows(rng: random.Random, leaves: int = 60, couch: bool = False
                  ) -> list[Row]:
    """Rows of a geometry check: isocentre, beam, MLC, jaws, gantry and, for
    the enhanced couch check, the couch axes."""
    rows = (rows_of(rng, ISO, 0.3) + rows_of(rng, BEAM, 0.3) + mlc_rows(rng, leaves)
            + rows_of(rng, JAWS, 0.3) + rows_of(rng, GANTRY, 0.3))
    return rows + (rows_of(rng, COUCH, 0.3) if couch else [])


def folder_energy(energy: str) -> str:
    """How MPC writes a canonical energy in a folder name (6FFF -> 6xFFF)."""
    if energy.endswith("HDTSE"):
        return energy.removesuffix("HDTSE") + "eHDTSE"
    if energy.endswith("FFF"):
        return energy.removesuffix("FFF") + "xFFF"
    return energy[:-1] + energy[-1].lower()


def session(rng: random.Random, prefix: str, serial: str, day: date,
            energies: list[str], leaves: int = 60) -> list[Check]:
    """One morning's MPC checks: the geometry check on the first energy, a beam
    check on each other, the enhanced couch check on Mondays and the enhanced
    MLC check on the first working day of the month. Two checks share each
    second (QCPump's examples have several folders at one time)."""
    start = datetime(day.year, day.month, day.day, 7, rng.randrange(60),
                     rng.randrange(60))
    first, *others = energies
    mvkv = f"GeometryCheckTemplate{folder_energy(first)}MVkV"
    checks = [Check(prefix, serial, start, 0, mvkv, first,
                    geometry_rows(rng, leaves))]
    for k, energy in enumerate(others, 1):
        checks.append(Check(prefix, serial, start + timedelta(seconds=75 * (k // 2)),
                            k, f"BeamCheckTemplate{folder_energy(energy)}", energy,
                            rows_of(rng, BEAM, 0.3)))
    later = start + timedelta(minutes=20)
    if day.weekday() == 0:
        checks.append(Check(prefix, serial, later, 20, f"{mvkv}EnhancedCouch", first,
                            geometry_rows(rng, leaves, couch=True)))
    if _first_working_day(day):
        checks.append(Check(prefix, serial, later + timedelta(minutes=5), 21,
                            f"EnhancedMLCCheckTemplate{folder_energy(first)}", first,
                            mlc_rows(rng, leaves, summary=False)))
    return checks


def _first_working_day(day: date) -> bool:
    first = day.replace(day=1)
    while first.weekday() >= 5:
        first += timedelta(days=1)
    return day == first


def working_days(start: date, count: int) -> list[date]:
    """``count`` working days (Monday to Friday) from ``start``."""
    out, day = [], start
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def write_tree(root: Path, checks: list[Check]) -> Path:
    """Write ``root/TDS/<serial>/MPCChecks/<folder>/Results.csv``; return TDS."""
    tds = root / "TDS"
    for check in checks:
        folder = tds / check.serial / "MPCChecks" / check.folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Results.csv").write_bytes(check.text().encode(check.encoding))
    return tds


def write_zip(path: Path, tree: Path) -> Path:
    """A zip of the tree with its folder as the top member (as Windows zips)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(tree.rglob("*")):
            archive.write(file, file.relative_to(tree.parent).as_posix())
    return path
