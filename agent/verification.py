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
