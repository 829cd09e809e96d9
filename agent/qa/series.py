"""One measurement series as arrays, and grouping a frame into series.

Shared by the store (which loads series from the database) and the readers of
files (``--data FILE``), so the analysis sees one kind of series whatever the
source. No database here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SeriesData:
    """One measurement series as arrays, ready for analysis."""

    machine: str
    test: str
    energy: str
    unit: str
    dates: np.ndarray  # datetime64[s]
    values: np.ndarray  # float
    resets: tuple[np.datetime64, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        """(machine, test, energy)."""
        return self.machine, self.test, self.energy

    @property
    def label(self) -> str:
        """"TrueBeam2 output 10X" (as ``SeriesResult.label``)."""
        return " ".join(p for p in self.key if p)


def series_name(machine: str, test: str, energy: str | None) -> str:
    """``TrueBeam2/output/10X`` (a series without energy: ``TrueBeam2/odi``)."""
    return "/".join(p for p in (machine, test, energy) if p)


def resets_for(
    events: pd.DataFrame | None, machine: str, test: str, energy: str
) -> tuple[np.datetime64, ...]:
    """Dates of the baseline resets that apply to one series, in order.

    An event with an empty test or energy applies to all tests or energies of
    its machine.
    """
    if events is None or events.empty:
        return ()
    hit = events[
        (events["machine"] == machine)
        & events["test"].isin(["", test])
        & events["energy"].isin(["", energy])
    ]
    return tuple(sorted(pd.to_datetime(hit["date"]).to_numpy(dtype="datetime64[s]")))


def series_from_frame(frame: pd.DataFrame, events: pd.DataFrame | None = None):
    """Group an imported frame into :class:`SeriesData` without a database."""
    out = []
    frame = frame.sort_values(["machine", "test", "energy", "date"], kind="stable")
    for (machine, test, energy, unit), group in frame.groupby(
        ["machine", "test", "energy", "unit"], sort=True
    ):
        resets = resets_for(events, machine, test, energy)
        out.append(SeriesData(
            machine=machine, test=test, energy=energy, unit=unit,
            dates=pd.to_datetime(group["date"]).to_numpy(dtype="datetime64[s]"),
            values=group["value"].to_numpy(dtype=float),
            resets=resets,
        ))
    return out
