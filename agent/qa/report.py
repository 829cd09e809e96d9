"""PDF QA reports: one machine, one period, every series with its evidence.

In the style of pylinac: ``QAReport(settings, machine, start, end, data)``
loads and analyses the machine's series (the same selection and analysis path
as ``qa-agent analyze``), then ``write(path)`` produces the PDF (fpdf2):

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
:func:`write_report`.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from fpdf import FPDF
from fpdf.fonts import FontFace

from agent.config import PROJECT_ROOT, Settings
from agent.qa import analysis as analysis_module
from agent.qa.analysis import SeriesAnalysis, SeriesResult, sort_worst_first
from agent.qa.importers import RowError
from agent.qa.selection import (
    SelectionError,
    analysis_options,
    check_dates,
    load_tables,
    select_series,
)
from agent.qa.spc import RULES
from agent.qa.tolerances import ToleranceTables

#: Page geometry (A4, millimetres).
PAGE_MARGIN = 15.0
CONTENT_WIDTH = 210.0 - 2 * PAGE_MARGIN
BOTTOM_MARGIN = 18.0
#: Size of a control chart on the page (the PNG is 9 x 3.6 inches).
CHART_WIDTH = CONTENT_WIDTH
CHART_HEIGHT = CHART_WIDTH * 3.6 / 9.0
CHART_DPI = 150
#: Space a series section needs before its tables (heading, verdict, chart,
#: numbers); a section starts on a new page when less is left.
SECTION_MIN_HEIGHT = 14.0 + CHART_HEIGHT + 52.0

STATUS_FILL = {
    "action": (244, 199, 195),
    "watch": (255, 229, 153),
    "ok": (204, 235, 197),
}
HEADING_FILL = (228, 234, 242)
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


def _num(value: float | None, digits: int = 3) -> str:
    """A number for a table: a few significant digits, or an en dash."""
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def _value(value: float | None, unit: str) -> str:
    """A measured value with its unit ("0 %", never "-0 %")."""
    if value is None:
        return "–"
    return f"{value + 0.0:g} {unit}".strip()


def _p_value(p: float | None) -> str:
    if p is None:
        return "p not available"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def _tolerance_text(tol: dict | None) -> str:
    """"±3 %" for a deviation row, "≥ 95 %" for a minimum, "none" without a row."""
    if not tol or tol.get("limit") is None:
        return "none"
    unit = tol.get("unit") or ""
    if tol.get("kind") == "minimum":
        return f"≥ {tol['limit']:g} {unit}".strip()
    return f"±{tol['limit']:g} {unit}".strip()


def _drift_text(r: SeriesResult) -> str:
    d = r.drift
    if not d.detected:
        return "no"
    way = {1: "up", -1: "down"}.get(d.direction, "")
    return f"yes, {way} since {d.onset}" if way else f"yes, since {d.onset}"


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
    settings : Settings
        Application settings (data directory, store, tolerance tables, SPC
        defaults).
    machine : str
        The machine, spelled forgivingly ("truebeam 2", "TB2").
    start, end : str, optional
        First and last date (YYYY-MM-DD, both included); default: all data.
    data : Path, optional
        A CSV/XLSX file to report on instead of the measurement store.

    Raises
    ------
    SelectionError
        When the machine is unknown, the dates are malformed or no measurement
        of the machine falls in the period; the message says what is on hand.
    """

    def __init__(
        self,
        settings: Settings,
        machine: str,
        start: str | None = None,
        end: str | None = None,
        data: Path | None = None,
    ) -> None:
        check_dates(start=start, end=end)
        if start and end and np.datetime64(start, "D") > np.datetime64(end, "D"):
            raise SelectionError(f"--start {start} is after --end {end}; swap them")
        if not machine or not machine.strip():
            raise SelectionError("name the machine to report on (--machine NAME)")
        self.settings = settings
        self.start = start
        self.end = end
        self.data = Path(data) if data is not None else None
        self.tables: ToleranceTables = load_tables(settings)
        self.options = analysis_options(settings)
        series, self.errors = self._select(machine)
        self.machine = series[0].machine
        analyses = [SeriesAnalysis(s, self.tables).analyze(**self.options)
                    for s in series]
        by_result = {id(a.results_data()): a for a in analyses}
        self.results: list[SeriesResult] = sort_worst_first(
            [a.results_data() for a in analyses])
        self.analyses: list[SeriesAnalysis] = [by_result[id(r)]
                                               for r in self.results]
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

    def _select(self, machine: str) -> tuple[list, list[RowError]]:
        try:
            return select_series(self.settings, self.data, machine, None, None,
                                 self.start, self.end)
        except SelectionError:
            if not (self.start or self.end):
                raise
        # Nothing in the period: say what the machine's data do cover (or
        # re-raise the plain error when the machine itself is unknown).
        series, _ = select_series(self.settings, self.data, machine, None, None,
                                  None, None)
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
            for n, (result, analysis) in enumerate(
                    zip(self.results, self.analyses, strict=True), start=1):
                self._series_section(pdf, n, result, analysis, Path(tmp))
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
            last = _value(r.latest_value, r.unit)
            body.append(((r.test, r.energy or "–", str(r.n), last,
                          _tolerance_text(r.tolerance), r.status.upper(),
                          _drift_text(r)), r.status))
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
                        analysis: SeriesAnalysis, tmp: Path) -> None:
        pdf.keep_space(SECTION_MIN_HEIGHT)
        pdf.font(12, "B")
        pdf.set_fill_color(*STATUS_FILL[r.status])
        pdf.cell(0, 8, f" {n}. {r.label}: {r.status.upper()}", fill=True,
                 new_x="LMARGIN", new_y="NEXT")
        pdf.set_fill_color(255, 255, 255)
        pdf.font(9.5)
        pdf.paragraph(f"Verdict: {r.status.upper()} ({r.status_reason}).", 5)
        pdf.ln(1)
        from agent.qa.charts import control_chart_png

        png = control_chart_png(analysis, tmp / f"chart_{n}.png", dpi=CHART_DPI)
        x, y = pdf.l_margin, pdf.get_y()
        pdf.image(str(png), x=x, y=y, w=CHART_WIDTH, h=CHART_HEIGHT,
                  alt_text=f"Control chart of {r.label}")
        self.charts.append(ChartPlacement(r.label, pdf.page_no(), x, y,
                                          CHART_WIDTH, CHART_HEIGHT))
        pdf.set_y(y + CHART_HEIGHT + 1.5)
        pdf.numbers_table(self._numbers(r))
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

    def _numbers(self, r: SeriesResult) -> list[tuple[str, str]]:
        unit = r.unit
        level = {"ok": "within tolerance", "inspection": "inspection level",
                 "action": "beyond tolerance"}.get(r.latest_level, r.latest_level)
        last = (f"{_value(r.latest_value, unit)} on {r.last_date} ({level})"
                if r.latest_value is not None else "–")
        s, b = r.spc, r.baseline
        rows = [("Measurements", f"{r.n}, {r.first_date} to {r.last_date}"),
                ("Last value", last)]
        if s:
            rows += [
                ("Centre line", f"{_num(s['center'], 4)} {unit}"),
                ("Control limits", f"{_num(s['lcl'], 4)} to {_num(s['ucl'], 4)} "
                                   f"{unit} (sigma {_num(s['sigma'])})"),
                ("Baseline", f"{b['n']} points, {b['start']} to {b['end']}"),
            ]
        else:
            rows.append(("Control limits", "none: too few baseline points"))
        cap = r.capability
        if cap and cap.get("cpk") is not None:
            rows.append(("Capability", f"Cpk {_num(cap['cpk'])}, Cp "
                                       f"{_num(cap['cp'])}, Cpm {_num(cap['cpm'])}"))
        rows.append(("Out of tolerance", f"{len(r.out_of_tolerance)} measurement(s)"
                     + (f", last {r.out_of_tolerance[-1]}" if r.out_of_tolerance
                        else "")))
        d = r.drift
        rows.append(("Drift", _drift_text(r)))
        if d.slope_per_day is not None:
            ci = (f" (95% CI {_num(d.slope_ci[0])} to {_num(d.slope_ci[1])})"
                  if d.slope_ci else "")
            rows.append(("Trend", f"{_num(d.slope_per_day)} {unit}/day{ci}, "
                                  f"{_p_value(d.trend_p_value)}"))
        if d.projected_crossing or d.projected_action_crossing:
            text = f"tolerance {d.projected_crossing or '–'}"
            if d.projected_action_crossing:
                text += f", action {d.projected_action_crossing}"
            rows.append(("Projected crossing", text))
        rows.append(("Signals", f"{len(r.signals)}" + (
            f", latest {r.signals[-1].date} ({r.signals[-1].rule})"
            if r.signals else "")))
        return rows

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
        action = (f"±{t['action_limit']:g}" if t["action_limit"] is not None
                  else "–")
        machine_class = t["machine_class"] + (" (assumed)"
                                              if t["machine_class_assumed"] else "")
        pdf.font(7.5)
        with pdf.table(col_widths=(44, 32, 20, 17, 18, 12, 37),
                       width=CONTENT_WIDTH, text_align="LEFT",
                       headings_style=pdf.heading_face(), line_height=4.2,
                       padding=(0.8, 1.2), borders_layout="HORIZONTAL_LINES",
                       ) as table:
            table.row(("Row", "Description", "Frequency", "Class", "Tolerance",
                       "Action", "Source"))
            table.row((t["id"], t["description"], t["frequency"], machine_class,
                       _tolerance_text(t), action, t["source"]))

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
            row = next(x for x in self.tables.rows if x.id == r.tolerance["id"])
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
        ruleset = o["ruleset"]
        rule_sets = ("nelson", "western_electric") if ruleset == "both" else (
            ruleset,)
        rules = "; ".join(f"{k}: {v}" for name in rule_sets
                          for k, v in RULES.get(name, {}).items())
        return [
            "Individuals and moving-range (I-MR) chart per segment between "
            "baseline resets: centre line and 3-sigma control limits from the "
            f"first {o['baseline_points']} points of the segment (sigma = mean "
            f"moving range / 1.128); at least {o['min_baseline_points']} "
            "baseline points are needed for limits.",
            f"Run rules ({ruleset.replace('_', ' ')}): {rules}.",
            f"EWMA chart, lambda = {o['ewma_lambda']:g}, L = {o['ewma_L']:g}; "
            f"tabular CUSUM, k = {o['cusum_k']:g}, h = {o['cusum_h']:g} "
            "(in sigma units).",
            "Drift verdict: self-starting two-sided CUSUM (Hawkins 1987), "
            f"k = {analysis_module.DRIFT_K:g}, h = {analysis_module.DRIFT_H:g}, "
            f"over the last {analysis_module.DRIFT_WINDOW} measurements after "
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


class ReportPDF(FPDF):
    """An A4 fpdf2 document with the report's fonts, header, footer and tables.

    Parameters
    ----------
    header_text : str
        Shown at the top of every page but the first.
    footer_text : str
        Shown at the bottom left of every page, beside "page N of M".
    """

    def __init__(self, header_text: str, footer_text: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.header_text = header_text
        self.footer_text = footer_text
        self.set_margins(PAGE_MARGIN, PAGE_MARGIN, PAGE_MARGIN)
        self.set_auto_page_break(True, margin=BOTTOM_MARGIN)
        self.family_name = _register_fonts(self)

    def header(self) -> None:
        """Machine and period on every page after the first."""
        if self.page_no() == 1:
            return
        self.font(8)
        self.set_text_color(110, 110, 110)
        self.cell(0, 5, self.header_text, new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(180, 180, 180)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.set_text_color(0, 0, 0)
        self.ln(3)

    def footer(self) -> None:
        """Software, date of the report and "page N of M"."""
        self.set_y(-12)
        self.font(8)
        self.set_text_color(110, 110, 110)
        self.cell(CONTENT_WIDTH / 2, 5, self.footer_text)
        self.cell(CONTENT_WIDTH / 2, 5, f"page {self.page_no()} of {{nb}}",
                  align="R")
        self.set_text_color(0, 0, 0)

    def font(self, size: float, style: str = "") -> None:
        """Set the report's font family in a size and style."""
        self.set_font(self.family_name, style, size)

    def paragraph(self, text: str, height: float) -> None:
        """Left-aligned wrapped text across the page (``height``: line height)."""
        self.multi_cell(0, height, text, align="L", new_x="LMARGIN", new_y="NEXT")

    def heading(self, text: str) -> None:
        """A section heading."""
        self.font(13, "B")
        self.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def subheading(self, text: str) -> None:
        """A heading within a section."""
        self.font(10.5, "B")
        self.cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")

    @staticmethod
    def heading_face() -> FontFace:
        """Style of table headings."""
        return FontFace(emphasis="BOLD", fill_color=HEADING_FILL)

    @staticmethod
    def status_face(status: str) -> FontFace:
        """Style of a status cell: bold on the status colour."""
        return FontFace(emphasis="BOLD", fill_color=STATUS_FILL[status])

    def keep_space(self, needed: float) -> None:
        """A new page unless ``needed`` millimetres are left on this one."""
        if self.get_y() + needed > self.h - BOTTOM_MARGIN:
            self.add_page()

    def key_value_table(self, rows: Sequence[tuple[str, str]]) -> None:
        """Label/value rows across the page."""
        self.font(9.5)
        bold = FontFace(emphasis="BOLD")
        with self.table(col_widths=(40, CONTENT_WIDTH - 40), width=CONTENT_WIDTH,
                        text_align="LEFT", first_row_as_headings=False,
                        line_height=5, padding=(1, 1.5),
                        borders_layout="HORIZONTAL_LINES") as table:
            for key, value in rows:
                row = table.row()
                row.cell(key, style=bold)
                row.cell(value)

    def numbers_table(self, rows: Sequence[tuple[str, str]]) -> None:
        """Label/value pairs in two columns of pairs."""
        self.font(8.5)
        bold = FontFace(emphasis="BOLD")
        half = (len(rows) + 1) // 2
        left, right = rows[:half], rows[half:]
        with self.table(col_widths=(30, 60, 30, 60), width=CONTENT_WIDTH,
                        text_align="LEFT", first_row_as_headings=False,
                        line_height=4.3, padding=(0.7, 1.2),
                        borders_layout="HORIZONTAL_LINES") as table:
            for i, (key, value) in enumerate(left):
                row = table.row()
                row.cell(key, style=bold)
                row.cell(value)
                other = right[i] if i < len(right) else ("", "")
                row.cell(other[0], style=bold)
                row.cell(other[1])


def _register_fonts(pdf: FPDF) -> str:
    """DejaVu Sans from matplotlib's fonts (Unicode), else the core Helvetica."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    faces = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf",
             "I": "DejaVuSans-Oblique.ttf", "BI": "DejaVuSans-BoldOblique.ttf"}
    if all((folder / name).is_file() for name in faces.values()):
        for style, name in faces.items():
            pdf.add_font("DejaVu", style, str(folder / name))
        return "DejaVu"
    return "helvetica"


def write_report(
    settings: Settings,
    machine: str,
    start: str | None = None,
    end: str | None = None,
    out: str | Path | None = None,
    data: Path | None = None,
) -> Path:
    """Write the PDF QA report of a machine and period; return its path.

    Parameters
    ----------
    settings : Settings
        Application settings.
    machine : str
        The machine (forgiving spelling).
    start, end : str, optional
        First and last date, YYYY-MM-DD (both included); default: all data.
    out : str or Path, optional
        Where to write; default ``<data_dir>/reports/<machine>_<start>_<end>.pdf``.
    data : Path, optional
        A CSV/XLSX file instead of the measurement store.

    Raises
    ------
    SelectionError
        Unknown machine, malformed dates or no data in the period.
    """
    return QAReport(settings, machine, start, end, data).write(out)


__all__ = ["ChartPlacement", "QAReport", "ReportPDF", "software_version",
           "write_report"]
