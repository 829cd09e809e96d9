"""Periods of a request, and their dates against the data on hand.

A physicist names a period in words: absolute ("first half of 2025", "in
Q3", "between 3 and 17 March", "in March"), relative to the data ("the last
three months", "the past 30 measurements", "this week") or relative to an
event ("since the recalibration", "before the May recalibration"). The
request parser (:mod:`agent.period_words`) reads the words into a
:class:`PeriodSpec`; :func:`resolve_period` turns it into dates against the
series it is about:

- a relative period ends at the series' latest measurement (not today: the
  data may be a week old), and the answer says the dates;
- a month, quarter, half or season without a year is the most recent one
  that has data;
- an event is a stored baseline reset (a recalibration is recorded as one,
  ``agent/qa/importers/parsing.py``); with a month ("the May
  recalibration") the reset in that month, else the latest;
- a period with no measurements is an error that says so and gives the
  series' own date range: it is never silently widened.

Seasons are meteorological, northern hemisphere: spring March to May,
summer June to August, autumn September to November, winter December to
February (December of the year before).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from agent.qa.presentation import spoken_name
from agent.qa.selection import SelectionError
from agent.qa.series import SeriesData

PeriodKind = Literal["dates", "month", "quarter", "half", "season", "year",
                     "last", "this", "previous", "since_event", "before_event"]
Unit = Literal["day", "week", "month", "year", "measurement"]

#: First month and length (months) of each season (meteorological).
SEASONS: dict[str, tuple[int, int]] = {"spring": (3, 3), "summer": (6, 3),
                                       "autumn": (9, 3), "winter": (12, 3)}
_UNIT_PLURAL = {"day": "days", "week": "weeks", "month": "months", "year": "years",
                "measurement": "measurements"}


class PeriodSpec(BaseModel):
    """A period as the words name it, before it meets the data.

    Attributes
    ----------
    kind : str
        dates (``start``/``end`` given), month / quarter / half / season /
        year (``index`` and an optional ``year``), last (``count`` ``unit``
        up to the latest measurement), this / previous (the calendar
        ``unit`` holding the latest measurement, or the one before),
        since_event / before_event (a baseline reset, ``event_month``
        optional).
    words : str
        The words as read ("over the spring"), for the answer.
    """

    model_config = ConfigDict(frozen=True)

    kind: PeriodKind
    words: str = ""
    start: str | None = None
    end: str | None = None
    year: int | None = None
    index: int | str | None = None
    count: int | None = None
    unit: Unit | None = None
    event_month: int | None = None


class Period(BaseModel):
    """A resolved period: its dates (both included) and how to say it."""

    model_config = ConfigDict(frozen=True)

    start: str | None
    end: str | None
    words: str

    def text(self) -> str:
        """"the last three months (2025-09-01 to 2025-11-30)"."""
        span = f"{self.start or 'the first measurement'} to " \
               f"{self.end or 'the latest measurement'}"
        return f"{self.words} ({span})" if self.words else span


def _day(value: np.datetime64 | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(value).normalize()


def _iso(value: pd.Timestamp) -> str:
    return value.strftime("%Y-%m-%d")


def _calendar_span(kind: str, index: int | str, year: int) -> tuple[pd.Timestamp,
                                                                    pd.Timestamp]:
    """First and last day of a month, quarter, half, season or year."""
    if kind == "year":
        first_month, months = 1, 12
    elif kind == "month":
        first_month, months = int(index), 1
    elif kind == "quarter":
        first_month, months = 3 * (int(index) - 1) + 1, 3
    elif kind == "half":
        first_month, months = 6 * (int(index) - 1) + 1, 6
    else:
        first_month, months = SEASONS[str(index)]
    start = pd.Timestamp(year=year, month=first_month, day=1)
    if kind == "season" and index == "winter":
        start = pd.Timestamp(year=year - 1, month=12, day=1)
    end = start + pd.DateOffset(months=months) - pd.Timedelta(days=1)
    return start, end


def _span_words(kind: str, index: int | str, year: int) -> str:
    if kind == "year":
        return str(year)
    if kind == "month":
        return f"{calendar.month_name[int(index)]} {year}"
    if kind == "quarter":
        return f"Q{index} {year}"
    if kind == "half":
        return f"the {'first' if int(index) == 1 else 'second'} half of {year}"
    if index == "winter":
        return f"winter {year - 1}-{str(year)[2:]}"
    return f"{index} {year}"


Span = tuple[pd.Timestamp | None, pd.Timestamp | None]


def _most_recent_year(span: Callable[[int], Span], dates: np.ndarray,
                      latest: pd.Timestamp, first: int) -> int:
    """The most recent year from ``first`` back whose ``span(year)`` has data
    (else the latest's year); a span that starts after the latest
    measurement is not yet."""
    for year in range(first, latest.year - 30, -1):
        start, end = span(year)
        if (start if start is not None else end) > latest:
            continue
        if _count(dates, start, end):
            return year
    return latest.year


def _count(dates: np.ndarray, start: pd.Timestamp | None,
           end: pd.Timestamp | None) -> int:
    lo = np.datetime64(start.to_datetime64(), "s") if start is not None else None
    hi = (np.datetime64((end + pd.Timedelta(days=1)).to_datetime64(), "s")
          if end is not None else None)
    mask = np.ones(dates.size, dtype=bool)
    if lo is not None:
        mask &= dates >= lo
    if hi is not None:
        mask &= dates < hi
    return int(mask.sum())


def _day_of(text: str, year: int) -> pd.Timestamp:
    """A day from "YYYY-MM-DD", or from "--MM-DD" / "--MM" (month end) in
    ``year``."""
    if not text.startswith("--"):
        return pd.Timestamp(text)
    parts = text[2:].split("-")
    month = int(parts[0])
    day = int(parts[1]) if len(parts) > 1 else calendar.monthrange(year, month)[1]
    return pd.Timestamp(year=year, month=month, day=day)


def _dates_of(spec: PeriodSpec, dates: np.ndarray, latest: pd.Timestamp
              ) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Start and end of a "dates" period; a year-less one ("between 3 and 17
    March") in the most recent year where it has data."""
    if not ((spec.start or "").startswith("--") or (spec.end or "").startswith("--")):
        return (pd.Timestamp(spec.start) if spec.start else None,
                pd.Timestamp(spec.end) if spec.end else None)

    def span(year: int) -> Span:
        start = _day_of(spec.start, year) if spec.start else None
        end = _day_of(spec.end, year) if spec.end else None
        if start is not None and end is not None and end < start:
            start = _day_of(spec.start, year - 1)  # "December to February"
        return start, end

    # From the latest's own year: "December to February" is the one that ended.
    return span(_most_recent_year(span, dates, latest, latest.year))


def _relative(spec: PeriodSpec, dates: np.ndarray, latest: pd.Timestamp
              ) -> tuple[pd.Timestamp | None, pd.Timestamp, str]:
    """A period that ends at (or before) the latest measurement."""
    unit, count = spec.unit or "day", spec.count or 1
    if spec.kind == "last":
        if unit == "measurement":
            first = dates[max(0, dates.size - count)]
            return _day(first), latest, f"the last {count} measurements"
        offset = (pd.DateOffset(weeks=count) if unit == "week" else
                  pd.DateOffset(months=count) if unit == "month" else
                  pd.DateOffset(years=count) if unit == "year" else
                  pd.DateOffset(days=count))
        plural = _UNIT_PLURAL[unit] if count > 1 else unit
        words = f"the last {count} {plural}" if count > 1 else f"the last {unit}"
        return latest - offset + pd.Timedelta(days=1), latest, words
    # this / previous calendar week, month or year
    if unit == "week":
        start = latest - pd.Timedelta(days=latest.weekday())
        step = pd.DateOffset(weeks=1)
    elif unit == "year":
        start, step = pd.Timestamp(year=latest.year, month=1, day=1), \
            pd.DateOffset(years=1)
    else:
        start, step = latest.replace(day=1), pd.DateOffset(months=1)
    if spec.kind == "this":
        return start, latest, f"this {unit}"
    return start - step, start - pd.Timedelta(days=1), f"last {unit}"


def _event(spec: PeriodSpec, resets: tuple[np.datetime64, ...], name: str
           ) -> pd.Timestamp:
    """The baseline reset the words name."""
    chosen = [pd.Timestamp(r) for r in resets]
    if spec.event_month:
        chosen = [r for r in chosen if r.month == spec.event_month]
    if not chosen:
        on_hand = ", ".join(_iso(_day(r)) for r in resets) or "none"
        month = (f" in {calendar.month_name[spec.event_month]}"
                 if spec.event_month else "")
        raise SelectionError(
            f"no recalibration or baseline reset{month} is recorded for {name} "
            f"(recorded: {on_hand}); import the event (an 'event' row "
            "baseline_reset) or name the dates")
    return chosen[-1]


def resolve_period(spec: PeriodSpec, series: list[SeriesData]) -> Period:
    """The dates of a period for the series a request is about.

    Parameters
    ----------
    spec : PeriodSpec
        The period as read from the words.
    series : list of SeriesData
        The selected series (whole, not clipped); the first one's dates and
        resets decide relative and event periods.

    Returns
    -------
    Period
        Start and end (YYYY-MM-DD, both included; None: open) and its words.

    Raises
    ------
    SelectionError
        When the event is not recorded or the period holds no measurement of
        the series (the message gives the series' own dates).
    """
    first = series[0]
    dates = np.sort(np.concatenate([s.dates for s in series])).astype(
        "datetime64[s]")
    latest = _day(dates[-1])
    name = spoken_name(first)
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    words = spec.words
    if spec.kind == "dates":
        start, end = _dates_of(spec, dates, latest)
    elif spec.kind in ("month", "quarter", "half", "season", "year"):
        index = spec.index if spec.index is not None else 1
        # From the next year: the winter holding the latest measurement.
        year = spec.year or _most_recent_year(
            lambda y: _calendar_span(spec.kind, index, y), dates, latest,
            latest.year + 1)
        start, end = _calendar_span(spec.kind, index, year)
        words = _span_words(spec.kind, index, year)
    elif spec.kind in ("last", "this", "previous"):
        start, end, words = _relative(spec, dates, latest)
    else:
        event = _day(_event(spec, first.resets, name))
        if spec.kind == "since_event":
            start, end = event, None
            words = f"since the recalibration of {_iso(event)}"
        else:
            start, end = None, event - pd.Timedelta(days=1)
            words = f"before the recalibration of {_iso(event)}"
    if not _count(dates, start, end):
        raise SelectionError(
            f"no measurements of {name} in {words or 'that period'} "
            f"({_iso(start) if start is not None else '...'} to "
            f"{_iso(end) if end is not None else '...'}); its data runs from "
            f"{_iso(_day(dates[0]))} to {_iso(latest)}")
    return Period(start=_iso(start) if start is not None else None,
                  end=_iso(end) if end is not None else None, words=words)


__all__ = ["SEASONS", "Period", "PeriodSpec", "resolve_period"]
