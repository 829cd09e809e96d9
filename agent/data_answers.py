"""Answers to data requests, written by code from the tool calls.

Analyses (what was asked of which series over which period), comparisons,
fleet overviews, analysed image sets and the data on hand are worded by
:mod:`agent.qa.presentation` from the tool results; no number comes from a
model.
"""

from __future__ import annotations

from typing import Any

from agent.qa import presentation, tolerances
from agent.qa.comparison import Comparison
from agent.qa.result import SeriesResult

#: The tools whose results this module words.
DATA_TOOLS = ("analyze_series", "compare_series", "fleet_overview", "list_data",
              "analyse_images")


def answer_from_call(call: dict[str, Any]) -> str:
    """The answer for one tool call (``name``, ``args``, ``result``).

    Returns
    -------
    str
        The answer; an error result is said as "I could not run that: ...".
    """
    result = call["result"]
    if "error" in result:
        return f"I could not run that: {result['error']}"
    name, args = call["name"], call.get("args", {})
    if name == "analyze_series":
        return presentation.analysis_answer(
            [SeriesResult.from_contract(s) for s in result["series"]],
            ask=args.get("ask", "verdict"), period=args.get("period_words"))
    if name == "compare_series":
        return presentation.comparison_answer(
            Comparison.model_validate(result["comparison"]))
    if name == "analyse_images":
        return image_answer(result)
    if name == "fleet_overview":
        return presentation.fleet_answer(
            [SeriesResult.from_contract(s) for s in result["series"]],
            result["total"], result["by_status"])
    return presentation.data_answer(result["machines"])


def image_answer(result: dict[str, Any]) -> str:
    """The answer for an ``analyse_images`` result: pylinac's text, the main
    metric against the tolerance row of its series, and the series' verdict."""
    entries = result.get("trend", {}).get("series", [])
    series = SeriesResult.from_contract(entries[0]) if entries else None
    row = series.tolerance if series is not None else None
    beyond = None if row is None else bool(
        tolerances.beyond(result["value"], row.kind, row.nominal, row.limit))
    metric = next(m for m in result["result"]["metrics"]
                  if m["test"] == result["metric"])
    label = f"{metric['description'] or metric['test']} ({metric['test']})"
    return presentation.image_answer(result["text"], label, result["value"],
                                     metric["unit"], beyond, series)


def answer_from_calls(calls: list[dict[str, Any]]) -> str:
    """The answer for the data tool calls of one turn, in order (one per
    series selection: "the 6X and 10X output" is two analyses)."""
    ours = [c for c in calls if c["name"] in DATA_TOOLS or "error" in c["result"]]
    if not ours:
        return "I could not run that: no data tool was called."
    return "\n".join(answer_from_call(c) for c in ours)


__all__ = ["DATA_TOOLS", "answer_from_call", "answer_from_calls", "image_answer"]
