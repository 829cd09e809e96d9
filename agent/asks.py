"""What a data request asks for, read by rule.

A request about a series asks one thing: the verdict ("is it stable?", the
default), when a change began, which days were out of tolerance, when the
trend reaches tolerance, the control limits, the capability, the latest
value, how many measurements, or a comparison. The answer written by code
(:mod:`agent.qa.presentation`) is the one for that question.
"""

from __future__ import annotations

import re
from typing import Literal

Ask = Literal["verdict", "onset", "out_of_tolerance", "projection", "limits",
              "capability", "latest", "count", "comparison"]
ASKS: tuple[str, ...] = Ask.__args__  # type: ignore[attr-defined]

#: In order: the first form that matches settles what is asked.
_FORMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("comparison", re.compile(
        r"\b(compar\w*|versus|vs\.?|difference between|differ\w*|before and after"
        r"|against each other|side by side)\b")),
    ("onset", re.compile(
        r"\bwhen did (it|that|this|the \w+|they)\b[^?]*\b(start|begin|began|happen"
        r"|occur|appear|shift|change|drift)\w*|\bsince when\b|\bonset\b|"
        r"\bwhen (did|was) (the )?(shift|drift|change|step|trend)\b|"
        r"\bwhen (did|was) it (first )?(start|begin)|"
        r"\b(at )?what (date|day|point|time) did\b|"
        r"\bwhen did [^?]*\b(step|drop|jump|rise|fall|go up|go down|move|"
        r"creep|start|begin)\w*")),
    ("projection", re.compile(
        r"\bwhen will\b|\bprojected?\b|\bprojection\b|\bhow long (until|before|till)"
        r"|\bwill it (reach|hit|exceed|cross|go out|fail)|\bforecast\w*|"
        r"\b(reach|hit|cross)\w* (the |its |their )?(tolerance|action|limit)")),
    ("out_of_tolerance", re.compile(
        r"\b(which|what) (days?|dates?|measurements?|values?|points?|sessions?)\b"
        r"[^?]*\b(out|outside|beyond|over|exceed\w*|fail\w*)\b|"
        r"\bout[- ]of[- ]tolerance (days|dates|measurements|values)\b|"
        r"\bdays? (were |was )?(out|outside|beyond)\b|"
        r"\bhow many (days|times|measurements)\b[^?]*\b(out|beyond|outside|exceed"
        r"\w*|fail\w*)\b|\bany (days|measurements|values) (out|beyond|outside)\b|"
        r"\bwhen was it out\b|\bfail(ed|ures?)\b|"
        r"\b(fall|fell|go|went|were|was|been|gone|drift\w*)\s+(outside|out of|beyond)"
        r"\b")),
    ("limits", re.compile(
        r"\bcontrol limits?\b|\b(ucl|lcl)\b|\bcentre ?line\b|\bcenter ?line\b|"
        r"\bsigma\b")),
    ("capability", re.compile(r"\bcapab\w*|\bcpk\b|\bcp\b|\bcpm\b")),
    ("latest", re.compile(
        r"\b(latest|most recent|newest|current)\b[^?]{0,40}?\b(value|measurement|"
        r"reading|result|point)s?\b|\blast (value|measurement|reading|result)\b|"
        r"\bwhat (is|was) (it|the \w+) (today|yesterday)\b")),
    ("count", re.compile(
        r"\bhow many (\w+ ){0,3}(measurements|points|values|readings|sessions|"
        r"results|data)\b|"
        r"\bnumber of (measurements|points|values|readings)\b")),
)


def ask_in(low: str) -> Ask | None:
    """What the words ask for, or None (the verdict, or what a follow-up had).

    Parameters
    ----------
    low : str
        The question, lower case.
    """
    for ask, pattern in _FORMS:
        if pattern.search(low):
            return ask  # type: ignore[return-value]
    return None


__all__ = ["ASKS", "Ask", "ask_in"]
