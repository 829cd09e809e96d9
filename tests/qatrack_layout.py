"""QATrack+ "Test Instance Details" CSV reports built from a known truth.

The layout is QATrack+'s own (qatrackplus/qatrackplus): ``BaseReport.to_table``
(qatrack/reports/reports.py) writes the title lines, a blank line, "Filters:"
and one line per filter; ``TestInstanceDetailsReport.to_table`` and
``organize_one_per_row`` (qatrack/reports/qc/testinstance.py) add a blank line,
the header ``Work Completed, Test, Unit, Site, Value, Reference, Tolerance,
Skipped, Performed By, Comment`` and one row per test instance. The CSV writer
writes ``work_completed`` as Python prints an aware datetime read from the
database (``2024-05-06 21:19:00+00:00``); values with ``%.4g``, references
with ``%.6G``, tolerances by their name (``Absolute(-3.000, -2.000, 2.000,
3.000)``), ``Skipped`` as ``True``/``False``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

SYDNEY = ZoneInfo("Australia/Sydney")
HEADER = ["Work Completed", "Test", "Unit", "Site", "Value", "Reference",
          "Tolerance", "Skipped", "Performed By", "Comment"]
TOLERANCES = {
    "output": "Absolute(-3.000, -2.000, 2.000, 3.000)",
    "laser": "Absolute(-2.000, -1.000, 1.000, 2.000)",
}


@dataclass(frozen=True)
class Instance:
    """One test instance: what QATrack+ holds and what the reader must give."""

    local: datetime  # department (Sydney) wall-clock time of Work Completed
    written: str  # Work Completed as the report writes it
    test_name: str
    unit: str  # QATrack+'s Unit: the machine
    value: float
    reference: float
    tolerance: str
    test: str  # canonical test the reader must give
    energy: str  # canonical energy the reader must give
    skipped: bool = False
    line: int = 0


def utc_text(local: datetime) -> str:
    """Work Completed as QATrack+'s CSV writes it: the instant in UTC."""
    instant = local.replace(tzinfo=SYDNEY).astimezone(UTC)
    return instant.isoformat(sep=" ")


def offset_text(local: datetime) -> str:
    """Work Completed written with the Sydney offset (``07:19:00+10:00``)."""
    return local.replace(tzinfo=SYDNEY).isoformat(sep=" ")


def fleet(days: int = 40, start: datetime = datetime(2024, 3, 29, 7, 19)
          ) -> list[Instance]:
    """Daily checks on "TrueBeam 1", across the end of daylight saving (7 April):
    6 MV output drifting up 0.06 %/day, 10 MV and 6 MeV output steady, lasers
    steady. The last day's checks are written with the +10:00 offset, the rest
    in UTC as QATrack+ writes them."""
    out = []
    for day in range(days):
        local = start + timedelta(days=day)
        wobble = ((day * 7) % 5 - 2) * 0.05
        for minutes, name, value, test, energy in (
            (0, "6 MV Output", round(0.06 * day + wobble, 3), "output", "6X"),
            (2, "10 MV Output", round(wobble, 3), "output", "10X"),
            (4, "6 MeV Output", round(-wobble, 3), "output", "6E"),
            (6, "Laser Alignment", round(0.3 + wobble, 3), "laser", ""),
        ):
            when = local + timedelta(minutes=minutes)
            text = offset_text(when) if day == days - 1 else utc_text(when)
            out.append(Instance(when, text, name, "TrueBeam 1", value, 0.0,
                                TOLERANCES[test], test, energy))
    return out


def _title_lines(tests: list[str]) -> list[list[str]]:
    """BaseReport.to_table's lines above the data, with the report's filters."""
    return [
        ["Report Title:", "Daily output and lasers"],
        ["View On Site:", "https://qatrack.example.org/reports/"],
        ["Report Type:", "Test Instance Details"],
        ["Report Description:", "This report shows QC test values for select units"],
        ["Generated:", "10 May 2024 08:00"],
        [],
        ["Filters:"],
        ["Work Completed:", "29 Mar 2024 - 07 May 2024"],
        ["Test:", ", ".join(sorted(set(tests)))],
        ["Site:", "No Filter"],
        ["Unit:", "TrueBeam 1"],
        ["Organization:", "One Test Instance Per Row"],
        [],
    ]


def write_report(path: Path, instances: list[Instance],
                 extra_rows: list[list[str]] = ()) -> list[Instance]:
    """Write the report; returns the instances with their file lines set.

    ``extra_rows`` are written after the instances as they are (cells under
    :data:`HEADER`), for rows the reader must report.
    """
    titles = _title_lines([i.test_name for i in instances])
    first = len(titles) + 2  # the header line, then the first instance
    placed = [Instance(**{**i.__dict__, "line": first + n})
              for n, i in enumerate(instances)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for line in titles:
            writer.writerow(line)
        writer.writerow(HEADER)
        for i in placed:
            writer.writerow([
                i.written, i.test_name, i.unit, "Main Campus", f"{i.value:.4g}",
                f"{i.reference:.6G}", i.tolerance, str(i.skipped), "J. Smith", "",
            ])
        for cells in extra_rows:
            writer.writerow(cells)
    return placed


def write_workbook(path: Path, instances: list[Instance]) -> list[Instance]:
    """The same report as QATrack+'s ``to_xlsx`` writes it: one sheet, the
    date-times as local text in ``%d %b %Y %H:%M`` (``format_datetime``),
    numbers as numbers."""
    import pandas as pd

    titles = _title_lines([i.test_name for i in instances])
    rows: list[list] = [list(t) for t in titles] + [HEADER]
    placed = [Instance(**{**i.__dict__, "line": len(rows) + 1 + n})
              for n, i in enumerate(instances)]
    for i in placed:
        rows.append([i.local.strftime("%d %b %Y %H:%M"), i.test_name, i.unit,
                     "Main Campus", i.value, i.reference, i.tolerance, i.skipped,
                     "J. Smith", ""])
    width = max(len(r) for r in rows)
    frame = pd.DataFrame([r + [None] * (width - len(r)) for r in rows])
    frame.to_excel(path, header=False, index=False, sheet_name="Report")
    return placed
