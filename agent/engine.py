"""The one engine the command line, the agent's tools and the app stand on.

:class:`QAEngine` is built once from :class:`~agent.config.Settings` (and,
for ``--data FILE``, a file to read instead of the store). It owns the
database engine, the tolerance tables, the protocol searcher and a series
cache with one :meth:`QAEngine.invalidate`, and offers the typed operations:
:meth:`select`, :meth:`analyse`, :meth:`period`, :meth:`compare`,
:meth:`fleet`, :meth:`data_on_hand`,
:meth:`tolerance`, :meth:`search`, :meth:`import_file`, :meth:`analyse_images`
(image QA through pylinac) and :meth:`report`.
Every face is a short adapter over these, so a request means the same series,
the same options and the same order everywhere (``docs/architecture.md``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import Settings
from agent.qa.comparison import Comparison, compare_groups
from agent.qa.fleet import analyze_each
from agent.qa.importers import ImportResult, ReadOptions, RowError, read_measurements
from agent.qa.options import AnalysisOptions
from agent.qa.periods import Period, PeriodSpec, resolve_period
from agent.qa.result import SeriesResult, worst_first
from agent.qa.selection import SelectionError, check_dates, clip_series
from agent.qa.store import ImportReport, MeasurementStore, SeriesData, series_from_frame
from agent.qa.tolerances import ToleranceTables, serial_registry
from agent.vocabulary import (
    TESTS,
    beam_type,
    canonical_energy,
    canonical_machine,
    canonical_test,
)

if TYPE_CHECKING:  # pragma: no cover
    from agent.qa.imaging import ImageRun
    from agent.qa.report import QAReport

NOTHING_ON_HAND = ("no measurements on hand: import a file with 'qa-agent import "
                   "FILE' or pass --data FILE")


@dataclass
class AnalysisRun:
    """Analysed series, worst first, and the input rows that were not used."""

    results: list[SeriesResult]
    errors: list[RowError] = field(default_factory=list)

    def document(self, details: bool = False, limit: int | None = None
                 ) -> dict[str, Any]:
        """The ``qa-agent analyze --json`` document (README, command line)."""
        shown = self.results if limit is None else self.results[:limit]
        return {"series": [r.to_contract(details) for r in shown],
                "errors": [e.as_dict() for e in self.errors]}


class QAEngine:
    """Settings, store, tables, searcher and caches, with typed operations.

    Parameters
    ----------
    settings : Settings
        Where the data, the store, the tables and the index are.
    data : Path, optional
        A CSV/XLSX file to work on instead of the measurement store.
    """

    def __init__(self, settings: Settings, data: Path | None = None) -> None:
        self.settings = settings
        self.data = Path(data) if data is not None else None
        self._store: MeasurementStore | None = None
        self._tables: ToleranceTables | None = None
        self._searcher: Any = None
        self._file: ImportResult | None = None
        self._file_series: list[SeriesData] | None = None
        self._cache: dict[tuple[Any, ...], list[SeriesData]] = {}
        # The app serves several sessions on threads: one loads, the others wait.
        self._lock = threading.RLock()

    # --- what it owns -----------------------------------------------------------

    @property
    def store(self) -> MeasurementStore:
        """The measurement store (one database engine for the engine's life)."""
        with self._lock:
            if self._store is None:
                self._store = MeasurementStore(self.settings.resolved_database_url)
            return self._store

    @property
    def tables(self) -> ToleranceTables:
        """Tolerance tables with the data directory's overrides (loaded once)."""
        with self._lock:
            if self._tables is None:
                self._tables = ToleranceTables.load(
                    self.settings.tolerance_dir, [self.settings.data_dir],
                    self.settings.default_machine_class)
            return self._tables

    @property
    def searcher(self) -> Any:
        """Hybrid protocol search (Chroma is opened once, when the passage
        cache is stale)."""
        with self._lock:
            if self._searcher is None:
                from agent.retrieval.search import open_searcher

                self._searcher = open_searcher(self.settings, progress=False)
            return self._searcher

    @searcher.setter
    def searcher(self, searcher: Any) -> None:
        self._searcher = searcher

    def read_options(self, machine: str | None = None) -> ReadOptions:
        """How files are read: the settings' zone and date order, and the
        machine registry's serials (an MPC folder names its linac by serial)."""
        serials = serial_registry(self.tables.machines.values())
        return self.settings.read_options(machine, serials=tuple(serials.items()))

    def options(self, **changes: Any) -> AnalysisOptions:
        """The configured SPC options, with this run's changes."""
        return AnalysisOptions.from_settings(self.settings, **changes)

    def invalidate(self, data: bool = True, knowledge: bool = True) -> None:
        """Drop what an import (``data``) or a re-index (``knowledge``) made stale."""
        with self._lock:
            if data:
                self._cache.clear()
                self._file = None
                self._file_series = None
            if knowledge and self._searcher is not None:
                self._searcher.invalidate()

    # --- series -----------------------------------------------------------------

    def all_series(self) -> tuple[list[SeriesData], list[RowError]]:
        """Every series on hand (file or store) and the file's unusable rows."""
        return self._load(None, None, None, None, None)

    def _load(self, machine: str | None, test: str | None, energy: str | None,
              start: str | None, end: str | None
              ) -> tuple[list[SeriesData], list[RowError]]:
        with self._lock:
            if self.data is not None:
                if self._file_series is None:
                    self._file = read_measurements(
                        self.data, options=self.read_options())
                    self._file_series = series_from_frame(self._file.frame,
                                                          self._file.events)
                chosen = [s for s in self._file_series
                          if (machine is None or s.machine == machine)
                          and (test is None or s.test == test)
                          and (energy is None or s.energy == energy)]
                if start or end:
                    chosen = [c for s in chosen
                              if (c := clip_series(s, start, end)).values.size]
                return chosen, list(self._file.errors)
            key = (machine, test, energy, start, end)
            if key not in self._cache:
                # Filters by machine, test and energy (and dates) run in SQL.
                self._cache[key] = self.store.load_series(
                    machine=machine, test=test, energy=energy, start=start,
                    end=end)
            return self._cache[key], []

    def machines(self) -> list[str]:
        """Machines with data on hand."""
        if self.data is not None:
            return sorted({s.machine for s in self.all_series()[0]})
        return self.store.machines()

    def select(self, machine: str | None = None, test: str | None = None,
               energy: str | None = None, start: str | None = None,
               end: str | None = None) -> tuple[list[SeriesData], list[RowError]]:
        """Series matching forgiving names and dates (both included).

        Raises
        ------
        SelectionError
            A name is not recognised, a date is malformed or nothing matches;
            the message lists what is on hand.
        """
        check_dates(start=start, end=end)
        want_test = canonical_test(test) if test else None
        if test and want_test is None:
            raise SelectionError(f"test '{test}' not recognised; known tests: "
                                 + ", ".join(TESTS))
        want_energy = canonical_energy(energy) if energy else None
        if energy and not want_energy:
            raise SelectionError(f"energy '{energy}' not recognised; write e.g. "
                                 "6X, 10FFF, 9E or '6 MV'")
        machines = self.machines()
        if not machines:
            raise SelectionError(NOTHING_ON_HAND)
        want_machine = canonical_machine(machine, machines) if machine else None
        chosen, errors = self._load(want_machine, want_test, want_energy, start,
                                    end)
        if not chosen:
            asked = ", ".join(f"{k}={v}" for k, v in (
                ("machine", machine), ("test", test), ("energy", energy),
                ("start", start), ("end", end)) if v)
            every, _ = self.all_series()
            raise SelectionError(f"no series matches {asked}; machines on hand: "
                                 f"{', '.join(machines)}; tests: "
                                 f"{', '.join(sorted({s.test for s in every}))}")
        return chosen, errors

    # --- analyses ---------------------------------------------------------------

    def analyse(self, machine: str | None = None, test: str | None = None,
                energy: str | None = None, start: str | None = None,
                end: str | None = None, options: AnalysisOptions | None = None,
                energy_kind: str | None = None) -> AnalysisRun:
        """Tolerance, control chart and drift verdict of the selected series.

        ``energy_kind`` ("photon", "electron" or "FFF") keeps the series of
        that kind of beam only ("the electron outputs").
        """
        series, errors = self.select(machine, test, energy, start, end)
        if energy_kind:
            kept = [s for s in series if s.energy and (
                s.energy.endswith("FFF") if energy_kind == "FFF"
                else beam_type(s.energy) == energy_kind)]
            if not kept:
                raise SelectionError(
                    f"no {energy_kind} series among "
                    + ", ".join(s.label for s in series[:8]))
            series = kept
        opts = options or self.options()
        # A series that cannot be analysed is listed in errors; the rest go on.
        results, failed = analyze_each(series, self.tables, opts)
        return AnalysisRun(worst_first(results), errors + failed)

    def period(self, spec: PeriodSpec, machine: str | None = None,
               test: str | None = None, energy: str | None = None) -> Period:
        """The dates of a period in words for the selected series.

        Raises
        ------
        SelectionError
            Nothing matches, the event is not recorded, or the period holds
            no measurement (the message gives the data's own dates).
        """
        series, _ = self.select(machine, test, energy)
        return resolve_period(spec, series)

    def compare(self, groups: list[dict[str, Any]],
                options: AnalysisOptions | None = None) -> Comparison:
        """Compare two groups, each one series over one period.

        Parameters
        ----------
        groups : list of dict
            Two selections, each with ``label`` and the ``select`` arguments
            (machine, test, energy, start, end).

        Raises
        ------
        SelectionError
            A group matches no series or more than one (the message lists
            them: name the energy or the test).
        """
        opts = options or self.options()
        sides = []
        for group in groups:
            chosen, _ = self.select(*(group.get(k) for k in (
                "machine", "test", "energy", "start", "end")))
            if len(chosen) > 1:
                raise SelectionError(
                    f"{group['label']} matches {len(chosen)} series ("
                    + ", ".join(s.label for s in chosen[:6])
                    + "): name the machine, test and energy of one")
            results, failed = analyze_each(chosen, self.tables, opts)
            if failed:
                raise SelectionError(failed[0].reason)
            sides.append((group["label"], chosen[0], results[0]))
        return compare_groups(sides[0], sides[1])

    def fleet(self, machine: str | None = None,
              options: AnalysisOptions | None = None) -> AnalysisRun:
        """Every series (of one machine), worst first.

        The whole store is analysed by worker processes that each load their
        own share (:func:`agent.qa.fleet.analyze_store_fleet`).
        """
        from agent.qa.fleet import analyze_fleet, analyze_store_fleet

        opts = options or self.options()
        if self.data is None and machine is None:
            results = analyze_store_fleet(self.store, self.tables, opts)
            if not results and not results.errors:
                raise SelectionError(NOTHING_ON_HAND)
            return AnalysisRun(list(results), results.errors)
        series, errors = self.select(machine)
        results = analyze_fleet(series, self.tables, opts)
        return AnalysisRun(list(results), errors + results.errors)

    def data_on_hand(self, machine: str | None = None) -> dict[str, Any]:
        """Machines, tests, energies, counts and date ranges on hand."""
        series, _ = self.all_series()
        machines = sorted({s.machine for s in series})
        want = canonical_machine(machine, machines) if machine else None
        if machine and want not in machines:
            raise SelectionError(f"machine '{machine}' not on hand; machines: "
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
        return {"machines": [{"machine": m, "series": rows}
                             for m, rows in out.items()],
                "source": str(self.data) if self.data else "measurement store"}

    def tolerance(self, test: str, frequency: str | None = None,
                  machine: str | None = None, machine_class: str | None = None,
                  energy: str | None = None, beam: str | None = None
                  ) -> dict[str, Any]:
        """Tolerance rows for a test, by frequency, machine class and beam.

        The class comes from ``machine_class`` or from the machine registry
        when ``machine`` names a machine; every class's value is returned too.
        """
        canonical = canonical_test(test)
        if canonical is None:
            raise SelectionError(f"test '{test}' not recognised; known tests: "
                                 + ", ".join(TESTS))
        tables = self.tables
        name = None
        if machine:
            name = canonical_machine(machine, sorted(tables.machines)) or machine
            machine_class = machine_class or tables.machine_class(name)[0]
        beam = beam or (beam_type(canonical_energy(energy) or "") if energy else "")
        rows = []
        for row in tables.find(test=canonical, frequency=frequency):
            if beam and row.beam not in ("any", beam):
                continue
            rows.append({
                "id": row.id, "description": row.description,
                "frequency": row.frequency, "unit": row.unit, "kind": row.kind,
                "limits": row.limits, "action_limits": row.action_limits,
                "verified": row.verified, "source": row.source, "note": row.note,
                "limit_for_class": row.limits.get(machine_class) if machine_class
                else None})
        return {"test": canonical, "frequency": frequency, "machine": name,
                "machine_class": machine_class, "rows": rows}

    def search(self, query: str, k: int = 5, document: str | None = None,
               frequency: str | None = None) -> list[Any]:
        """Passages from the protocols; empty when none is relevant."""
        return self.searcher.search(query, k=k, document=document,
                                    frequency=frequency)

    # --- writing and reports ----------------------------------------------------

    def import_file(self, path: Path, machine: str | None = None,
                    options: ReadOptions | None = None) -> ImportReport:
        """Import a QA data file into the store (idempotent); caches dropped.

        ``options`` (default :meth:`read_options`) carries a run's sheets,
        energy or column mapping.
        """
        report = self.store.import_file(path, machine=machine,
                                        options=options or self.read_options())
        self.invalidate(data=True, knowledge=False)
        return report

    def import_result(self, result: ImportResult, digest: str) -> ImportReport:
        """Store a file already read (the app's preview); caches dropped."""
        report = self.store.import_result(result, digest)
        self.invalidate(data=True, knowledge=False)
        return report

    def analyse_images(self, kind: str, source: Any, machine: str,
                       date: str | None = None, energy: str | None = None,
                       store: bool = True, **parameters: Any) -> ImageRun:
        """Analyse an image set with pylinac and store its metrics (idempotent).

        ``kind`` is ``wl``, ``picketfence``, ``starshot`` or ``field``;
        ``source`` a DICOM folder, a zip or files. Raises ``ImageError``
        (a user error; nothing stored) for unusable images.
        """
        from agent.qa.imaging import analyse_images

        known = sorted(set(self.tables.machines) | set(self.store.machines()))
        run = analyse_images(kind, source, canonical_machine(machine, known),
                             self.read_options(), self.store if store else None,
                             date, energy, **parameters)
        self.invalidate(data=True, knowledge=False)
        return run

    def report(self, machine: str, start: str | None = None,
               end: str | None = None) -> QAReport:
        """The PDF QA report of a machine and period (call ``write()``)."""
        from agent.qa.report import QAReport

        return QAReport(self, machine, start, end)


def write_report(settings: Settings, machine: str, start: str | None = None,
                 end: str | None = None, out: str | Path | None = None,
                 data: Path | None = None) -> Path:
    """Write the PDF QA report of a machine and period; return its path.

    Parameters
    ----------
    settings : Settings
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
    return QAEngine(settings, data).report(machine, start, end).write(out)


__all__ = ["NOTHING_ON_HAND", "AnalysisRun", "QAEngine", "write_report"]
