"""Fleet overview: every series analysed, worst first."""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from agent.qa.analysis import SeriesAnalysis, SeriesResult, sort_worst_first
from agent.qa.store import MeasurementStore, SeriesData
from agent.qa.tolerances import ToleranceTables

#: Below this many series one process is faster than starting workers.
PARALLEL_FROM = 200


def _analyze_chunk(args) -> list[SeriesResult]:
    chunk, tables, options = args
    return [SeriesAnalysis(s, tables).analyze(**options).results_data()
            for s in chunk]


def analyze_fleet(
    series: list[SeriesData],
    tables: ToleranceTables,
    options: dict | None = None,
    workers: int | None = None,
) -> list[SeriesResult]:
    """Analyse all series with the same options; worst first.

    Parameters
    ----------
    series : list of SeriesData
    tables : ToleranceTables
    options : dict, optional
        Keyword arguments of :meth:`SeriesAnalysis.analyze`.
    workers : int, optional
        Processes to use; default one per CPU core for large fleets, one
        process below :data:`PARALLEL_FROM` series.
    """
    options = options or {}
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
    url: str,
    tables: ToleranceTables,
    options: dict | None = None,
    workers: int | None = None,
) -> list[SeriesResult]:
    """Analyse every series in the store, worst first.

    Each worker process loads its own share of the series and analyses it, so
    that reading the rows runs on all cores too; results are the same as
    ``analyze_fleet(store.load_series(), ...)``.
    """
    options = options or {}
    store = MeasurementStore(url)
    ids = store.series_ids()
    store.engine.dispose()
    if workers is None:
        workers = (os.cpu_count() or 1) if len(ids) >= PARALLEL_FROM else 1
    if workers <= 1:
        return sort_worst_first(_load_and_analyze((url, ids, tables, options)))
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


def fleet_table(results: list[SeriesResult]) -> str:
    """A fixed-width table for the terminal."""
    header = (f"{'status':7} {'machine':12} {'test':20} {'energy':6} {'n':>5} "
              f"{'latest':>8} {'limit':>6} {'drift':>6} {'onset':10}  reason")
    lines = [header, "-" * len(header)]
    for r in results:
        limit = r.tolerance["limit"] if r.tolerance else None
        drift = {1: "up", -1: "down"}.get(r.drift.direction, "-")
        lines.append(
            f"{r.status:7} {r.machine[:12]:12} {r.test[:20]:20} {r.energy:6} "
            f"{r.n:>5} {r.latest_value if r.latest_value is not None else '':>8} "
            f"{limit if limit is not None else '-':>6} {drift:>6} "
            f"{r.drift.onset or '':10}  {r.status_reason}"
        )
    counts = {s: sum(r.status == s for r in results) for s in ("action", "watch",
                                                               "ok")}
    lines.append(f"\n{len(results)} series: {counts['action']} action, "
                 f"{counts['watch']} watch, {counts['ok']} ok")
    return "\n".join(lines)
