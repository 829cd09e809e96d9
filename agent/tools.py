"""The agent's tools: typed, read-only wrappers over ``agent.qa`` and retrieval.

Each tool takes a pydantic argument model (validated before anything runs)
and returns a JSON-ready dict, the ``result`` of a tool call in the
``qa-agent ask --json`` contract; ``analyze_series`` returns exactly the
``qa-agent analyze --json`` document. No tool writes anything or runs code.
The same functions back the LangChain tools (:func:`langchain_tools`), the
CLI and the UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.config import Settings, get_settings
from agent.qa.importers import RowError, read_measurements
from agent.qa.names import TESTS, canonical_energy, canonical_machine, canonical_test
from agent.qa.selection import (
    SelectionError,
    analysis_options,
    load_tables,
    select_series,
)
from agent.qa.store import MeasurementStore, SeriesData, series_from_frame
from agent.qa.tolerances import ToleranceTables

Frequency = Literal["daily", "weekly", "monthly", "quarterly", "annual"]
MachineClass = Literal["non-IMRT", "IMRT", "SRS/SBRT"]


class SearchArgs(BaseModel):
    """Search the protocol documents."""

    query: str = Field(min_length=2, max_length=500)
    k: int = Field(default=5, ge=1, le=10)
    document: str | None = None
    frequency: Frequency | None = None


class ToleranceArgs(BaseModel):
    """Look up tolerances in the shipped tables."""

    test: str = Field(description="test name, e.g. output, laser, jaw, odi")
    frequency: Frequency | None = None
    machine: str | None = Field(default=None, description="a machine on hand")
    machine_class: MachineClass | None = None
    energy: str | None = None
    beam: Literal["photon", "electron"] | None = Field(
        default=None, description="photon or electron rows only (else from energy)")


class AnalyzeArgs(BaseModel):
    """Analyse QA series: tolerance, control chart, drift."""

    machine: str | None = None
    test: str | None = None
    energy: str | None = None
    start: str | None = Field(default=None, description="YYYY-MM-DD")
    end: str | None = Field(default=None, description="YYYY-MM-DD")


class FleetArgs(BaseModel):
    """Every series of the fleet, worst first."""

    machine: str | None = None
    limit: int = Field(default=10, ge=1, le=200)


class DataArgs(BaseModel):
    """What QA data is on hand."""

    machine: str | None = None


@dataclass
class ToolContext:
    """What the tools work on: settings, an optional data file, caches.

    With ``data`` the tools read that file (``--data FILE``); otherwise the
    measurement store from the settings.
    """

    settings: Settings = field(default_factory=get_settings)
    data: Path | None = None
    _tables: ToleranceTables | None = None
    _searcher: Any = None
    _series: list[SeriesData] | None = None
    _errors: list[RowError] = field(default_factory=list)
    charts: dict[str, Any] = field(default_factory=dict)

    @property
    def tables(self) -> ToleranceTables:
        """Tolerance tables (loaded once)."""
        if self._tables is None:
            self._tables = load_tables(self.settings)
        return self._tables

    @property
    def searcher(self) -> Any:
        """Hybrid protocol search (the index is opened once)."""
        if self._searcher is None:
            from agent.retrieval.index import open_index
            from agent.retrieval.search import HybridSearcher

            self._searcher = HybridSearcher(open_index(self.settings,
                                                       progress=False))
        return self._searcher

    def refresh(self, data: bool = True, knowledge: bool = True) -> None:
        """Drop what an import (``data``) or a re-index (``knowledge``) made stale.

        The series are read again at the next call; the searcher re-reads the
        index at its next search. A long-lived caller (the app) calls this
        after changing the store or the documents.
        """
        if data:
            self._series = None
            self._errors = []
        if knowledge and self._searcher is not None:
            self._searcher.invalidate()

    def all_series(self) -> list[SeriesData]:
        """Every series on hand (file or store)."""
        if self._series is None:
            if self.data is not None:
                result = read_measurements(self.data)
                self._errors = result.errors
                self._series = series_from_frame(result.frame, result.events)
            else:
                store = MeasurementStore(self.settings.resolved_database_url)
                self._series = store.load_series()
        return self._series


def search_protocols(ctx: ToolContext, args: SearchArgs) -> dict[str, Any]:
    """Passages from the protocols, with their place; empty when none is relevant."""
    results = ctx.searcher.search(args.query, k=args.k, document=args.document,
                                  frequency=args.frequency)
    return {"results": [r.contract() for r in results]}


def lookup_tolerance(ctx: ToolContext, args: ToleranceArgs) -> dict[str, Any]:
    """Tolerance rows for a test, by frequency and machine class.

    The machine class comes from ``machine_class`` or from the machine
    registry when ``machine`` names a machine; the values of the other classes
    are returned too.
    """
    test = canonical_test(args.test)
    if test is None:
        raise SelectionError(f"test '{args.test}' not recognised; known tests: "
                             + ", ".join(TESTS))
    machine_class = args.machine_class
    machine = None
    if args.machine:
        on_hand = sorted(ctx.tables.machines)
        machine = canonical_machine(args.machine, on_hand) or args.machine
        machine_class = machine_class or ctx.tables.machine_class(machine)[0]
    beam = args.beam or ""
    if args.energy and not beam:
        from agent.qa.names import beam_type

        beam = beam_type(canonical_energy(args.energy) or "")
    rows = []
    for row in ctx.tables.find(test=test, frequency=args.frequency):
        if beam and row.beam not in ("any", beam):
            continue
        rows.append({
            "id": row.id, "description": row.description, "frequency": row.frequency,
            "unit": row.unit, "kind": row.kind, "limits": row.limits,
            "action_limits": row.action_limits, "verified": row.verified,
            "source": row.source, "note": row.note,
            "limit_for_class": row.limits.get(machine_class) if machine_class
            else None})
    return {"test": test, "frequency": args.frequency, "machine": machine,
            "machine_class": machine_class, "rows": rows}


def series_name(machine: str, test: str, energy: str | None) -> str:
    """``TrueBeam2/output/10X`` (a series without energy: ``TrueBeam2/odi``)."""
    return "/".join(p for p in (machine, test, energy) if p)


def chart_key(machine: str, test: str, energy: str | None,
              start: str | None = None, end: str | None = None) -> str:
    """Where ``analyze_series`` keeps a series' analysis in ``ctx.charts``."""
    return f"{series_name(machine, test, energy)}@{start or ''}..{end or ''}"


def analyze_series(ctx: ToolContext, args: AnalyzeArgs) -> dict[str, Any]:
    """The ``qa-agent analyze --json`` document for the named series.

    The analyses are kept in ``ctx.charts`` under :func:`chart_key` (series
    and period) so a caller (the UI) can draw their control charts; the same
    key always holds the same analysis, so conversations sharing a context
    cannot get each other's charts.
    """
    from agent.qa.analysis import SeriesAnalysis, sort_worst_first

    series, errors = select_series(ctx.settings, ctx.data, args.machine, args.test,
                                   args.energy, args.start, args.end)
    options = analysis_options(ctx.settings)
    analyses = [SeriesAnalysis(s, ctx.tables).analyze(**options) for s in series]
    for a in analyses:
        ctx.charts[chart_key(*a.series.key, args.start, args.end)] = a
    results = sort_worst_first([a.results_data() for a in analyses])
    return {"series": [r.to_contract() for r in results],
            "errors": [e.as_dict() for e in errors]}


def fleet_overview(ctx: ToolContext, args: FleetArgs) -> dict[str, Any]:
    """The worst series of the fleet first (status, drift), at most ``limit``."""
    from agent.qa.fleet import analyze_fleet

    series, errors = select_series(ctx.settings, ctx.data, args.machine, None, None,
                                   None, None)
    results = analyze_fleet(series, ctx.tables, analysis_options(ctx.settings))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return {"series": [r.to_contract() for r in results[:args.limit]],
            "total": len(results), "by_status": counts,
            "errors": [e.as_dict() for e in errors]}


def list_data(ctx: ToolContext, args: DataArgs) -> dict[str, Any]:
    """Machines, tests, energies, counts and date ranges on hand."""
    series = ctx.all_series()
    machines = sorted({s.machine for s in series})
    want = canonical_machine(args.machine, machines) if args.machine else None
    if args.machine and want is None:
        raise SelectionError(f"machine '{args.machine}' not on hand; machines: "
                             + ", ".join(machines))
    out: dict[str, list[dict[str, Any]]] = {}
    for s in series:
        if want and s.machine != want:
            continue
        out.setdefault(s.machine, []).append({
            "test": s.test, "energy": s.energy, "unit": s.unit,
            "n": int(s.values.size),
            "first": str(s.dates.min())[:10] if s.values.size else None,
            "last": str(s.dates.max())[:10] if s.values.size else None})
    return {"machines": [{"machine": m, "series": rows} for m, rows in out.items()],
            "source": str(ctx.data) if ctx.data else "measurement store"}


#: name -> (function, argument model): everything the agent may call.
TOOLS: dict[str, tuple[Any, type[BaseModel]]] = {
    "search_protocols": (search_protocols, SearchArgs),
    "lookup_tolerance": (lookup_tolerance, ToleranceArgs),
    "analyze_series": (analyze_series, AnalyzeArgs),
    "fleet_overview": (fleet_overview, FleetArgs),
    "list_data": (list_data, DataArgs),
}


def run_tool(ctx: ToolContext, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Validate the arguments and run one tool.

    Raises
    ------
    KeyError
        For an unknown tool name.
    pydantic.ValidationError, SelectionError
        For arguments that do not fit or name nothing on hand.
    """
    function, model = TOOLS[name]
    return function(ctx, model.model_validate(args))


def langchain_tools(ctx: ToolContext) -> list[Any]:
    """The tools as LangChain ``StructuredTool`` objects bound to a context."""
    from langchain_core.tools import StructuredTool

    tools = []
    for name, (function, model) in TOOLS.items():
        def call(_f=function, _m=model, **kwargs: Any) -> dict[str, Any]:
            return _f(ctx, _m(**kwargs))
        tools.append(StructuredTool.from_function(
            func=call, name=name, description=(function.__doc__ or "").split("\n")[0],
            args_schema=model))
    return tools
