"""Fleet overview: every series analysed, worst first."""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from agent.qa.analysis import SeriesAnalysis
from agent.qa.options import AnalysisOptions
from agent.qa.result import SeriesResult
from agent.qa.result import worst_first as sort_worst_first
from agent.qa.series import SeriesData
from agent.qa.store import MeasurementStore
from agent.qa.tolerances import ToleranceTables

#: Below this many series one process is faster than starting workers.
PARALLEL_FROM = 200


def _analyze_chunk(args) -> list[SeriesResult]:
    chunk, tables, options = args
    return [SeriesAnalysis(s, tables).analyze(options).results_data()
            for s in chunk]


def analyze_fleet(
    series: list[SeriesData],
    tables: ToleranceTables,
    options: AnalysisOptions | None = None,
    workers: int | None = None,
) -> list[SeriesResult]:
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
    """
    if workers is None:
        workers = (os.cpu_count() or 1) if len(series) >= PARALLEL_FROM else 1
    if workers <= 1:
        return sort_worst_first(_analyze_chunk((series, tables, options)))
    chunks = [series[i::workers] for i in range(workers)]
    # fork: the workers inherit the loaded modules, so they start in milliseconds.
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        parts = pool.map(_analyze_chunk, [(c, tables, options) for c in chunks])
        results = [r for part in parts for r in part]
    return sort_worst_first(results)


def _load_and_analyze(args) -> list[SeriesResult]:
    url, ids, tables, options = args
    store = MeasurementStore(url)  # a fresh engine: never share one across fork
    try:
        return _analyze_chunk((store.load_series(series_ids=ids), tables, options))
    finally:
        store.engine.dispose()


def analyze_store_fleet(
    store: MeasurementStore,
    tables: ToleranceTables,
    options: AnalysisOptions | None = None,
    workers: int | None = None,
) -> list[SeriesResult]:
    """Analyse every series in the store, worst first.

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
        return sort_worst_first(_analyze_chunk((store.load_series(), tables,
                                                options)))
    url = store.url
    store.engine.dispose()  # no pooled connection is inherited by the workers
    # Contiguous blocks of ids: rows are stored series by series, so each
    # worker reads one stretch of the table.
    ids = sorted(ids)
    bounds = [round(i * len(ids) / workers) for i in range(workers + 1)]
    shares = [ids[a:b] for a, b in itertools.pairwise(bounds)]
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        parts = pool.map(_load_and_analyze,
                         [(url, share, tables, options) for share in shares])
        results = [r for part in parts for r in part]
    return sort_worst_first(results)
