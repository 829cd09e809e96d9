"""An analysed image set as measurements in the store, with its provenance.

Each metric of a result becomes one measurement (machine, test, energy,
date-time, value, unit) whose ``extra`` holds the provenance: the images'
sha256, pylinac's version, the analysis and its parameters, the files and
where the date came from. The set's sha256 is the import's identity in the
import log, so the same images imported again add nothing, whatever their
packaging.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from agent.qa.imaging.common import ImageSetResult
from agent.qa.imaging.inputs import ImageError
from agent.qa.importers import ImportResult, ReadOptions
from agent.qa.importers.parsing import department_zone, parse_dates
from agent.qa.importers.records import COLUMNS, SOURCE, empty_events, screen
from agent.qa.schema import import_table, measurement_table, series_table
from agent.qa.store import ImportReport, MeasurementStore


@dataclass(frozen=True)
class When:
    """The date-time a set is stored at, and where it came from."""

    date: pd.Timestamp
    source: str
    zone: str


def resolve_date(data: ImageSetResult, date: str | None,
                 options: ReadOptions) -> When:
    """The department date-time of a set: ``date`` if given, else the headers'.

    A header time with TimezoneOffsetFromUTC is converted to the department's
    zone; one without it is department time already.

    Raises
    ------
    ImageError
        ``date`` is not a date, or neither it nor the headers give one.
    """
    zone = options.timezone or "this machine's zone"
    if date:
        parsed = parse_dates(pd.Series([date]), options).iloc[0]
        if pd.isna(parsed):
            raise ImageError(f"--date {date!r} is not a date; write e.g. 2025-03-04 "
                             "or '2025-03-04 07:30'")
        return When(pd.Timestamp(parsed), "--date", zone)
    if data.acquired is None:
        raise ImageError(f"{data.source}: no AcquisitionDate or ContentDate in the "
                         "DICOM headers; give the date with --date")
    when = data.acquired
    if data.acquired_zone == "UTC":
        local = when.replace(tzinfo=UTC).astimezone(department_zone(options.timezone))
        when = local.replace(tzinfo=None)
    return When(pd.Timestamp(when), f"DICOM {data.acquired_from}", zone)


def provenance(data: ImageSetResult, when: When) -> dict[str, Any]:
    """What every stored measurement of a set carries in ``extra``."""
    return {"images_sha256": data.images_sha256,
            "pylinac_version": data.pylinac_version, "analysis": data.kind,
            "parameters": data.parameters,
            "files": [Path(name).name for name in data.files],
            "date_source": when.source, "timezone": when.zone}


def image_import(data: ImageSetResult, machine: str, when: When,
                 energy: str = "") -> ImportResult:
    """The set's metrics as an import (one row per metric), screened.

    Raises
    ------
    ImageError
        A value or name the store cannot keep (named with the reason).
    """
    common = provenance(data, when)
    rows = [{"date": when.date, "machine": machine, "test": m.test,
             "energy": energy, "value": float(m.value), "unit": m.unit,
             "raw_value": np.nan, "raw_unit": None, "baseline": np.nan,
             "source_line": n, "extra": common | m.extra}
            for n, m in enumerate(data.metrics, start=1)]
    frame = pd.DataFrame(rows, columns=[*COLUMNS, "extra"])
    bad, errors = screen(frame.assign(**{SOURCE: data.source}))
    if bad.any():
        raise ImageError("; ".join(str(e) for e in errors))
    return ImportResult(data.source, f"pylinac-{data.kind}", frame, empty_events(),
                        rows_read=len(frame))


def already_stored(store: MeasurementStore, digest: str) -> bool:
    """Whether an image set with this sha256 was imported before."""
    with store.engine.connect() as conn:
        return conn.execute(select(import_table.c.id).where(
            import_table.c.sha256 == digest)).first() is not None


def store_result(store: MeasurementStore, data: ImageSetResult, machine: str,
                 when: When, energy: str = "") -> ImportReport:
    """Store a set's metrics in one transaction; a set stored before adds nothing.

    Returns
    -------
    ImportReport
        ``already_imported`` when the images' sha256 is in the import log.
    """
    if already_stored(store, data.images_sha256):
        return ImportReport(data.source, f"pylinac-{data.kind}", 0, 0, 0, 0,
                            already_imported=True)
    result = image_import(data, machine, when, energy)
    return store.import_result(result, data.images_sha256)


def image_sets(store: MeasurementStore) -> list[dict[str, Any]]:
    """The image sets stored, newest first, from their measurements' provenance.

    Returns
    -------
    list of dict
        ``machine``, ``kind`` (the analysis), ``date`` (the set's date-time,
        ISO), ``sha256`` (the images'), ``pylinac_version``, ``files`` and
        ``measurements`` (the metrics stored).
    """
    m, s, log = measurement_table, series_table, import_table
    query = (select(log.c.id, log.c.sha256, log.c.format, s.c.machine,
                    m.c.t.label("at"), m.c.extra)
             .join(m, m.c.import_id == log.c.id).join(s, s.c.id == m.c.series_id)
             .where(log.c.format.like("pylinac-%"))
             .order_by(m.c.t.desc(), log.c.id))
    sets: dict[int, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for row in conn.execute(query):
            if row.id in sets:
                sets[row.id]["measurements"] += 1
                continue
            extra = json.loads(row.extra) if row.extra else {}
            sets[row.id] = {
                "machine": row.machine, "kind": row.format.removeprefix("pylinac-"),
                "date": pd.Timestamp(int(row.at), unit="s").isoformat(sep=" "),
                "sha256": row.sha256,
                "pylinac_version": extra.get("pylinac_version", ""),
                "files": len(extra.get("files", [])), "measurements": 1}
    return list(sets.values())


__all__ = ["When", "already_stored", "image_import", "image_sets", "provenance",
           "resolve_date", "store_result"]
