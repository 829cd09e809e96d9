"""Periods and comparisons in a physicist's words, read by rule.

"over the spring", "in Q3", "first half of 2025", "between 3 and 17 March",
"the last three months", "the past 30 measurements", "this week", "since
the recalibration", "before the May recalibration", "compare January with
June", "before and after the recalibration". The words become
:class:`~agent.qa.periods.PeriodSpec` objects; their dates are settled
against the data by :func:`agent.qa.periods.resolve_period`.
"""

from __future__ import annotations

import calendar
import re

from agent.qa.periods import SEASONS, PeriodSpec
from agent.vocabulary import MONTHS

_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4,
                 "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
                 "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
                 "thirty": 30, "fifty": 50, "hundred": 100, "couple of": 2}
_ORDINAL = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3,
            "fourth": 4, "4th": 4, "last": 4}
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True)) + \
    r"|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec"
_SHORT_MONTHS = {m[:3]: i for m, i in MONTHS.items()} | {"sept": 9}
_COUNT = r"(\d{1,4}|" + "|".join(_NUMBER_WORDS) + r")"
_UNITS = {"day": "day", "days": "day", "week": "week", "weeks": "week",
          "month": "month", "months": "month", "year": "year", "years": "year",
          "measurement": "measurement", "measurements": "measurement",
          "points": "measurement", "point": "measurement", "values": "measurement",
          "readings": "measurement", "sessions": "measurement",
          "results": "measurement"}
_EVENT = (r"(?:recalibration|re-calibration|calibration|recal|baseline reset|"
          r"reset|new baseline|rebaseline|re-baseline|(?:it|they) (?:was|were) "
          r"(?:re-?calibrated|reset|re-?baselined)|being recalibrated)")

_LAST_N = re.compile(r"\b(?:last|past|previous|recent|latest)\s+" + _COUNT + r"\s+("
                     + "|".join(_UNITS) + r")\b")
_THE_LAST_UNIT = re.compile(r"\b(?:the|over the|in the|for the|during the)\s+"
                            r"(?:last|past)\s+(day|week|month|year)\b|"
                            r"\bpast\s+(week|month|year)\b")
_THIS = re.compile(r"\bthis\s+(week|month|year)\b")
_PREVIOUS = re.compile(r"\blast\s+(week|month|year)\b")
_BETWEEN_DAYS = re.compile(
    r"\b(?:between|from)\s+(\d{1,2})(?:st|nd|rd|th)?\s+(?:and|to|-)\s+"
    r"(\d{1,2})(?:st|nd|rd|th)?\s+(" + _MONTH + r")(?:\s+(20\d\d))?\b")
_BETWEEN_MONTHS = re.compile(
    r"\b(?:between|from)\s+(?:(\d{1,2})(?:st|nd|rd|th)?\s+)?(" + _MONTH
    + r")(?:\s+(20\d\d))?\s+(?:and|to|until|till)\s+(?:(\d{1,2})(?:st|nd|rd|th)?\s+)?("
    + _MONTH + r")(?:\s+(20\d\d))?\b")
_HALF = re.compile(r"\b(first|second|1st|2nd)\s+half(?:\s+of)?(?:\s+(20\d\d))?|"
                   r"\bh([12])\s*(20\d\d)?\b")
_QUARTER = re.compile(r"\bq([1-4])\b(?:\s*(20\d\d))?|\b(first|second|third|fourth|"
                      r"last|1st|2nd|3rd|4th)\s+quarter(?:\s+of)?(?:\s+(20\d\d))?")
_SEASON = re.compile(r"\b(spring|summer|autumn|fall|winter)\b"
                     r"(?:\s+(?:of\s+)?(20\d\d))?")
_MONTH_ALONE = re.compile(r"\b(?:in|during|over|for|of|throughout|within)\s+("
                          + _MONTH + r")\b(?:\s+(20\d\d))?")
_YEAR = re.compile(r"\b(?:in|during|over|for|throughout)\s+(20\d\d)\b(?!-)")
_SINCE_EVENT = re.compile(r"\b(since|after|following)\s+(?:the\s+|our\s+|its\s+)?"
                          r"(?:last\s+|latest\s+|most recent\s+|(" + _MONTH
                          + r")\s+)?" + _EVENT + r"\b")
_BEFORE_EVENT = re.compile(r"\b(before|prior to|up to|until)\s+(?:the\s+|our\s+|"
                           r"its\s+)?(?:last\s+|latest\s+|most recent\s+|(" + _MONTH
                           + r")\s+)?" + _EVENT + r"\b")
_BEFORE_AND_AFTER = re.compile(
    r"\b(?:before\s+and\s+after|pre[- ]?\s*(?:and|versus|vs\.?|or|/)\s*post)"
    r"[- ]?\s*(?:the\s+|our\s+)?(?:(" + _MONTH + r")\s+)?" + _EVENT + r"\b")
#: "since July", "from March" (no year: the most recent one with data).
_SINCE_MONTH = re.compile(r"\b(?:since|from|after|starting)\s+(?:the\s+start\s+of\s+|"
                          r"early\s+)?(" + _MONTH + r")\b(?!\s+\d)")
_COMPARING = re.compile(r"\b(compar\w*|versus|vs\.?|difference|differ\w*|against)\b")
_BARE_YEARS = re.compile(r"\b(20\d\d)\b\s*(?:vs\.?|versus|and|with|to|against)\s*"
                         r"(?:in\s+)?\b(20\d\d)\b")
_COMPARE_MONTHS = re.compile(
    r"\b(?:compare|comparing|between|versus|vs\.?)?\s*(?:in\s+)?(" + _MONTH
    + r")(?:\s+(20\d\d))?\s+(?:with|to|and|against|versus|vs\.?)\s+(?:in\s+)?("
    + _MONTH + r")(?:\s+(20\d\d))?\b")


def _month(word: str) -> int:
    return MONTHS.get(word) or _SHORT_MONTHS[word[:4] if word == "sept" else word[:3]]


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


def _year(text: str | None) -> int | None:
    return int(text) if text else None


def _date(year: int | None, month: int, day: int | None) -> str:
    """ISO 8601 text of a day; without a year "--MM-DD" (ISO's year-less
    form), without a day the month's end ("--MM" when the year is open)."""
    if day is None:
        if year is None:
            return f"--{month:02d}"
        day = calendar.monthrange(year, month)[1]
    return f"{year:04d}-{month:02d}-{day:02d}" if year else f"--{month:02d}-{day:02d}"


def _event_spec(kind: str, month: str | None, words: str) -> PeriodSpec:
    return PeriodSpec(kind=kind, words=words,
                      event_month=_month(month) if month else None)


def period_in(low: str) -> PeriodSpec | None:
    """The period a request names, or None (the whole record).

    Parameters
    ----------
    low : str
        The question, lower case.

    Returns
    -------
    PeriodSpec or None
        The first period form found, in this order: dates by day and month,
        events, relative periods, halves, quarters, seasons, months, years.
    """
    # why long: one ordered list of forms; the order settles overlaps
    # ("since the May recalibration" before "in May").
    if m := _BETWEEN_DAYS.search(low):
        month, year = _month(m.group(3)), _year(m.group(4))
        return PeriodSpec(kind="dates", words=m.group(0),
                          start=_date(year, month, int(m.group(1))),
                          end=_date(year, month, int(m.group(2))))
    if m := _BETWEEN_MONTHS.search(low):
        y2 = _year(m.group(6))
        y1 = _year(m.group(3)) or y2
        return PeriodSpec(
            kind="dates", words=m.group(0),
            start=_date(y1, _month(m.group(2)), int(m.group(1) or 1)),
            end=_date(y2 or y1, _month(m.group(5)),
                      int(m.group(4)) if m.group(4) else None))
    if m := _SINCE_EVENT.search(low):
        return _event_spec("since_event", m.group(2), m.group(0))
    if m := _BEFORE_EVENT.search(low):
        return _event_spec("before_event", m.group(2), m.group(0))
    if m := _SINCE_MONTH.search(low):
        return PeriodSpec(kind="dates", words=m.group(0),
                          start=_date(None, _month(m.group(1)), 1))
    if m := _LAST_N.search(low):
        return PeriodSpec(kind="last", words=m.group(0), count=_count(m.group(1)),
                          unit=_UNITS[m.group(2)])
    if m := _THE_LAST_UNIT.search(low):
        return PeriodSpec(kind="last", words=m.group(0), count=1,
                          unit=m.group(1) or m.group(2))
    if m := _THIS.search(low):
        return PeriodSpec(kind="this", words=m.group(0), unit=m.group(1))
    if m := _PREVIOUS.search(low):
        return PeriodSpec(kind="previous", words=m.group(0), unit=m.group(1))
    if m := _HALF.search(low):
        index = _ORDINAL.get(m.group(1) or "", 0) or int(m.group(3))
        return PeriodSpec(kind="half", words=m.group(0), index=index,
                          year=_year(m.group(2) or m.group(4)))
    if m := _QUARTER.search(low):
        index = int(m.group(1)) if m.group(1) else _ORDINAL[m.group(3)]
        return PeriodSpec(kind="quarter", words=m.group(0), index=index,
                          year=_year(m.group(2) or m.group(4)))
    if m := _SEASON.search(low):
        season = "autumn" if m.group(1) == "fall" else m.group(1)
        return PeriodSpec(kind="season", words=m.group(0), index=season,
                          year=_year(m.group(2)))
    if m := _MONTH_ALONE.search(low):
        return PeriodSpec(kind="month", words=m.group(0), index=_month(m.group(1)),
                          year=_year(m.group(2)))
    if m := _YEAR.search(low):
        return PeriodSpec(kind="year", words=m.group(0), year=int(m.group(1)))
    return None


def compared_periods(low: str) -> tuple[PeriodSpec, PeriodSpec] | None:
    """Two periods of one series to compare, or None.

    "before and after the recalibration", "pre- vs post-recal", "compare
    January with June", "Q1 2025 against Q3 2025", "2024 vs 2025", "between
    the spring and the autumn": with a word of comparison, the first two
    periods the words name.
    """
    if m := _BEFORE_AND_AFTER.search(low):
        return (_event_spec("before_event", m.group(1), "before the recalibration"),
                _event_spec("since_event", m.group(1), "since the recalibration"))
    if not _COMPARING.search(low):
        return None
    if m := _BARE_YEARS.search(low):
        return (PeriodSpec(kind="year", words=m.group(1), year=int(m.group(1))),
                PeriodSpec(kind="year", words=m.group(2), year=int(m.group(2))))
    if m := _COMPARE_MONTHS.search(low):
        return (PeriodSpec(kind="month", words=m.group(1), index=_month(m.group(1)),
                           year=_year(m.group(2))),
                PeriodSpec(kind="month", words=m.group(3), index=_month(m.group(3)),
                           year=_year(m.group(4))))
    first = period_in(low)
    if first is None or not first.words:
        return None
    rest = low.replace(first.words, " ", 1)
    second = period_in(rest)
    if second is None:
        return None
    if first.year is None and second.year is not None and first.kind == second.kind:
        first = first.model_copy(update={"year": second.year})  # "H1 and H2 2025"
    return first, second


__all__ = ["SEASONS", "compared_periods", "period_in"]
