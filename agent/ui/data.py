"""The Data tab: import with a preview, what is on hand, the fleet table, the
image sets analysed with pylinac.

An upload is read first (``read_measurements``) and its report shown: rows
accepted, rows rejected with their line and reason. Nothing is stored until
the user confirms; then the same result goes to
``MeasurementStore.import_result``, as ``qa-agent import`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.errors import QAAgentError
from agent.qa import presentation
from agent.qa.imaging.records import image_sets
from agent.qa.importers import ImportResult, InputError, read_measurements
from agent.qa.importers.mapping import ColumnMapping, proposal_for
from agent.qa.store import ImportReport, file_sha256
from agent.ui.common import DATA_SUFFIXES, AppContext, check_upload, file_name

ERROR_HEADERS = ["file", "line", "column", "reason"]
ON_HAND_HEADERS = ["machine", "series", "measurements", "first", "last",
                   "energies", "tests"]
FLEET_HEADERS = ["machine", "test", "energy", "status", "drift", "n", "SPC signals",
                 "out of tolerance"]
IMAGE_SET_HEADERS = ["machine", "analysis", "date", "images", "measurements",
                     "sha256", "pylinac"]


@dataclass
class ImportPreview:
    """A file read but not yet stored."""

    path: Path
    digest: str
    result: ImportResult

    def summary(self) -> str:
        """Rows accepted and rejected, in words."""
        r = self.result
        rejected = r.rows_rejected
        text = (f"**{file_name(self.path)}** ({r.format} format): "
                f"{r.rows_read} data rows read, **{len(r.frame)} measurements "
                f"accepted**, **{rejected} row{'' if rejected == 1 else 's'} "
                "rejected**")
        if len(r.events):
            text += f", {len(r.events)} events"
        machines = sorted(r.frame["machine"].unique()) if len(r.frame) else []
        if machines:
            text += f". Machines: {', '.join(map(str, machines))}"
        return text + ". Nothing is stored until you press *Import*."

    def error_rows(self) -> list[list[Any]]:
        """Rejected rows: file, line, column, reason."""
        return [[file_name(e.file), e.line, e.column or "", e.reason]
                for e in self.result.errors]


def preview_import(app: AppContext, path: str | Path | None,
                   machine: str | None = None,
                   mapping: str | None = None) -> ImportPreview:
    """Read an uploaded data file without storing anything.

    Parameters
    ----------
    app : AppContext
    path : str or Path
        The uploaded file (CSV, XLSX, Daily QA 3 export, a zipped MPC tree).
    machine : str, optional
        Machine name for a wide file without a machine column.
    mapping : str, optional
        A confirmed column mapping, ``ROLE=COLUMN`` per line (what
        :func:`proposed_mapping` offers for an export the readers do not know).

    Raises
    ------
    UploadError
        Wrong type or too large.
    InputError
        The file as a whole cannot be used (the message says what to fix).
    """
    checked = check_upload(path, DATA_SUFFIXES, app.settings.max_upload_mb)
    pairs = [p.strip() for p in (mapping or "").splitlines() if p.strip()]
    options = replace(app.engine.read_options(),
                      mapping=ColumnMapping.parse(pairs) if pairs else None)
    result = read_measurements(checked, machine=(machine or "").strip() or None,
                               options=options)
    result.file = file_name(checked)
    return ImportPreview(checked, file_sha256(checked), result)


def proposed_mapping(path: str | Path | None) -> str:
    """The proposed mapping of a file the readers refused, ``ROLE=COLUMN`` per
    line for the user to check and confirm ("" when none can be proposed)."""
    proposal = proposal_for(Path(path)) if path else None
    if proposal is None:
        return ""
    return "\n".join(f"{r}={c}" for r, c in proposal.mapping.columns.items())


def commit_import(app: AppContext, preview: ImportPreview) -> ImportReport:
    """Store a previewed file (duplicates of stored values are skipped)."""
    return app.engine.import_result(preview.result, preview.digest)


def on_hand_rows(app: AppContext) -> list[list[Any]]:
    """One row per machine: its tests, series, measurements, date range.

    From ``QAEngine.data_on_hand``, as ``qa-agent ask "what data do we
    have?"`` uses.
    """
    try:
        result = app.engine.data_on_hand()
    except QAAgentError:  # an empty or unreadable store: nothing on hand
        return []
    rows = []
    for m in result["machines"]:
        series = m["series"]
        tests = sorted({s["test"] for s in series})
        energies = sorted({s["energy"] for s in series if s["energy"]})
        firsts = [s["first"] for s in series if s["first"]]
        lasts = [s["last"] for s in series if s["last"]]
        rows.append([m["machine"], len(series), sum(s["n"] for s in series),
                     min(firsts, default=""), max(lasts, default=""),
                     ", ".join(energies), ", ".join(tests)])
    return rows


def fleet_rows(app: AppContext) -> list[list[Any]]:
    """Every series, worst first (``QAEngine.fleet``)."""
    try:
        run = app.engine.fleet()
    except QAAgentError:  # nothing on hand
        return []
    return [[r.machine, r.test, r.energy or "", r.status,
             presentation.drift_since(r.drift), r.n, len(r.signals),
             len(r.out_of_tolerance)] for r in run.results]


def image_set_rows(app: AppContext) -> list[list[Any]]:
    """One row per stored image set, newest first: machine, analysis, date,
    images, measurements, the images' sha256 (first 12 digits) and the pylinac
    version, from the provenance its measurements carry."""
    try:
        sets = image_sets(app.store())
    except QAAgentError:  # an unreadable store: nothing to list
        return []
    return [[s["machine"], s["kind"], s["date"], s["files"], s["measurements"],
             s["sha256"][:12], s["pylinac_version"]] for s in sets]


def series_chart(app: AppContext, machine: str, test: str,
                 energy: str | None) -> tuple[Any, str]:
    """The control chart and verdict of one series (``QAEngine.analyse``).

    Returns
    -------
    tuple of (plotly Figure or None, str)
        The figure and a Markdown summary of the verdict and numbers, worded
        as the chat words it (:func:`agent.qa.presentation.analysis_answer`).
    """
    from agent.qa.charts import control_chart

    try:
        run = app.engine.analyse(machine, test, energy or None)
    except QAAgentError as exc:  # SelectionError and the like: say it
        return None, f"Could not analyse {machine} {test}: {exc}"
    text = presentation.analysis_answer(run.results)
    return (control_chart(run.results[0]) if run.results else None), text


def arrivals_markdown(app: AppContext) -> str | None:
    """Import what arrived in the watched data folders; say it (None: nothing).

    Each file is imported through the engine and its report kept in
    ``<data_dir>/imports/`` (:class:`agent.data_watch.DataWatch`).
    """
    if app.data_watch is None:
        return None
    arrived = app.data_watch.scan()
    if not arrived:
        return None
    lines = [f"- {'⚠ ' if a.error else ''}{a.summary()}" for a in arrived]
    return "**New data from the watched folders**\n" + "\n".join(lines)


__all__ = [
    "ImportPreview",
    "InputError",
    "arrivals_markdown",
    "commit_import",
    "fleet_rows",
    "image_set_rows",
    "on_hand_rows",
    "preview_import",
    "proposed_mapping",
    "series_chart",
]
