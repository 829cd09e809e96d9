"""Checks and clipping for choosing series (``QAEngine.select`` uses them).

No LLM here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from agent.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from agent.qa.series import SeriesData


class SelectionError(UserError):
    """A request names something that is not on hand; the message lists what is."""


def check_dates(**dates: str | None) -> None:
    """Reject malformed date options before any work, naming the option."""
    import pandas as pd  # here: the command line's errors need no pandas

    for option, value in dates.items():
        if value is None:
            continue
        try:
            pd.Timestamp(value)
        except ValueError:
            raise SelectionError(
                f"--{option.replace('_', '-')} '{value}' is not a date; "
                "write YYYY-MM-DD") from None


def clip_series(s: SeriesData, start: str | None, end: str | None) -> SeriesData:
    """The part of a series between two dates (both included)."""
    from agent.qa.series import SeriesData

    mask = np.ones(s.values.size, dtype=bool)
    if start:
        mask &= s.dates >= np.datetime64(start, "s")
    if end:
        mask &= s.dates < np.datetime64(end, "D") + np.timedelta64(1, "D")
    return SeriesData(s.machine, s.test, s.energy, s.unit, s.dates[mask],
                      s.values[mask], s.resets)
