"""The answers written by code and the fixed replies.

Analyses, fleet overviews, data lists and tolerance look-ups are written from
the tool results by code, not by the LLM, so every number in them is one the
tools computed (README.md, "The agent"); the fixed replies decline
patient-specific and out-of-scope requests and answer small talk.
"""

from __future__ import annotations

from typing import Any

from agent.verification import numbers_in, words_of

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
                          passages: list[dict[str, Any]]) -> str:
    """A tolerance answer written from the table look-up, citing its passage.

    Each row gives its tolerance (for the machine's class when one is known,
    one value when all classes agree, else per class) and its action limit
    when the table has one (TG-218: tolerance 95%, action 90%).

    Parameters
    ----------
    tool_calls : list of dict
        The request's tool calls; the ``lookup_tolerance`` one is used.
    passages : list of dict
        The retrieved passages, numbered from 1 in the answer.

    Returns
    -------
    str
        One sentence per row (at most four), or "" when the look-up found
        no row.
    """
    lookup = next((c["result"] for c in tool_calls
                   if c["name"] == "lookup_tolerance"), None)
    if not lookup or not lookup.get("rows"):
        return ""
    lines = []
    klass = lookup.get("machine_class")
    for row in lookup["rows"][:4]:
        value = _limit_text(row["limits"], row["unit"], klass)
        if row["kind"] == "minimum":
            value = f"at least {value}"
        if row.get("action_limits"):
            value += "; action limit " + _limit_text(row["action_limits"],
                                                     row["unit"], klass)
        flag = "" if row["verified"] else " (unverified: check the original report)"
        n = _row_passage(row, value, passages)
        cite = f" [{n}]" if n else ""
        # The table's note carries what one number per class cannot say
        # ("1 mm for SRS; 2 mm for SBRT").
        note = f" Note: {row['note'].rstrip('.')}." if row.get("note") else ""
        lines.append(f"{row['description']} ({row['frequency']}): {value}; "
                     f"{row['source']}{flag}{cite}.{note}")
    return " ".join(lines)


def _row_passage(row: dict[str, Any], value: str,
                 passages: list[dict[str, Any]]) -> int | None:
    """The passage that states a tolerance row: its name, else its numbers.

    Falls back to a passage holding every number of the value and at least
    two words of the row's description, so a differently worded table row
    (TG-218's "passing rate" table) is still cited, and nothing else is.
    """
    for name in (row["description"], row["description"].split(",")[0]):
        n = next((n for n, p in enumerate(passages, start=1)
                  if name.lower() in p["text"].lower()), None)
        if n is not None:
            return n
    numbers = numbers_in(value)
    words = words_of(row["description"])
    for n, p in enumerate(passages, start=1):
        if numbers <= numbers_in(p["text"]) and len(words & words_of(p["text"])) >= 2:
            return n
    return None


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
