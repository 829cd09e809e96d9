"""Watch folders for QA data, as the knowledge base watches documents.

A department points the assistant at the folders its systems export to (an
MPC TDS path, a Daily QA 3 export folder, a shared folder of workbooks:
setting ``data_watch_dirs``, or ``qa-agent import --watch DIR``). Each
:meth:`DataWatch.scan` imports what is new through the engine (files already
imported, by content hash, add nothing), keeps every import report as JSON in
``<data_dir>/imports/`` and returns what arrived, so the CLI prints it and the
app says it. A file that cannot be read is reported by name and reason and
the scan goes on; a file still being written (changed within the last
``settle`` seconds) waits for the next scan.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.errors import QAAgentError

#: Files the watch imports (the importers' table formats and zipped MPC trees).
DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".zip")
#: Folder names of an MPC check (a TDS tree is imported as one folder).
MPC_PREFIXES = ("NDS-WKS-", "HAL-TRT-")


@dataclass
class Arrival:
    """One file or tree the scan imported, or could not."""

    path: Path
    report: Any = None  # ImportReport
    error: str = ""

    def summary(self) -> str:
        """One line for people."""
        if self.error:
            return f"{self.path.name}: not imported: {self.error}"
        return self.report.summary()


@dataclass
class DataWatch:
    """Scans folders and imports new QA data through a ``QAEngine``.

    Parameters
    ----------
    engine : QAEngine
    folders : list of Path
    settle : float
        Seconds a file must be unchanged before it is read.
    """

    engine: Any
    folders: list[Path]
    settle: float = 2.0
    #: Files that could not be read, by (mtime, size): said once, again only
    #: when the file changes.
    _failed: dict[Path, tuple[float, int]] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        """Where the import reports are kept."""
        return self.engine.settings.data_dir / "imports"

    def candidates(self) -> list[Path]:
        """Data files and MPC trees in the folders, in a stable order."""
        out: list[Path] = []
        for folder in self.folders:
            if not folder.is_dir():
                continue
            if any(p.is_dir() and p.name.startswith(MPC_PREFIXES)
                   for p in folder.iterdir()):
                out.append(folder)  # an MPC TDS tree: imported check by check
            out.extend(p for p in sorted(folder.rglob("*"))
                       if p.is_file() and p.suffix.lower() in DATA_SUFFIXES
                       and not any(part.startswith(MPC_PREFIXES)
                                   for part in p.relative_to(folder).parts))
        return out

    def _settled(self, path: Path, now: float) -> bool:
        """Not modified for ``settle`` seconds (a file being written waits)."""
        return path.is_dir() or now - path.stat().st_mtime >= self.settle

    def scan(self) -> list[Arrival]:
        """Import what is new; return what arrived (already imported: left out)."""
        arrivals = []
        now = time.time()
        for path in self.candidates():
            if not self._settled(path, now):
                continue
            mark = (path.stat().st_mtime, path.stat().st_size)
            if self._failed.get(path) == mark:
                continue
            try:
                report = self.engine.import_file(path)
            except QAAgentError as exc:  # unreadable: say which and why, go on
                self._failed[path] = mark
                arrival = Arrival(path, error=str(exc))
            else:
                if report.already_imported or (
                        not report.added and not report.errors
                        and not report.conflicts and not report.events_added):
                    continue
                arrival = Arrival(path, report)
            self._keep(arrival)
            arrivals.append(arrival)
        return arrivals

    def _keep(self, arrival: Arrival) -> Path:
        """Write the arrival's report to the log folder."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = self.log_dir / f"{stamp}-{arrival.path.name}.json"
        document = ({"file": str(arrival.path), "error": arrival.error}
                    if arrival.error else arrival.report.as_dict())
        path.write_text(json.dumps(document, indent=1, default=str) + "\n",
                        encoding="utf-8")
        return path


__all__ = ["DATA_SUFFIXES", "Arrival", "DataWatch"]
