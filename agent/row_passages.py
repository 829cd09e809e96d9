"""The indexed passage that states a tolerance row, so a table answer is cited.

A tolerance answer is written by code from ``knowledge/tolerances/*.yaml``;
those tables are transcribed from the same reports as the corpus documents,
whose tables are indexed one row per passage ("Test: Laser localization;
Frequency: daily; Non-IMRT: 2 mm; ..."). The two are worded independently,
so a row's passage is found by what it states, not by its name alone: a
table-row passage that holds every number of the row's limits, from the
row's frequency when the passage names one, whose words share most with the
row's description. When no passage states a row, the row itself is the
source: a passage made from the table file ("tg142.yaml, AAPM TG-142 Table I
(daily)"), so the answer still cites where its numbers come from.
"""

from __future__ import annotations

import re
from typing import Any

from agent.extraction import is_table_row
from agent.retrieval.text import content_tokens
from agent.verification import numbers_in

#: Share of a row description's topic words a passage must hold to state it.
MIN_OVERLAP = 0.5
_FREQUENCY = re.compile(r"\bFrequency: (\w+)", re.I)
_REPORT = re.compile(r"\b(TG|MPPG)[- ]?(\d+)(?:\.?([a-z])\b)?", re.I)


def _report_file_prefix(source: str) -> str:
    """The corpus file prefix of a row's report ("AAPM MPPG 9.a" -> "mppg9a")."""
    match = _REPORT.search(source)
    if not match:
        return ""
    return (match.group(1) + match.group(2) + (match.group(3) or "")).lower()


def _limit_numbers(row: dict[str, Any]) -> set[str]:
    """The numbers of a row's limits (every class, tolerance and action)."""
    values = [v for v in (row.get("limits") or {}).values() if v is not None]
    values += [v for v in (row.get("action_limits") or {}).values() if v is not None]
    return {f"{float(v):g}" for v in values if isinstance(v, int | float)}


def row_passage(row: dict[str, Any], texts: list[str], metas: list[dict[str, Any]],
                tokens_of: Any = None) -> int | None:
    """Index (in ``texts``) of the passage that states a tolerance row, or None.

    Parameters
    ----------
    row : dict
        A ``lookup_tolerance`` row (description, frequency, limits, ...).
    texts, metas : list
        Every indexed passage's text and metadata, in the same order.
    tokens_of : callable, optional
        Row number -> set of the passage's tokens (default: computed here).

    Returns
    -------
    int or None
        The best table-row passage holding all of the row's numbers and at
        least :data:`MIN_OVERLAP` of its description's topic words.
    """
    wanted = set(content_tokens(row["description"]))
    numbers = _limit_numbers(row)
    report = _report_file_prefix(row.get("source", ""))
    best, best_score = None, 0.0
    for i, text in enumerate(texts):
        if not is_table_row(text) or not numbers <= numbers_in(text):
            continue
        said = _FREQUENCY.search(text)
        if said and said.group(1).lower() != row["frequency"]:
            continue
        tokens = tokens_of(i) if tokens_of else set(content_tokens(
            f"{metas[i].get('section', '')} {text}"))
        overlap = len(wanted & tokens) / len(wanted) if wanted else 0.0
        # The first cell names the test: a passage whose test cell is the
        # description wins over one that merely mentions its words.
        first = text.split(";", 1)[0]
        named = set(content_tokens(first))
        score = overlap + (len(wanted & named) / len(wanted) if wanted else 0.0)
        # The report's own document before another that restates the value.
        if report and str(metas[i].get("source", "")).startswith(report):
            score += 1.0
        if overlap >= MIN_OVERLAP and score > best_score:
            best, best_score = i, score
    return best


def table_passage(row: dict[str, Any]) -> dict[str, Any]:
    """The row itself as a citable passage (file, table, the row in words)."""
    limits = "; ".join(f"{k}: {_value(v, row['unit'])}"
                       for k, v in (row.get("limits") or {}).items())
    action = "; ".join(f"{k} action: {_value(v, row['unit'])}"
                       for k, v in (row.get("action_limits") or {}).items())
    text = (f"Test: {row['description']}; Frequency: {row['frequency']}; {limits}"
            + (f"; {action}" if action else "")
            + (f"; Note: {row['note']}" if row.get("note") else ""))
    return {"source": row.get("file") or "tolerance table",
            "section": row["source"], "page": None, "text": text, "score": 1.0}


def _value(value: Any, unit: str) -> str:
    if value is None:
        return "NA"
    if isinstance(value, str):
        return value
    return f"{value:g}%" if unit == "%" else f"{value:g} {unit}"


def passages_for_rows(searcher: Any, rows: list[dict[str, Any]],
                      passages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The passages that state the looked-up rows and are not yet retrieved.

    Parameters
    ----------
    searcher : HybridSearcher or None
        The knowledge index's searcher (its keyword index holds every
        passage's text); None when there is no index.
    rows : list of dict
        The ``lookup_tolerance`` rows.
    passages : list of dict
        The passages already retrieved (``contract()`` dicts).

    Returns
    -------
    list of dict
        One passage per row not already among ``passages``, in row order: the
        indexed passage stating it, else the row itself (:func:`table_passage`).
    """
    texts: list[str] = []
    metas: list[dict[str, Any]] = []
    tokens_of = None
    if searcher is not None:
        try:
            kw = searcher.keywords()
            texts, metas = kw.texts, kw.metas
        except Exception:  # no index: the rows are their own source
            texts, metas = [], []
    have = {p["text"] for p in passages}
    out: list[dict[str, Any]] = []
    for row in rows:
        i = row_passage(row, texts, metas, tokens_of)
        if i is None:
            found = table_passage(row)
        else:
            meta = metas[i]
            found = {"source": meta.get("source", ""),
                     "section": meta.get("section", ""),
                     "page": meta.get("page") or None, "text": texts[i],
                     "score": 1.0}
        if found["text"] not in have:
            have.add(found["text"])
            out.append(found)
    return out
