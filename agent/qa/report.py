"""PDF QA reports: one machine, one period, every series with its evidence.

In the style of pylinac: ``QAReport(engine, machine, start, end)`` loads and
analyses the machine's series through the :class:`~agent.engine.QAEngine`
(the same selection and analysis path as ``qa-agent analyze``), then
``write(path)`` produces the PDF (fpdf2):

* a title page with the machine, its class from the machine registry, the
  period the data actually cover, when and with which software version the
  report was made, and where the data came from;
* a summary table, one row per series, worst first;
* per series: the control chart, the verdict and the numbers behind it
  (centre line, control limits, capability, latest value, drift, signals with
  their dates and rule names) and the tolerance row that applied;
* the sources: the tolerance tables' documents and the SPC methods used;
* a sign-off block (reviewed by, signature, date).

No LLM and no UI here; the CLI (``qa-agent report``) and the app call
``QAEngine.report`` (or :func:`agent.engine.write_report`). Every phrase
comes from :mod:`agent.qa.presentation`.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agent.config import PROJECT_ROOT, Settings
from agent.qa import presentation
from agent.qa.charts import control_chart_png
from agent.qa.importers import RowError
from agent.qa.report_pdf import (
    CHART_DPI,
    CHART_HEIGHT,
    CHART_WIDTH,
    CONTENT_WIDTH,
    SECTION_MIN_HEIGHT,
    STATUS_FILL,
    ReportPDF,
)
from agent.qa.result import SeriesResult
from agent.qa.selection import SelectionError, check_dates
from agent.qa.spc import RULES
from agent.qa.tolerances import ToleranceTables


class SeriesSource(Protocol):
    """What a report reads its data through (``agent.engine.QAEngine`` is one).

    A protocol rather than the engine class, so this module does not depend
    on the layer above it.
    """

    settings: Settings
    data: Path | None
    tables: ToleranceTables

    def options(self, **changes: Any) -> Any: ...

    def select(self, machine: str | None = None, test: str | None = None,
               energy: str | None = None, start: str | None = None,
               end: str | None = None) -> tuple[list, list[RowError]]: ...

    def analyse(self, machine: str | None = None, test: str | None = None,
                energy: str | None = None, start: str | None = None,
                end: str | None = None, options: Any = None) -> Any: ...

MAX_ERRORS_LISTED = 40

QA_RECORD_NOTE = (
    "This report is a quality-assurance record computed from the measurements "
    "listed above. It is not clinical advice: a qualified medical physicist "
    "reviews it and decides on any action. Tolerance values come from the "
    "tables named under Sources; check them against the original reports "
    "before clinical use."
)


def software_version() -> str:
    """Version of the installed ``linac-qa-agent`` (or of its pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("linac-qa-agent")
    except PackageNotFoundError:
        import tomllib

        with (PROJECT_ROOT / "pyproject.toml").open("rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])


def source_description(settings: Settings, data: Path | None) -> str:
    """Where the measurements came from: the file, or the store without password."""
    if data is not None:
        return f"file {Path(data).resolve()}"
    from sqlalchemy.engine import make_url

    url = settings.resolved_database_url
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: show only what follows the host
        shown = url.split("@")[-1]
    return f"measurement store {shown}"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "machine"


@dataclass(frozen=True)
class ChartPlacement:
    """Where a series' control chart sits in the PDF (for checks and links)."""

    label: str
    page: int  # 1-based
    x: float  # millimetres from the left edge
    y: float  # millimetres from the top edge
    width: float
    height: float


class QAReport:
    """A PDF QA report for one machine and period.

    Parameters
    ----------
    engine : SeriesSource
        The :class:`~agent.engine.QAEngine`: gives the settings, the series
        (store or ``--data`` file), the tolerance tables and the analysis.
    machine : str
        The machine, spelled forgivingly ("truebeam 2", "TB2").
    start, end : str, optional
        First and last date (YYYY-MM-DD, both included); default: all data.

    Raises
    ------
    SelectionError
        When the machine is unknown, the dates are malformed or no measurement
        of the machine falls in the period; the message says what is on hand.
    """

    def __init__(
        self,
        engine: SeriesSource,
        machine: str,
        start: str | None = None,
        end: str | None = None,
    ) -> None:
        check_dates(start=start, end=end)
        if start and end and np.datetime64(start, "D") > np.datetime64(end, "D"):
            raise SelectionError(f"--start {start} is after --end {end}; swap them")
        if not machine or not machine.strip():
            raise SelectionError("name the machine to report on (--machine NAME)")
        settings = engine.settings
        self.settings: Settings = settings
        self.start = start
        self.end = end
        self.data = engine.data
        self.tables: ToleranceTables = engine.tables
        self.options = engine.options()
        series = self._select(engine, machine)
        run = engine.analyse(series[0].machine, start=start, end=end,
                             options=self.options)
        self.errors: list[RowError] = run.errors
        self.machine = series[0].machine
        self.results: list[SeriesResult] = run.results
        first = min(s.dates.min() for s in series)
        last = max(s.dates.max() for s in series)
        self.covered: tuple[str, str] = (str(first.astype("datetime64[D]")),
                                         str(last.astype("datetime64[D]")))
        self.machine_class, self.class_assumed = self.tables.machine_class(
            self.machine)
        registered = self.tables.machines.get(self.machine)
        self.model = registered.model if registered else ""
        self.generated = datetime.now().astimezone().replace(microsecond=0)
        self.version = software_version()
        self.source = source_description(settings, self.data)
        self.pages = 0
        self.charts: list[ChartPlacement] = []

    # --- loading ----------------------------------------------------------------

    def _select(self, engine: SeriesSource, machine: str) -> list:
        try:
            return engine.select(machine, start=self.start, end=self.end)[0]
        except SelectionError:
            if not (self.start or self.end):
                raise
        # Nothing in the period: say what the machine's data do cover (or
        # re-raise the plain error when the machine itself is unknown).
        series, _ = engine.select(machine)
        first = min(s.dates.min() for s in series).astype("datetime64[D]")
        last = max(s.dates.max() for s in series).astype("datetime64[D]")
        raise SelectionError(
            f"no measurements of {series[0].machine} between "
            f"{self.start or 'the beginning'} and {self.end or 'the end'}; its "
            f"data cover {first} to {last}: choose --start/--end in that range")

    # --- the document --------------------------------------------------------------

    @property
    def period_text(self) -> str:
        """"2025-01-01 to 2025-12-31": the dates the data actually cover."""
        return f"{self.covered[0]} to {self.covered[1]}"

    def default_path(self) -> Path:
        """<data_dir>/reports/<machine>_<start>_<end>.pdf."""
        start = self.start or self.covered[0]
        end = self.end or self.covered[1]
        name = f"{_safe_name(self.machine)}_{start}_{end}.pdf"
        return self.settings.data_dir / "reports" / name

    def write(self, path: str | Path | None = None) -> Path:
        """Write the PDF and return its path (default :meth:`default_path`)."""
        path = Path(path) if path is not None else self.default_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.charts = []
        pdf = ReportPDF(
            header_text=f"Linac QA report · {self.machine} · {self.period_text}",
            footer_text=(f"linac-qa-agent {self.version} · generated "
                         f"{self.generated:%Y-%m-%d %H:%M}"),
        )
        pdf.set_title(f"QA report {self.machine} {self.period_text}")
        pdf.set_author(f"linac-qa-agent {self.version}")
        pdf.set_creator(f"linac-qa-agent {self.version}")
        with tempfile.TemporaryDirectory(prefix="qa-report-") as tmp:
            self._title_page(pdf)
            for n, result in enumerate(self.results, start=1):
                self._series_section(pdf, n, result, Path(tmp))
            self._sources(pdf)
            self._sign_off(pdf)
            pdf.output(str(path))
        self.pages = pdf.pages_count
        return path

    def summary(self, path: Path) -> dict:
        """The ``qa-agent report --json`` document for a written report."""
        return {"path": str(path), "pages": self.pages,
                "series": [r.to_contract() for r in self.results]}

    # --- sections ------------------------------------------------------------------

    def _title_page(self, pdf: ReportPDF) -> None:
        # why long: fpdf2 layout of one page, drawn in reading order.
        pdf.add_page()
        pdf.font(20, "B")
        pdf.cell(0, 11, "Linac QA report", new_x="LMARGIN", new_y="NEXT")
        pdf.font(13)
        model = f" ({self.model})" if self.model else ""
        pdf.cell(0, 8, f"{self.machine}{model}, {self.period_text}",
                 new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        counts = {s: sum(r.status == s for r in self.results)
                  for s in ("action", "watch", "ok")}
        verdicts = ", ".join(f"{counts[s]} {s}" for s in counts if counts[s])
        drifting = sum(r.drift.detected for r in self.results)
        machine_class = self.machine_class + (
            " (not in the machine registry: default class assumed)"
            if self.class_assumed else " (machine registry)")
        requested = (f"{self.start or 'first measurement'} to "
                     f"{self.end or 'last measurement'}")
        rows = [
            ("Machine", self.machine),
            ("Model", self.model or "not in the machine registry"),
            ("Machine class", machine_class),
            ("Period covered", f"{self.period_text} (dates of the first and "
                               "last measurement)"),
            ("Period requested", requested),
            ("Series", f"{len(self.results)}: {verdicts}; drift detected in "
                       f"{drifting}"),
            ("Generated", f"{self.generated:%Y-%m-%d %H:%M %Z}".strip()),
            ("Software", f"linac-qa-agent {self.version}"),
            ("Data source", self.source),
            ("Rows not used", f"{len(self.errors)} (listed at the end)"
             if self.errors else "none"),
        ]
        pdf.key_value_table(rows)
        pdf.ln(4)
        pdf.heading("Summary (worst first)")
        headings = ("Test", "Energy", "n", "Last value", "Tolerance", "Status",
                    "Drift")
        body = []
        for r in self.results:
            last = presentation.quantity(r.latest_value, r.unit)
            drift = ("no" if not r.drift.detected
                     else f"yes, {presentation.drift_since(r.drift)}")
            body.append(((r.test, r.energy or "–", str(r.n), last,
                          presentation.limit_text(r), r.status.upper(), drift),
                         r.status))
        pdf.font(8.5)
        with pdf.table(col_widths=(44, 16, 12, 24, 22, 18, 44),
                       width=CONTENT_WIDTH, text_align=("LEFT", "LEFT", "RIGHT",
                                                        "RIGHT", "RIGHT", "CENTER",
                                                        "LEFT"),
                       headings_style=pdf.heading_face(), line_height=4.6,
                       padding=(0.8, 1.2), borders_layout="HORIZONTAL_LINES",
                       ) as table:
            table.row(headings)
            for cells, status in body:
                row = table.row()
                for i, text in enumerate(cells):
                    style = pdf.status_face(status) if i == 5 else None
                    row.cell(text, style=style)
        # The series sections start on a page of their own.
        pdf.add_page()

    def _series_section(self, pdf: ReportPDF, n: int, r: SeriesResult,
                        tmp: Path) -> None:
        pdf.keep_space(SECTION_MIN_HEIGHT)
        pdf.font(12, "B")
        pdf.set_fill_color(*STATUS_FILL[r.status])
        pdf.cell(0, 8, f" {n}. {r.label}: {r.status.upper()}", fill=True,
                 new_x="LMARGIN", new_y="NEXT")
        pdf.set_fill_color(255, 255, 255)
        pdf.font(9.5)
        pdf.paragraph(presentation.verdict_paragraph(r), 5)
        pdf.ln(1)
        png = control_chart_png(r, tmp / f"chart_{n}.png", dpi=CHART_DPI)
        x, y = pdf.l_margin, pdf.get_y()
        pdf.image(str(png), x=x, y=y, w=CHART_WIDTH, h=CHART_HEIGHT,
                  alt_text=f"Control chart of {r.label}")
        self.charts.append(ChartPlacement(r.label, pdf.page_no(), x, y,
                                          CHART_WIDTH, CHART_HEIGHT))
        pdf.set_y(y + CHART_HEIGHT + 1.5)
        pdf.numbers_table(presentation.number_rows(r))
        if r.drift.evidence:
            pdf.ln(1)
            pdf.font(8)
            pdf.paragraph(f"Drift evidence: {r.drift.evidence}", 4)
        pdf.ln(2)
        self._tolerance_rows(pdf, r)
        pdf.ln(2)
        self._signals(pdf, r)
        if r.notes:
            pdf.ln(1)
            pdf.font(8)
            for note in r.notes:
                pdf.paragraph(f"Note: {note}", 4)
        pdf.ln(5)

    def _tolerance_rows(self, pdf: ReportPDF, r: SeriesResult) -> None:
        pdf.keep_space(22)
        pdf.font(9.5, "B")
        pdf.cell(0, 5.5, "Tolerance that applied", new_x="LMARGIN", new_y="NEXT")
        t = r.tolerance
        if not t:
            pdf.font(8.5)
            pdf.paragraph(f"No tolerance row covers {r.test} in {r.unit}: "
                          "only the control chart was checked.", 4.5)
            return
        action = f"±{t.action_limit:g}" if t.action_limit is not None else "–"
        machine_class = t.machine_class + (" (assumed)"
                                           if t.machine_class_assumed else "")
        pdf.font(7.5)
        with pdf.table(col_widths=(44, 32, 20, 17, 18, 12, 37),
                       width=CONTENT_WIDTH, text_align="LEFT",
                       headings_style=pdf.heading_face(), line_height=4.2,
                       padding=(0.8, 1.2), borders_layout="HORIZONTAL_LINES",
                       ) as table:
            table.row(("Row", "Description", "Frequency", "Class", "Tolerance",
                       "Action", "Source"))
            table.row((t.id, t.description, t.frequency, machine_class,
                       presentation.limit_text(r), action, t.source))

    def _signals(self, pdf: ReportPDF, r: SeriesResult) -> None:
        pdf.keep_space(20)
        pdf.font(9.5, "B")
        pdf.cell(0, 5.5, f"Signals ({len(r.signals)})", new_x="LMARGIN",
                 new_y="NEXT")
        if not r.signals:
            pdf.font(8.5)
            pdf.cell(0, 4.5, "No control-chart rule fired.", new_x="LMARGIN",
                     new_y="NEXT")
            return
        grouped: dict[str, list] = {}
        for sig in r.signals:
            grouped.setdefault(sig.rule, []).append(sig)
        pdf.font(7.5)
        with pdf.table(col_widths=(14, 50, 12, 104), width=CONTENT_WIDTH,
                       text_align=("LEFT", "LEFT", "RIGHT", "LEFT"),
                       headings_style=pdf.heading_face(), line_height=3.8,
                       padding=(0.8, 1.2), borders_layout="HORIZONTAL_LINES",
                       ) as table:
            table.row(("Rule", "Meaning", "Count", "Dates"))
            for rule, sigs in grouped.items():
                table.row((rule, sigs[0].description, str(len(sigs)),
                           ", ".join(s.date for s in sigs)))

    def _sources(self, pdf: ReportPDF) -> None:
        pdf.keep_space(60)
        pdf.heading("Sources")
        pdf.subheading("Tolerance tables")
        documents: dict[str, dict] = {}
        for r in self.results:
            if not r.tolerance:
                continue
            row = next(x for x in self.tables.rows if x.id == r.tolerance.id)
            doc = documents.setdefault(row.document or row.table, {
                "citation": row.citation, "rows": {}, "institutional": False})
            doc["rows"][row.id] = row.table
            doc["institutional"] |= row.institutional
        pdf.font(8.5)
        if not documents:
            pdf.paragraph("No tolerance row applied to these series.", 4.5)
        for name, doc in documents.items():
            pdf.font(9, "B")
            label = name + (" (institutional)" if doc["institutional"] else "")
            pdf.paragraph(label, 4.8)
            pdf.font(8.5)
            if doc["citation"]:
                pdf.paragraph(doc["citation"], 4.3)
            used = "; ".join(f"{rid} ({table})" if table else rid
                             for rid, table in doc["rows"].items())
            pdf.paragraph(f"Rows used: {used}", 4.3)
            pdf.ln(1.5)
        pdf.ln(2)
        pdf.keep_space(40)
        pdf.subheading("Statistical methods")
        pdf.font(8.5)
        for line in self._methods():
            pdf.paragraph(f"• {line}", 4.3)
            pdf.ln(0.8)
        if self.errors:
            pdf.ln(2)
            pdf.subheading(f"Rows not used ({len(self.errors)})")
            pdf.font(8)
            for e in self.errors[:MAX_ERRORS_LISTED]:
                pdf.paragraph(str(e), 4)
            if len(self.errors) > MAX_ERRORS_LISTED:
                pdf.paragraph(f"... and {len(self.errors) - MAX_ERRORS_LISTED}"
                              " more (qa-agent analyze --json lists them all)", 4)

    def _methods(self) -> list[str]:
        o = self.options
        ruleset = o.ruleset
        rule_sets = ("nelson", "western_electric") if ruleset == "both" else (
            ruleset,)
        rules = "; ".join(f"{k}: {v}" for name in rule_sets
                          for k, v in RULES.get(name, {}).items())
        return [
            "Individuals and moving-range (I-MR) chart per segment between "
            "baseline resets: centre line and 3-sigma control limits from the "
            f"first {o.baseline_points} points of the segment (sigma = mean "
            f"moving range / 1.128); at least {o.min_baseline_points} "
            "baseline points are needed for limits.",
            f"Run rules ({ruleset.replace('_', ' ')}): {rules}.",
            f"EWMA chart, lambda = {o.ewma_lambda:g}, L = {o.ewma_L:g}; "
            f"tabular CUSUM, k = {o.cusum_k:g}, h = {o.cusum_h:g} "
            "(in sigma units).",
            "Drift verdict: self-starting two-sided CUSUM (Hawkins 1987), "
            f"k = {o.drift_k:g}, h = {o.drift_h:g}, "
            f"over the last {o.drift_window} measurements after "
            "the baseline; a single run rule firing is evidence, not a drift.",
            "Trend: Theil-Sen slope with its 95% confidence interval and the "
            "Mann-Kendall test; the projected crossing extends a significant "
            "trend to the tolerance and action levels.",
            "Capability: Cp, Cpk and Cpm of the baseline's centre and sigma "
            "against the tolerance that applied.",
            "Status: ACTION when the latest measurement is beyond tolerance, "
            "WATCH when it is at the inspection level, outside the control "
            "limits or the series drifts, otherwise OK.",
        ]

    def _sign_off(self, pdf: ReportPDF) -> None:
        pdf.keep_space(78)
        pdf.ln(4)
        pdf.heading("Review and sign-off")
        pdf.font(8.5)
        pdf.paragraph(QA_RECORD_NOTE, 4.5)
        pdf.ln(8)
        for label in ("Reviewed by", "Signature", "Date"):
            pdf.font(10)
            y = pdf.get_y()
            pdf.cell(32, 7, label)
            pdf.set_draw_color(60, 60, 60)
            pdf.line(pdf.l_margin + 34, y + 6, pdf.l_margin + 130, y + 6)
            pdf.set_y(y + 14)
        pdf.font(8.5)
        pdf.paragraph("Comments:", 4.5)
        y = pdf.get_y() + 1
        pdf.rect(pdf.l_margin, y, CONTENT_WIDTH, 18)
        pdf.set_y(y + 20)


__all__ = ["ChartPlacement", "QAReport", "ReportPDF", "software_version"]
