"""Daily QA 3 trend exports built from a known truth, in the published layouts.

The columns and their order are those of QATrack+'s QCPump trend queries
(qatrackplus/qcpump, qcpump/contrib/pumps/dqa3/queries/fdb/01.04/trend.sql
for the Firebird Sncdata.fdb database, atlas/1.5/trend.sql for Atlas on SQL
Server); the relations between a metric's value, baseline and difference are
those the queries compute (fdb/01.03 and atlas/1.5: ``dose_baseline =
100*dose/(100 + dose_diff)``, ``axsym_baseline = axsym - axsym_diff``,
``energy = energy_diff`` with ``energy_baseline = 0``). Field size and shift
are in cm (QATrack+'s scripts/create_dqa3_testlist.py), temperature in °C and
pressure in kPa. QCPump's documentation shows no title lines above the header
(docs/pumps/dqa3.rst), so none are written.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

#: QCPump's Firebird 01.04 trend query, column for column.
FDB_COLUMNS = [
    "data_key", "work_started", "comment", "machine_id", "machine_name",
    "room_name", "signature", "device", "beam_energy", "beam_type", "beam_name",
    "wedge_type", "wedge_angle", "wedge_orient", "temperature", "pressure",
    "dose", "dose_baseline", "dose_diff", "axsym", "axsym_baseline", "axsym_diff",
    "trsym", "trsym_baseline", "trsym_diff", "qaflat", "qaflat_baseline",
    "qaflat_diff", "energy", "energy_baseline", "energy_diff", "xsize",
    "xsize_baseline", "xsize_diff", "ysize", "ysize_baseline", "ysize_diff",
    "xshift", "xshift_baseline", "xshift_diff", "yshift", "yshift_baseline",
    "yshift_diff",
]
#: QCPump's Atlas 1.5 trend query: the machine before the room and the id.
ATLAS_COLUMNS = [
    "data_key", "work_started", "comment", "machine_name", "room_name",
    "machine_id", "signature", "device", *FDB_COLUMNS[8:],
]
#: Canonical test of each Daily QA 3 metric (the reader's vocabulary).
METRIC_TESTS = {
    "dose": "output", "axsym": "symmetry_inplane", "trsym": "symmetry_crossplane",
    "qaflat": "flatness", "energy": "energy", "xsize": "field_size_x",
    "ysize": "field_size_y", "xshift": "beam_shift_x", "yshift": "beam_shift_y",
}
#: Beams: (beam_energy, beam_type, beam_name, canonical energy).
BEAMS = [
    ("6", "Photon", "6 MV", "6X"),
    ("10", "Photon", "10 MV", "10X"),
    ("6", "FFF", "6 MV FFF", "6FFF"),
    ("9", "Electron", "9 MeV", "9E"),
]
MACHINES = [("1", "TrueBeam1", "Bunker 1"), ("2", "TrueBeam2", "Bunker 2")]


@dataclass
class Record:
    """One Daily QA 3 measurement (one beam at one time) and its metrics."""

    line: int
    data_key: int
    when: datetime
    machine_id: str
    machine: str
    room: str
    beam: tuple[str, str, str, str]
    temperature: float
    pressure: float
    device: str
    #: metric -> (value, baseline, diff) exactly as written in the file.
    metrics: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    #: wedge_type and wedge_angle (an open beam: "" and "0").
    wedge: tuple[str, str] = ("", "0")

    @property
    def energy(self) -> str:
        """The canonical energy this record's beam is."""
        return self.beam[3]


def _metrics(day: int, beam: int, machine: int) -> dict[str, tuple[str, str, str]]:
    """Deterministic values, baselines and differences, related as QCPump's
    queries relate them, written with three decimals."""
    k = day + 3 * beam + 7 * machine
    dose_diff = round(0.05 * ((k * 7) % 11 - 5), 3)
    dose_base = 100.0 + beam
    dose = round(dose_base * (100 + dose_diff) / 100, 3)
    out = {"dose": (f"{dose:.3f}", f"{dose_base:.3f}", f"{dose_diff:.3f}")}
    for name, centre in (("axsym", 0.6), ("trsym", -0.4), ("qaflat", 1.1)):
        diff = round(0.01 * ((k * 5 + len(name)) % 9 - 4), 3)
        base = round(centre + 0.1 * beam, 3)
        out[name] = (f"{base + diff:.3f}", f"{base:.3f}", f"{diff:.3f}")
    energy_diff = round(0.02 * ((k * 3) % 7 - 3), 3)
    out["energy"] = (f"{energy_diff:.3f}", "0", f"{energy_diff:.3f}")
    for name, centre in (("xsize", 20.0), ("ysize", 20.0), ("xshift", 0.0),
                         ("yshift", 0.0)):
        diff = round(0.01 * ((k * 2 + len(name)) % 5 - 2), 3)
        out[name] = (f"{centre + diff:.3f}", f"{centre:.3f}", f"{diff:.3f}")
    return out


def truth(days: int = 10, start: datetime = datetime(2025, 3, 3, 7, 5)
          ) -> list[Record]:
    """Every record of a two-machine, four-beam fleet over ``days`` days."""
    records = []
    for day in range(days):
        for m, (mid, name, room) in enumerate(MACHINES):
            for b, beam in enumerate(BEAMS):
                when = start + timedelta(days=day, minutes=3 * b + 30 * m,
                                         seconds=17 * b)
                records.append(Record(
                    line=len(records) + 2, data_key=1000 + len(records), when=when,
                    machine_id=mid, machine=name, room=room, beam=beam,
                    temperature=round(21.0 + 0.1 * ((day + b) % 7), 1),
                    pressure=round(101.3 - 0.05 * ((day * 3 + m) % 9), 2),
                    device=f"DQA3-{4711 + m}", metrics=_metrics(day, b, m),
                ))
    return records


def row(record: Record, columns: list[str]) -> dict[str, str]:
    """The cells of one record under QCPump's column names."""
    energy, kind, name, _ = record.beam
    cells = {
        "data_key": str(record.data_key),
        "work_started": record.when.strftime("%Y-%m-%d %H:%M:%S"),
        "comment": "", "machine_id": record.machine_id,
        "machine_name": record.machine, "room_name": record.room,
        "signature": "physicist", "device": record.device,
        "beam_energy": energy, "beam_type": kind, "beam_name": name,
        "wedge_type": record.wedge[0], "wedge_angle": record.wedge[1],
        "wedge_orient": "",
        "temperature": f"{record.temperature:.1f}",
        "pressure": f"{record.pressure:.2f}",
    }
    for metric, (value, base, diff) in record.metrics.items():
        cells[metric], cells[f"{metric}_baseline"], cells[f"{metric}_diff"] = (
            value, base, diff)
    return {c: cells[c] for c in columns}


def write_export(path: Path, records: list[Record], flavour: str = "fdb",
                 rename: dict[str, str] | None = None,
                 drop: tuple[str, ...] = (), reverse: bool = False) -> Path:
    """Write the records as a trend export of ``flavour`` ("fdb" or "atlas").

    ``rename`` gives other spellings of column names (``work_completed``,
    ``dqa3_unit_name``, ``beamenergy``, ``Work Started``); ``drop`` leaves
    columns out; ``reverse`` writes the columns in reverse order.
    """
    columns = FDB_COLUMNS if flavour == "fdb" else ATLAS_COLUMNS
    columns = [c for c in columns if c not in drop]
    columns = columns[::-1] if reverse else columns
    rename = rename or {}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([rename.get(c, c) for c in columns])
        for record in records:
            cells = row(record, columns)
            writer.writerow([cells[c] for c in columns])
    return path
