"""Fleet overview: every series analysed, worst first.

One series whose numbers cannot be analysed (values that overflow, a fit
that has no solution) never stops the others: it is listed with its name and
the reason (:class:`FleetResults` ``errors``), and the rest is analysed.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from agent.qa.analysis import SeriesAnalysis
from agent.qa.importers.records import RowError
from agent.qa.options import AnalysisOptions
from agent.qa.result import SeriesResult, worst_first
from agent.qa.series import SeriesData, series_name
from agent.qa.store import MeasurementStore
from agent.qa.tolerances import ToleranceTables

#: Below this many series one process is faster than starting workers.
PARALLEL_FROM = 200


#: What the analysis of one series' numbers can raise: overflow and other
#: arithmetic, a value or fit it cannot use (also a result that fails its own
#: validation), and indexing a series too odd for a step of it.
ANALYSIS_FAILURES = (ArithmeticError, ValueError, TypeError, IndexError, KeyError,
                     np.linalg.LinAlgError)


class FleetResults(list):
    """Results, worst first (a list of SeriesResult), and the series that failed.

    Attributes
    ----------
    errors : list of RowError
        One per series whose analysis failed: ``file`` is the series
        (``TrueBeam2/output/10X``), ``reason`` what failed.
    """

    def __init__(self, results: list[SeriesResult] = (),
                 errors: list[RowError] | None = None) -> None:
        super().__init__(results)
        self.errors = list(errors or [])


def analyze_each(series: list[SeriesData], tables: ToleranceTables,
                 options: AnalysisOptions | None = None
                 ) -> tuple[list[SeriesResult], list[RowError]]:
    """Analyse each series alone: the results, and a RowError per failed series.

    Parameters
    ----------
    series : list of SeriesData
    tables : ToleranceTables
    options : AnalysisOptions, optional

    Returns
    -------
    tuple
        The results in input order, and the failures (:data:`ANALYSIS_FAILURES`).
    """
    results, errors = [], []
    for s in series:
        try:
            results.append(SeriesAnalysis(s, tables).analyze(options).results_data())
        except ANALYSIS_FAILURES as exc:
            errors.append(RowError(
                series_name(*s.key), None, None,
                f"this series could not be analysed ({type(exc).__name__}: {exc}); "
                "the other series were: check its values"))
    return results, errors


def _analyze_chunk(args) -> tuple[list[SeriesResult], list[RowError]]:
    chunk, tables, options = args
    return analyze_each(chunk, tables, options)


def _in_worker(args) -> tuple[list[dict], list[RowError]]:
    """A worker's share as plain dicts, without the chart data.

    Pickling pydantic models costs about 2 ms a series (measured: 0.26 s for
    120), more than their analysis; their dicts pickle 14 times faster and
    are validated back in the parent. The chart data (every point) stays
    behind: a fleet is a table, a chart is drawn for the one series asked for.
    """
    results, errors = _analyze_chunk(args)
    return [r.model_dump() for r in results], errors


def _merged(parts) -> FleetResults:
    """Worker parts (results, errors) as one FleetResults, worst first."""
    results, errors = [], []
    for part_results, part_errors in parts:
        results += [r if isinstance(r, SeriesResult) else
                    SeriesResult.model_validate(r) for r in part_results]
        errors += part_errors
    return FleetResults(worst_first(results), errors)


def analyze_fleet(
    series: list[SeriesData],
    tables: ToleranceTables,
    options: AnalysisOptions | None = None,
    workers: int | None = None,
) -> FleetResults:
    """Analyse all series with the same options; worst first.

    Parameters
    ----------
    series : list of SeriesData
    tables : ToleranceTables
    options : AnalysisOptions, optional
        The SPC options (default :class:`AnalysisOptions`).
    workers : int, optional
        Processes to use; default one per CPU core for large fleets, one
        process below :data:`PARALLEL_FROM` series.

    Returns
    -------
    FleetResults
        The results, worst first, with ``errors`` for the series that failed.
    """
    if workers is None:
        workers = (os.cpu_count() or 1) if len(series) >= PARALLEL_FROM else 1
    if workers <= 1:
        return _merged([_analyze_chunk((series, tables, options))])
    chunks = [series[i::workers] for i in range(workers)]
    # fork: the workers inherit the loaded modules, so they start in milliseconds.
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        return _merged(list(pool.map(_in_worker,
                                     [(c, tables, options) for c in chunks])))


def _load_and_analyze(args) -> tuple[list[SeriesResult], list[RowError]]:
    url, ids, tables, options = args
    store = MeasurementStore(url)  # a fresh engine: never share one across fork
    try:
        return _in_worker((store.load_series(series_ids=ids), tables, options))
    finally:
        store.engine.dispose()


def analyze_store_fleet(
    store: MeasurementStore,
    tables: ToleranceTables,
    options: AnalysisOptions | None = None,
    workers: int | None = None,
) -> FleetResults:
    """Analyse every series in the store, worst first (failures in ``errors``).

    Each worker process loads its own share of the series (with its own
    database engine: one must never be shared across fork) and analyses it,
    so that reading the rows runs on all cores too; results are the same as
    ``analyze_fleet(store.load_series(), ...)``. One process reads through
    ``store`` itself.
    """
    ids = store.series_ids()
    if workers is None:
        workers = (os.cpu_count() or 1) if len(ids) >= PARALLEL_FROM else 1
    if workers <= 1:
        return _merged([_analyze_chunk((store.load_series(), tables, options))])
    url = store.url
    store.engine.dispose()  # no pooled connection is inherited by the workers
    # Contiguous blocks of ids: rows are stored series by series, so each
    # worker reads one stretch of the table.
    ids = sorted(ids)
    bounds = [round(i * len(ids) / workers) for i in range(workers + 1)]
    shares = [ids[a:b] for a, b in itertools.pairwise(bounds)]
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        return _merged(list(pool.map(
            _load_and_analyze, [(url, share, tables, options) for share in shares])))
