"""The agent's tools: typed, read-only wrappers over ``agent.qa`` and retrieval.

Each tool takes a pydantic argument model (validated before anything runs)
and returns a JSON-ready dict, the ``result`` of a tool call in the
``qa-agent ask --json`` contract; ``analyze_series`` returns exactly the
``qa-agent analyze --json --details`` document (``AnalysisRun.document``).
No tool runs code, and only ``analyse_images`` writes: the metrics of the
images the user uploaded (idempotent by the images' sha256) and pylinac's
figure of them. Each tool is a few lines over
:class:`~agent.engine.QAEngine`, which the CLI and the UI use too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.asks import Ask
from agent.config import Settings
from agent.engine import QAEngine
from agent.qa import presentation
from agent.qa.imaging import MAIN_METRICS
from agent.qa.periods import PeriodSpec
from agent.qa.result import SeriesResult
from agent.qa.selection import SelectionError
from agent.qa.series import series_name
from agent.qa.tolerances import ToleranceTables
from agent.vocabulary import Frequency, MachineClass


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
    energy_kind: Literal["photon", "electron", "FFF"] | None = Field(
        default=None, description="only series of this kind of beam")
    ask: Ask = Field(default="verdict", description="what the answer says")
    period_words: str | None = Field(
        default=None, description="the period as the question named it")


class GroupArgs(BaseModel):
    """One side of a comparison: one series over one period."""

    label: str = Field(min_length=1, max_length=80)
    machine: str | None = None
    test: str | None = None
    energy: str | None = None
    start: str | None = Field(default=None, description="YYYY-MM-DD")
    end: str | None = Field(default=None, description="YYYY-MM-DD")


class CompareArgs(BaseModel):
    """Compare two periods of one series, or one period of two series."""

    groups: list[GroupArgs] = Field(min_length=2, max_length=2)


class PeriodArgs(BaseModel):
    """Settle a period in words against the data of a selection."""

    machine: str | None = None
    test: str | None = None
    energy: str | None = None
    period: PeriodSpec


class FleetArgs(BaseModel):
    """Every series of the fleet, worst first."""

    machine: str | None = None
    limit: int = Field(default=10, ge=1, le=200)


class DataArgs(BaseModel):
    """What QA data is on hand."""

    machine: str | None = None


class ImageArgs(BaseModel):
    """Analyse uploaded QA images with pylinac and trend the set's main metric."""

    kind: Literal["wl", "picketfence", "starshot", "field"]
    machine: str | None = Field(default=None, description="the machine imaged")
    files: list[str] = Field(default_factory=list, max_length=500,
                             description="the uploaded DICOM files or one zip")
    date: str | None = Field(default=None,
                             description="YYYY-MM-DD[ HH:MM]; default the headers'")
    energy: str | None = Field(default=None, description="the beam (field analysis)")


@dataclass
class ToolContext:
    """What the tools work on: one :class:`~agent.engine.QAEngine`, and the
    analyses a conversation asked for (for its charts).

    With ``data`` the engine reads that file (``--data FILE``); otherwise the
    measurement store from the settings. Pass ``engine`` to share one engine
    (the app's chat and Data tab do).
    """

    settings: Settings | None = None
    data: Path | None = None
    engine: QAEngine | None = None
    charts: dict[str, SeriesResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.engine is None:
            if self.settings is None:
                raise TypeError("ToolContext needs settings or an engine")
            self.engine = QAEngine(self.settings, self.data)
        self.settings = self.engine.settings
        self.data = self.engine.data

    @property
    def tables(self) -> ToleranceTables:
        """Tolerance tables (the engine's)."""
        return self.engine.tables

    @property
    def searcher(self) -> Any:
        """Hybrid protocol search (the engine's)."""
        return self.engine.searcher

    def refresh(self, data: bool = True, knowledge: bool = True) -> None:
        """Drop what an import (``data``) or a re-index (``knowledge``) made stale."""
        self.engine.invalidate(data=data, knowledge=knowledge)


def search_protocols(ctx: ToolContext, args: SearchArgs) -> dict[str, Any]:
    """Passages from the protocols, with their place; empty when none is relevant."""
    results = ctx.engine.search(args.query, k=args.k, document=args.document,
                                frequency=args.frequency)
    return {"results": [r.contract() for r in results]}


def lookup_tolerance(ctx: ToolContext, args: ToleranceArgs) -> dict[str, Any]:
    """Tolerance rows for a test, by frequency and machine class.

    The machine class comes from ``machine_class`` or from the machine
    registry when ``machine`` names a machine; the values of the other classes
    are returned too.
    """
    return ctx.engine.tolerance(args.test, args.frequency, args.machine,
                                args.machine_class, args.energy, args.beam)


def chart_key(machine: str, test: str, energy: str | None,
              start: str | None = None, end: str | None = None) -> str:
    """Where ``analyze_series`` keeps a series' result in ``ctx.charts``."""
    return f"{series_name(machine, test, energy)}@{start or ''}..{end or ''}"


def analyze_series(ctx: ToolContext, args: AnalyzeArgs) -> dict[str, Any]:
    """The ``qa-agent analyze --json --details`` document for the named series.

    The results (with their chart data) are kept in ``ctx.charts`` under
    :func:`chart_key` (series and period) so a caller (the UI) can draw their
    control charts; the same key always holds the same analysis, so
    conversations sharing a context cannot get each other's charts.
    """
    run = ctx.engine.analyse(args.machine, args.test, args.energy, args.start,
                             args.end, energy_kind=args.energy_kind)
    for r in run.results:
        ctx.charts[chart_key(*r.key, args.start, args.end)] = r
    return run.document(details=True)


def resolve_period(ctx: ToolContext, args: PeriodArgs) -> dict[str, Any]:
    """The dates of a period in words ("the last 3 months", "since the
    recalibration") for the selected series: start, end (both included), the
    words and the text the answer uses."""
    period = ctx.engine.period(args.period, args.machine, args.test, args.energy)
    return {**period.model_dump(), "text": period.text()}


def compare_series(ctx: ToolContext, args: CompareArgs) -> dict[str, Any]:
    """Two groups side by side: n, mean, SD, control limits, verdict, and the
    difference of the means with its 95% confidence interval."""
    groups = [g.model_dump() for g in args.groups]
    comparison = ctx.engine.compare(groups)
    return {"comparison": comparison.model_dump()}


def fleet_overview(ctx: ToolContext, args: FleetArgs) -> dict[str, Any]:
    """The worst series of the fleet first (status, drift), at most ``limit``."""
    run = ctx.engine.fleet(args.machine)
    counts = {s: n for s, n in presentation.status_counts(run.results).items() if n}
    return {**run.document(details=True, limit=args.limit),
            "total": len(run.results), "by_status": counts}


def list_data(ctx: ToolContext, args: DataArgs) -> dict[str, Any]:
    """Machines, tests, energies, counts and date ranges on hand."""
    return ctx.engine.data_on_hand(args.machine)


def analyse_images(ctx: ToolContext, args: ImageArgs) -> dict[str, Any]:
    """Analyse uploaded images with pylinac (Winston-Lutz, picket fence, starshot,
    field analysis), store their metrics and trend the set's main metric.

    Returns the ``qa-agent image --json`` document (``ImageRun.document``)
    with pylinac's results ``text``, the ``figure`` (pylinac's annotated
    image as PNG under ``<data_dir>/images/``) and ``pdf`` (pylinac's report
    of the set, beside it), the main ``metric`` and its
    ``value``, and ``trend``: the ``analyze_series`` document of that
    metric's series, whose result is kept in ``ctx.charts`` under
    :func:`chart_key` (no period) for its control chart. The same images
    again add nothing (``stored.already_imported``).
    """
    if not args.files:
        return {"error": "upload the images first (DICOM files or a zip)"}
    if not args.machine:
        return {"error": "say which machine the images are of (e.g. 'for TrueBeam2')"}
    run = ctx.engine.analyse_images(args.kind, [Path(f) for f in args.files],
                                    args.machine, args.date, args.energy)
    folder = ctx.engine.settings.data_dir / "images"
    folder.mkdir(parents=True, exist_ok=True)
    figure = folder / (f"{run.machine}_{args.kind}_{run.when.date:%Y%m%d-%H%M%S}_"
                       f"{run.data.images_sha256[:12]}.png")
    run.analysis.save_figure(figure)
    pdf = run.analysis.publish_pdf(figure.with_suffix(".pdf"))  # for download
    test = MAIN_METRICS[args.kind]
    try:
        trend = ctx.engine.analyse(run.machine, test, run.energy or None)
    except SelectionError as exc:  # stored, but its series cannot be analysed
        series: dict[str, Any] = {"error": str(exc)}
    else:
        for r in trend.results:
            ctx.charts[chart_key(*r.key)] = r
        series = trend.document(details=True)
    return {**run.document(), "text": run.text(), "figure": str(figure),
            "pdf": str(pdf), "metric": test, "value": run.data.metric(test),
            "trend": series}


#: name -> (function, argument model): everything the agent may call.
TOOLS: dict[str, tuple[Any, type[BaseModel]]] = {
    "search_protocols": (search_protocols, SearchArgs),
    "lookup_tolerance": (lookup_tolerance, ToleranceArgs),
    "analyze_series": (analyze_series, AnalyzeArgs),
    "resolve_period": (resolve_period, PeriodArgs),
    "compare_series": (compare_series, CompareArgs),
    "fleet_overview": (fleet_overview, FleetArgs),
    "list_data": (list_data, DataArgs),
    "analyse_images": (analyse_images, ImageArgs),
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
