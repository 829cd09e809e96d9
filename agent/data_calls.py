"""The tool calls a data request makes: its selections, periods and comparison.

From the request the rules understood (:class:`agent.understanding.Request`)
and its route: one ``analyze_series`` call per series selection ("the 6X and
10X output" is two), each with the period settled against the data by the
engine (``start``/``end`` in the call's arguments, so ``ask --json`` shows
what was analysed), or one ``compare_series`` call for a comparison (two
periods of one series, or one period of two machines or energies). A period
or event that the data do not have is a failed step with its reason, not a
wider analysis. A request for images (``Request.image_kind``) is one
``analyse_images`` call on the conversation's uploads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.qa.periods import PeriodSpec
from agent.understanding import Request, Route

Call = Callable[[str, dict[str, Any]], Any]


class PeriodUnavailable(Exception):  # noqa: N818 (a state, caught below)
    """The period's resolution failed; its error is in the recorded step."""


def _period(call: Call, spec: PeriodSpec | None, selection: dict[str, Any],
            route: Route) -> dict[str, Any]:
    """start, end and period_words of one selection (the route's dates when
    the words name no period), through the ``resolve_period`` tool."""
    if spec is None:
        return {"start": route.start, "end": route.end, "period_words": None}
    found = call("resolve_period", selection | {"period": spec.model_dump()})
    if "error" in found:
        raise PeriodUnavailable(found["error"])
    return {"start": found["start"], "end": found["end"],
            "period_words": found["text"], "words": found["words"]}


def _groups(call: Call, request: Request, base: dict[str, Any],
            route: Route) -> list[dict[str, Any]] | None:
    """The two sides of a comparison, or None when nothing names two."""
    if len(request.compare_periods) == 2:
        groups = []
        for spec in request.compare_periods:
            period = _period(call, spec, base, route)
            groups.append(base | {"label": period["words"], "start": period["start"],
                                  "end": period["end"]})
        return groups
    for field, names in (("machine", request.machines),
                         ("energy", request.energies)):
        if len(names) >= 2:
            groups = []
            for name in names[:2]:
                side = base | {field: name}
                period = _period(call, request.period, side, route)
                groups.append(side | {"label": name, "start": period["start"],
                                      "end": period["end"]})
            return groups
    return None


def image_calls(request: Request, uploads: list[Path], call: Call) -> None:
    """The ``analyse_images`` call of a request for images, on the uploads
    (none: the tool's error says to upload them first).

    Parameters
    ----------
    request : Request
        With ``image_kind``; its machine, energy and date (``start``).
    uploads : list of Path
        The files uploaded in the conversation.
    call : callable
        ``call(tool_name, args)`` (see :func:`data_calls`).
    """
    call("analyse_images", {"kind": request.image_kind, "machine": request.machine,
                            "energy": request.energy, "date": request.start,
                            "files": [str(p) for p in uploads]})


def data_calls(route: Route, request: Request | None, call: Call,
               uploads: list[Path] | None = None) -> None:
    """Make the analysis or comparison calls of one data request.

    Parameters
    ----------
    route : Route
        The routed names (machine, test, energy, dates).
    request : Request or None
        What the rules understood (None: a plain analysis of the route).
    call : callable
        ``call(tool_name, args)``: runs and records one tool call, returns
        its result (``{"error": ...}`` when it failed).
    uploads : list of Path, optional
        The conversation's uploaded files, for a request for images.
    """
    if request is not None and request.image_kind:
        image_calls(request, uploads or [], call)
        return
    request = request or Request(intent="analysis")
    base = {"machine": route.machine, "test": route.test, "energy": route.energy}
    try:
        groups = (_groups(call, request, base, route)
                  if request.ask == "comparison" else None)
    except PeriodUnavailable:
        return
    if groups is not None:
        call("compare_series", {"groups": groups})
        return
    ask = "verdict" if request.ask == "comparison" else request.ask
    selections = ([base | {"energy": e} for e in request.energies]
                  or [base | {"machine": m} for m in request.machines] or [base])
    for selection in selections:
        try:
            period = _period(call, request.period, selection, route)
        except PeriodUnavailable:
            continue
        period.pop("words", None)
        kind = {"energy_kind": request.energy_kind} if request.energy_kind and \
            not selection.get("energy") else {}
        call("analyze_series", selection | period | kind | {"ask": ask})


__all__ = ["data_calls", "image_calls"]
