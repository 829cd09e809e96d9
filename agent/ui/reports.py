"""The Reports tab: a PDF QA report for a machine and period.

The report itself is written by ``QAEngine.report`` (``agent.qa.report``,
imported when a report is asked for: fpdf2 and matplotlib load only then).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from agent.errors import QAAgentError, UserError
from agent.ui.common import AppContext


class ReportError(UserError):
    """The report cannot be made; the message says why."""


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date(value: str | None, name: str) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if not _DATE.match(value):
        raise ReportError(f"{name} date '{value}': write it as YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ReportError(f"{name} date '{value}' does not exist") from None
    return value


def report_path(app: AppContext, machine: str, start: str | None,
                end: str | None) -> Path:
    """Where the report of a machine and period is written."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", machine).strip("_") or "machine"
    period = f"{start or 'start'}_{end or 'latest'}"
    return app.settings.data_dir / "reports" / f"qa-report_{safe}_{period}.pdf"


def make_report(app: AppContext, machine: str | None, start: str | None = None,
                end: str | None = None) -> Path:
    """Write the PDF QA report of one machine and period.

    Parameters
    ----------
    app : AppContext
    machine : str
    start, end : str, optional
        ``YYYY-MM-DD``; default the whole record.

    Returns
    -------
    Path
        The PDF.

    Raises
    ------
    ReportError
        No machine or a malformed date.
    """
    if not machine:
        raise ReportError("choose a machine first")
    first, last = _date(start, "start"), _date(end, "end")
    if first and last and first > last:
        raise ReportError(f"the start date {first} is after the end date {last}")
    out = report_path(app, machine, first, last)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(app.engine.report(machine, first, last).write(out))


def machine_choices(app: AppContext) -> list[str]:
    """Machines with data on hand."""
    try:
        result = app.engine.data_on_hand()
    except QAAgentError:  # nothing on hand, or the store cannot be read
        return []
    return [m["machine"] for m in result["machines"]]
