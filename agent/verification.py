"""Checking answers: their numbers against the evidence, their citations.

Every number in an answer must appear in a tool result, a cited passage or
the question (README.md, "The agent"); these functions find the numbers, the
unsupported ones and the passages an answer cites or most resembles.
"""

from __future__ import annotations

import json
import re
from typing import Any


def numbers_in(text: str) -> set[str]:
    """Numbers written in a text, normalised ("2.0" -> "2"), citations left out.

    Parameters
    ----------
    text : str
        Any text.

    Returns
    -------
    set of str
        Each number as ``f"{float(n):g}"``.
    """
    text = re.sub(r"\[\d+\]", " ", text)
    return {f"{float(m):g}" for m in re.findall(r"\d+(?:\.\d+)?", text)}


def unsupported_numbers(answer: str, evidence: str) -> set[str]:
    """Numbers in the answer that appear nowhere in the evidence.

    A number written with d >= 2 decimals is also supported by an evidence
    value that rounds to it ("0.0034" by 0.003412), so code's rounding is not
    an invented number; whole numbers and one-decimal numbers must match
    exactly ("2 mm" is not supported by "1.5 mm").

    Parameters
    ----------
    answer : str
        The answer to check; its citation markers ([1]) are not numbers.
    evidence : str
        The question, the passages and the tool results, as text.

    Returns
    -------
    set of str
        The unsupported numbers, normalised ("2.0" -> "2"); empty when every
        number is supported.
    """
    answer = re.sub(r"\[\d+\]", " ", answer)
    values = [float(m) for m in re.findall(r"\d+(?:\.\d+)?", evidence)]
    exact = {f"{v:g}" for v in values}
    bad = set()
    for written in re.findall(r"\d+(?:\.\d+)?", answer):
        if f"{float(written):g}" in exact:
            continue
        decimals = len(written.split(".")[1]) if "." in written else 0
        target = float(written)
        if decimals < 2 or not any(round(v, decimals) == target for v in values):
            bad.add(f"{target:g}")
    return bad


def evidence_text(question: str, passages: list[dict[str, Any]],
                  tool_calls: list[dict[str, Any]]) -> str:
    """The evidence an answer's numbers are checked against, as one text.

    Parameters
    ----------
    question : str
        The user's words.
    passages : list of dict
        The retrieved passages (their ``text``).
    tool_calls : list of dict
        The tool calls (their ``result``, as JSON).

    Returns
    -------
    str
        The question, the passages' texts and the results, one per line.
    """
    parts = [question]
    parts += [p["text"] for p in passages]
    parts += [json.dumps(c["result"], default=str) for c in tool_calls]
    return "\n".join(parts)


def cited_numbers(text: str) -> set[int]:
    """The passage numbers an answer cites ([1], [2]).

    Parameters
    ----------
    text : str
        An answer.

    Returns
    -------
    set of int
        The 1-based passage numbers in its markers.
    """
    return {int(n) for n in re.findall(r"\[(\d+)\]", text)}


def words_of(text: str) -> set[str]:
    """Words of four letters or more, lower case (for overlap scores)."""
    return set(re.findall(r"[a-z]{4,}", text.lower()))


def best_source(answer: str, passages: list[dict[str, Any]]) -> int | None:
    """1-based number of the passage sharing most numbers and words with a text.

    Parameters
    ----------
    answer : str
        An answer without a citation marker.
    passages : list of dict
        The numbered passages (their ``text``).

    Returns
    -------
    int or None
        The passage number (a shared number counts three words), or None
        when no passage shares anything.
    """
    numbers = numbers_in(answer)
    words = words_of(answer)
    best, best_score = None, 0.0
    for n, p in enumerate(passages, start=1):
        score = 3 * len(numbers & numbers_in(p["text"])) + len(
            words & words_of(p["text"]))
        if score > best_score:
            best, best_score = n, score
    return best


#: Unit words as one spelling: "deg", "degrees" and "°" are one unit.
_UNIT_SPELLINGS = {"degrees": "deg", "degree": "deg", "°": "deg", "percent": "%",
                   "millimetres": "mm", "millimeters": "mm", "millimetre": "mm",
                   "millimeter": "mm", "centimetres": "cm", "centimeters": "cm",
                   "centimetre": "cm", "centimeter": "cm", "seconds": "s",
                   "sec": "s", "minutes": "min", "mv": "x"}
_QUANTITY = re.compile(
    r"(?<![\w.])(?P<prev>[A-Za-z][\w-]*\W{0,3})?"
    r"(?P<num>\d+(?:\.\d+)?)"
    r"(?P<range>\s*(?:-|–|/|to)\s*\d+(?:\.\d+)?)*"
    r"\s*(?P<unit>%|°|[A-Za-z][A-Za-z/]*)?")
_MARKER = re.compile(r"(?:\s*\[\d+\])+")


def _unit(word: str | None) -> str:
    """A unit or the noun after a number, one spelling ("points" -> "point")."""
    if not word:
        return ""
    low = word.lower().split("/")[0]
    low = _UNIT_SPELLINGS.get(low, low)
    return low[:-1] if len(low) > 3 and low.endswith("s") else low


def quantities(text: str) -> list[tuple[str, str, str]]:
    """Each number of a text bound to its unit and the word before it.

    A range or pair ("1-2 working days", "3%/2 mm") binds each of its numbers
    to the unit written after the last one when the first has none. Numbers
    inside names ("TG142", "Nelson 3" keeps "nelson" as the word before) are
    kept with that word; citation markers are not numbers.

    Parameters
    ----------
    text : str
        An answer or a passage.

    Returns
    -------
    list of (str, str, str)
        (number normalised as ``f"{float(n):g}"``, unit or following noun
        lower case and singular, word before lower case) per number.
    """
    from agent.retrieval.text import canonical_notation

    text = canonical_notation(_MARKER.sub(" ", text))
    out = []
    for m in _QUANTITY.finditer(text):
        unit = _unit(m.group("unit"))
        prev = (m.group("prev") or "").rstrip(" =:(-+~<>").lower()
        out.append((f"{float(m.group('num')):g}", unit, prev))
        for extra in re.findall(r"\d+(?:\.\d+)?", m.group("range") or ""):
            out.append((f"{float(extra):g}", unit, ""))
    return out


def _supported(quantity: tuple[str, str, str],
               stated: list[tuple[str, str, str]]) -> bool:
    """Whether a passage states a number with the same unit (or label)."""
    number, unit, prev = quantity
    same = [q for q in stated if q[0] == number]
    if unit and any(q[1] == unit for q in same):
        return True
    if not unit:
        # A bare number must be bare in the passage too, or carry the same
        # label: "Nelson 3" supports "Nelson 3", not "3 points".
        return any(not q[1] or (prev and q[2] == prev) for q in same)
    return any(not q[1] and prev and q[2] == prev for q in same)


def clauses(answer: str) -> list[tuple[str, set[int]]]:
    """An answer cut at its citation markers: each piece with what it cites.

    The text before a marker (back to the previous one) is bound to the
    passages that marker names; text after the last marker is bound to the
    passages of the last marker.

    Parameters
    ----------
    answer : str
        An answer with markers such as [1] or [1][2].

    Returns
    -------
    list of (str, set of int)
        The pieces, in order, with the passage numbers each cites (empty
        when the answer cites nothing).
    """
    out: list[tuple[str, set[int]]] = []
    start = 0
    for m in _MARKER.finditer(answer):
        out.append((answer[start:m.start()], cited_numbers(m.group(0))))
        start = m.end()
    tail = answer[start:]
    if tail.strip(" .;,\n"):
        out.append((tail, out[-1][1] if out else set()))
    return out


def unbound_numbers(answer: str, cited: dict[int, str]) -> list[str]:
    """Numbers of an answer that its own cited passage does not state so.

    Stricter than :func:`unsupported_numbers`: each number is bound to its
    unit and to the passage its clause cites (:func:`clauses`). "3.5 mm [1]"
    is unsupported when passage 1 says "0.35 cm"; "2 mm [2]" is when 2 mm
    is in passage 1 (another row) and not in passage 2; a number in a clause
    citing no passage, or a passage not in ``cited``, is unsupported.

    Parameters
    ----------
    answer : str
        The answer, with its markers.
    cited : dict of int to str
        The passages it may cite: number -> text (file, section and span).

    Returns
    -------
    list of str
        One problem per line ("3.5 mm (cites [1])"); empty when every number
        is stated, with its unit, by a passage its clause cites.
    """
    problems = []
    for piece, numbers in clauses(answer):
        unknown = sorted(n for n in numbers if n not in cited)
        if unknown:
            problems.append(f"cites {unknown}, which is not a passage given")
        stated = [q for n in numbers if n in cited for q in quantities(cited[n])]
        for quantity in quantities(piece):
            if not _supported(quantity, stated):
                number, unit, _ = quantity
                where = f"cites {sorted(numbers)}" if numbers else "cites nothing"
                problems.append(f"{number} {unit}".strip() + f" ({where})")
    return problems
