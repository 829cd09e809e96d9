"""The answers written by code and the fixed replies.

Analyses, fleet overviews, data lists and tolerance look-ups are written from
the tool results by code, not by the LLM, so every number in them is one the
tools computed (README.md, "The agent"); the fixed replies decline
patient-specific and out-of-scope requests and answer small talk.
"""

from __future__ import annotations

from typing import Any

from agent.extraction import Span
from agent.row_passages import row_passage

CLINICAL_REPLY = ("I answer questions about linac QA and QA protocols. Questions "
                  "about a specific patient's treatment, dose or prescription are "
                  "not my job: please ask the treating physician or the "
                  "physicist responsible for that plan.")
OUT_OF_SCOPE_REPLY = ("That is outside what I do. I answer questions about linac "
                      "QA protocols and tolerances, and I analyse the QA data on "
                      "hand (drift, control charts, fleet overview). I cannot change "
                      "or delete data.")
SMALL_TALK_REPLY = ("Hello. Ask me about a QA tolerance or protocol (\"monthly jaw "
                    "tolerance?\"), or ask me to check a series (\"is the 6X output "
                    "on TrueBeam 2 drifting?\").")
NOT_FOUND = ("The protocols I have do not answer this, so I will not guess. "
             "Add the relevant document to the knowledge base, or rephrase.")


def abstention(nearby: tuple[str, ...] | list[str]) -> str:
    """The answer when no passage states what was asked (``abstained: true``).

    Parameters
    ----------
    nearby : sequence of str
        "file, section" of passages found near the question; they are listed
        as what the documents cover instead, marked as not an answer, never
        quoted and never cited.

    Returns
    -------
    str
        :data:`NOT_FOUND`, then the nearby places when there are any.
    """
    places = list(dict.fromkeys(nearby))[:3]
    if not places:
        return NOT_FOUND
    return (f"{NOT_FOUND} Not an answer, only what the documents cover nearby: "
            + "; ".join(places) + ".")


def answer_from_tolerance(tool_calls: list[dict[str, Any]],
                          passages: list[dict[str, Any]],
                          spans: tuple[Span, ...] | None = None) -> str:
    """A tolerance answer written from the table look-up, citing its passages.

    Each row gives its tolerance (for the machine's class when one is known,
    one value when all classes agree, else per class) and its action limit
    when the table has one (TG-218: tolerance 95%, action 90%), cited to the
    passage that states it (:func:`agent.row_passages.row_passage`).

    Parameters
    ----------
    tool_calls : list of dict
        The request's tool calls; the ``lookup_tolerance`` one is used.
    passages : list of dict
        The retrieved passages and those stating the rows, numbered from 1.
    spans : tuple of Span, optional
        The extract of the question (:func:`agent.extraction.extract`): only
        the rows whose passage it quotes are written, and its other spans
        (a second test asked about, a note) are quoted after them.

    Returns
    -------
    str
        One sentence per row (at most four), then the other spans; "" when
        the look-up found no row, or the extract quotes none of the rows, or
        another of its spans covers the question better than the rows do.
    """
    lookup = next((c["result"] for c in tool_calls
                   if c["name"] == "lookup_tolerance"), None)
    if not lookup or not lookup.get("rows"):
        return ""
    quoted = {s.passage for s in spans} if spans is not None else None
    texts = [p["text"] for p in passages]
    lines = []
    stated: set[int] = set()
    klass = lookup.get("machine_class")
    for row in lookup["rows"]:
        i = row_passage(row, texts, passages)
        n = i + 1 if i is not None else None
        if quoted is not None and n not in quoted:
            continue
        if len(lines) == 4:
            break
        stated.add(n or 0)
        lines.append(_row_sentence(row, klass, n))
    if not lines:
        return ""
    if spans and max(s.coverage for s in spans if s.passage in stated) < max(
            s.coverage for s in spans):
        return ""  # another passage answers better: "how does X compute flatness"
    others = [s.line() for s in spans or () if s.passage not in stated]
    if others:
        lines.append("\n\nThe documents also state:\n"
                     + "\n".join(f"- {line}" for line in others))
    return " ".join(lines).replace(" \n\n", "\n\n")


def _row_sentence(row: dict[str, Any], klass: str | None, n: int | None) -> str:
    """One tolerance row in words, with its citation marker and note."""
    value = _limit_text(row["limits"], row["unit"], klass)
    if row["kind"] == "minimum":
        value = f"at least {value}"
    if row.get("action_limits"):
        value += "; action limit " + _limit_text(row["action_limits"],
                                                 row["unit"], klass)
    flag = "" if row["verified"] else " (unverified: check the original report)"
    cite = f" [{n}]" if n else ""
    # The table's note carries what one number per class cannot say
    # ("1 mm for SRS; 2 mm for SBRT").
    note = f" Note: {row['note'].rstrip('.')}." if row.get("note") else ""
    return (f"{row['description']} ({row['frequency']}): {value}; "
            f"{row['source']}{flag}{cite}.{note}")


def _limit_text(limits: dict[str, Any], unit: str, klass: str | None) -> str:
    """Limits by machine class as words: one value when they agree."""
    if klass and limits.get(klass) is not None:
        return f"{_quantity(limits[klass], unit)} ({klass})"
    values = {k: v for k, v in limits.items() if v is not None}
    if not values:
        return "functional (pass/fail)"
    if len(set(values.values())) == 1:
        return _quantity(next(iter(values.values())), unit)
    return ", ".join(f"{k} {_quantity(v, unit)}" for k, v in values.items())


def _quantity(value: float, unit: str) -> str:
    """A value with its unit as the protocols write it: 2%, 2 mm, 1 deg."""
    return f"{value:g}%" if unit == "%" else f"{value:g} {unit}"
