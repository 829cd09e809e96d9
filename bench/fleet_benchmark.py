"""Fleet benchmark: generate, import, load and analyse a multi-year QA record.

Steps (each in its own fresh ``spawn`` child process, so the peak RSS reported
for a step is that step's own high-water mark, interpreter and imports
included; the RSS of an idle child after the imports is reported as the
baseline):

a. generate a long-format CSV (date, machine, test, energy, value, unit) with
   daily data for every calendar day, normal noise and a few injected steps
   and ramps;
b. import it with ``MeasurementStore(url).import_file(csv)``;
c. end to end from the store: ``store.load_series()`` then
   ``analyze_fleet(series, tables, options)``, timed separately and together,
   repeated (best and median reported);
d. per-series analysis time (median, p95, max) of
   ``SeriesAnalysis(s, tables).analyze()``;
e. (optional, on by default) a cProfile of one end-to-end pass, top functions
   by cumulative and by own time.

It also checks the verdicts: how many injected changes were called drifting
and how many clean series got a (false) drift verdict.

Run from the repository root::

    .venv/bin/python bench/fleet_benchmark.py
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from provenance import (  # bench/ is on sys.path when run
    code_version,
    profile_top,
)

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE_DIR = ROOT / "knowledge" / "tolerances"
DEFAULT_OUT = ROOT / "bench" / "results" / "fleet.json"
#: The first machine names are those of the shipped registry (known class);
#: the others are not registered (class assumed), as in a real roll-out.
REGISTERED = ("TrueBeam1", "TrueBeam2", "Clinac3")


@dataclass(frozen=True)
class SeriesSpec:
    """One kind of series in the synthetic fleet."""

    test: str
    energy: str
    unit: str
    sd: float  # noise standard deviation, in the unit


def catalogue() -> list[SeriesSpec]:
    """Realistic daily-QA series, most common first (30 in the first block).

    Photons 6X, 10X, 15X, 6FFF, 10FFF x (output, flatness, in-plane and
    cross-plane symmetry, energy) = 25, electron output 6E, 9E, 12E = 3,
    laser and ODI = 2; further series (more electrons, field size) follow for
    ``--series`` above 30.
    """
    profile = {"output": 0.3, "flatness": 0.2, "symmetry_inplane": 0.2,
               "symmetry_crossplane": 0.2, "energy": 0.3}
    specs = [SeriesSpec(test, energy, "%", sd)
             for energy in ("6X", "10X", "15X", "6FFF", "10FFF")
             for test, sd in profile.items()]
    specs += [SeriesSpec("output", e, "%", 0.4) for e in ("6E", "9E", "12E")]
    specs += [SeriesSpec("laser", "", "mm", 0.3), SeriesSpec("odi", "", "mm", 0.5)]
    specs += [SeriesSpec("output", e, "%", 0.4) for e in ("16E", "20E")]
    specs += [SeriesSpec(test, e, "%", sd) for e in ("6E", "9E", "12E", "16E")
              for test, sd in profile.items() if test != "output"]
    specs += [SeriesSpec("field_size", "", "mm", 0.3)]
    return specs


def machine_names(count: int) -> list[str]:
    """Registry machines first, then Linac04, Linac05, ..."""
    return [REGISTERED[i] if i < len(REGISTERED) else f"Linac{i + 1:02d}"
            for i in range(count)]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- step a: generation -------------------------------------------------------------


def generate(machines: int, series: int, years: int, seed: int,
             path: str) -> dict[str, Any]:
    """Write the synthetic fleet as a long CSV; return timings and the truth.

    About 7% of the series (at least one per machine) get a change in the
    last year: alternately a step of 1.5 to 3 sigma or a ramp of 0.02 to 0.05
    sigma per day, either sign.
    """
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    specs = catalogue()
    if series > len(specs):
        raise SystemExit(f"--series at most {len(specs)} (catalogue size)")
    specs = specs[:series]
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2020-01-01")
    dates = pd.date_range(start, start + pd.DateOffset(years=years)
                          - pd.Timedelta(days=1), freq="D")
    n_days = len(dates)
    names = machine_names(machines)
    sd = np.array([s.sd for s in specs] * machines)
    n_series = machines * series
    offsets = rng.normal(0.0, 0.1, n_series)[:, None]
    values = offsets + rng.normal(0.0, 1.0, (n_series, n_days)) * sd[:, None]
    injected = []
    per_machine = max(1, round(0.07 * series))
    day = np.arange(n_days)
    for m, machine in enumerate(names):
        for j, idx in enumerate(rng.choice(series, per_machine, replace=False)):
            row = m * series + int(idx)
            onset = int(rng.integers(n_days - 365, n_days - 30))
            sign = float(rng.choice([-1.0, 1.0]))
            spec = specs[int(idx)]
            if (m + j) % 2 == 0:
                size = float(rng.uniform(1.5, 3.0))
                values[row, onset:] += sign * size * spec.sd
                kind, magnitude = "step", f"{size:.2f} sigma"
            else:
                slope = float(rng.uniform(0.02, 0.05))
                values[row] += sign * slope * spec.sd * np.clip(day - onset + 1,
                                                                0, None)
                kind, magnitude = "ramp", f"{slope:.3f} sigma/day"
            injected.append({
                "machine": machine, "test": spec.test, "energy": spec.energy,
                "kind": kind, "magnitude": magnitude, "direction": int(sign),
                "onset": str(dates[onset].date()),
            })
    t_values = time.perf_counter() - t0
    # Date-major order, as a department's export would be.
    date_text = dates.strftime("%Y-%m-%d").to_numpy()
    frame = pd.DataFrame({
        "date": np.repeat(date_text, n_series),
        "machine": np.tile(np.repeat(np.array(names, dtype=object), series), n_days),
        "test": np.tile(np.array([s.test for s in specs] * machines, dtype=object),
                        n_days),
        "energy": np.tile(np.array([s.energy for s in specs] * machines,
                                   dtype=object), n_days),
        "value": values.T.reshape(-1),
        "unit": np.tile(np.array([s.unit for s in specs] * machines, dtype=object),
                        n_days),
    })
    frame.to_csv(path, index=False, float_format="%.3f")
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "seconds_values": t_values,
        "seconds_csv": seconds - t_values,
        "rows": len(frame),
        "series": n_series,
        "days": n_days,
        "first_date": str(dates[0].date()),
        "last_date": str(dates[-1].date()),
        "csv_mb": os.path.getsize(path) / 2**20,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss0,
        "injected": injected,
    }


# --- step b: import -------------------------------------------------------------------


def import_csv(url: str, path: str) -> dict[str, Any]:
    """Import the CSV into an empty store; time it."""
    from agent.qa.store import MeasurementStore

    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    store = MeasurementStore(url)
    existing = store.counts()["measurement"]
    if existing:
        raise SystemExit(f"the database already holds {existing} measurements; "
                         "give an empty database with --db")
    t1 = time.perf_counter()
    report = store.import_file(path)
    seconds = time.perf_counter() - t1
    return {
        "seconds": seconds,
        "seconds_open_store": t1 - t0,
        "rows_read": report.rows_read,
        "added": report.added,
        "errors": len(report.errors),
        "conflicts": len(report.conflicts),
        "rows_per_second": report.added / seconds if seconds else None,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss0,
        "counts": store.counts(),
    }


# --- steps c, d, e: end to end from the store ---------------------------------


def end_to_end(url: str, repeats: int, profile: bool,
               injected: list[dict]) -> dict[str, Any]:
    """Load and analyse the whole fleet from the store, ``repeats`` times.

    ``analyze_fleet`` is called as the application calls it (its default
    number of worker processes). When it accepts ``workers``, the analysis is
    also timed in one process (``workers=1``), and the profile is taken of
    that serial pass, since cProfile cannot see into worker processes.
    """
    rss0 = peak_rss_mb()
    from agent.qa import fleet
    from agent.qa.analysis import SeriesAnalysis
    from agent.qa.store import MeasurementStore
    from agent.qa.tolerances import ToleranceTables

    rss_imports = peak_rss_mb()
    t0 = time.perf_counter()
    tables = ToleranceTables.load(TOLERANCE_DIR)
    t_tables = time.perf_counter() - t0
    t0 = time.perf_counter()
    store = MeasurementStore(url)
    t_open = time.perf_counter() - t0
    options = None  # the default AnalysisOptions
    has_workers = "workers" in inspect.signature(fleet.analyze_fleet).parameters
    serial: dict[str, Any] = {"workers": 1} if has_workers else {}
    load_before = os.getloadavg()
    runs = []
    results = series = None
    for _ in range(repeats):
        series = results = None
        t0 = time.perf_counter()
        series = store.load_series()
        t1 = time.perf_counter()
        results = fleet.analyze_fleet(series, tables, options)
        t2 = time.perf_counter()
        runs.append({"load": t1 - t0, "analyze": t2 - t1, "total": t2 - t0})
    rss_e2e = peak_rss_mb()
    load_after = os.getloadavg()
    assert series is not None and results is not None
    # The application's whole-store path: each worker loads its own share.
    store_runs = []
    if hasattr(fleet, "analyze_store_fleet"):
        for _ in range(repeats):
            t0 = time.perf_counter()
            # A fresh store each run, as a new `qa-agent fleet` process opens.
            fleet.analyze_store_fleet(MeasurementStore(url), tables, options)
            store_runs.append(time.perf_counter() - t0)
    serial_runs = []
    if has_workers:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fleet.analyze_fleet(series, tables, options, **serial)
            serial_runs.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    SeriesAnalysis(series[0], tables).analyze(options)  # warm-up (lazy imports)
    first_call = time.perf_counter() - t0
    per_series = []
    for s in series:
        t0 = time.perf_counter()
        SeriesAnalysis(s, tables).analyze(options)
        per_series.append(time.perf_counter() - t0)
    ms = np.array(per_series) * 1000.0
    slowest = int(np.argmax(ms))

    truth = {(d["machine"], d["test"], d["energy"]): d for d in injected}
    found = {(r.machine, r.test, r.energy): r for r in results}
    caught = [k for k in truth if found[k].drift.detected]
    direction_ok = [k for k in caught
                    if found[k].drift.direction == truth[k]["direction"]]
    false = [k for k, r in found.items() if k not in truth and r.drift.detected]
    status = {s: sum(r.status == s for r in results)
              for s in ("action", "watch", "ok")}

    def label(key: tuple[str, ...]) -> str:
        return " ".join(p for p in key if p)

    out: dict[str, Any] = {
        "rss_baseline_mb": rss0,
        "rss_after_imports_mb": rss_imports,
        "peak_rss_mb": rss_e2e,
        "peak_rss_worker_mb": resource.getrusage(
            resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
        "seconds_tables_load": t_tables,
        "seconds_open_store": t_open,
        "series_loaded": len(series),
        "measurements_loaded": int(sum(s.values.size for s in series)),
        "analyze_fleet_has_workers": has_workers,
        "parallel_from_series": getattr(fleet, "PARALLEL_FROM", None),
        "loadavg_before": list(load_before),
        "loadavg_after": list(load_after),
        "runs": runs,
        "best": {k: min(r[k] for r in runs) for k in ("load", "analyze", "total")},
        "best_run": min(runs, key=lambda r: r["total"]),
        "median": {k: statistics.median(r[k] for r in runs)
                   for k in ("load", "analyze", "total")},
        "store_fleet": ({"what": "analyze_store_fleet(store): workers load their "
                                 "own shares and analyse (qa-agent fleet)",
                         "runs": store_runs, "best": min(store_runs),
                         "median": statistics.median(store_runs)}
                        if store_runs else None),
        "analyze_one_process": ({"runs": serial_runs, "best": min(serial_runs),
                                 "median": statistics.median(serial_runs)}
                                if serial_runs else None),
        "per_series_ms": {
            "n": int(ms.size), "median": float(np.median(ms)),
            "p95": float(np.percentile(ms, 95)), "mean": float(ms.mean()),
            "max": float(ms.max()), "slowest": label(series[slowest].key),
            "sum_s": float(ms.sum() / 1000.0),
            "first_call_warm_up_ms": first_call * 1000.0,
        },
        "verdicts": {
            "status_counts": status,
            "injected_changes": len(truth),
            "injected_called_drift": len(caught),
            "injected_direction_right": len(direction_ok),
            "injected_missed": [f"{label(k)} ({truth[k]['kind']} "
                                f"{truth[k]['magnitude']} from {truth[k]['onset']})"
                                for k in truth if k not in caught],
            "clean_series": len(found) - len(truth),
            "clean_called_drift": len(false),
            "clean_called_drift_which": [label(k) for k in false],
        },
    }
    if profile:
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        fleet.analyze_fleet(store.load_series(), tables, options, **serial)
        profiler.disable()
        out["profile"] = {
            "what": "store.load_series() + analyze_fleet("
                    + ("workers=1" if serial else "default") + ")",
            "seconds_under_profiler": time.perf_counter() - t0,
            "top_cumulative": profile_top(profiler, "cumtime", 15),
            "top_own_time": profile_top(profiler, "tottime", 15),
        }
    return out


# --- driver -------------------------------------------------------------------


def in_child(func: Callable[..., dict], *args: Any) -> dict:
    """Run one step in a fresh spawned interpreter (own peak RSS)."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def environment() -> dict[str, Any]:
    """Machine and library versions for the record."""
    import scipy
    import sqlalchemy

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "code": code_version(),
        "loadavg_at_start": list(os.getloadavg()),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
        "sqlalchemy": sqlalchemy.__version__,
    }


def summary(result: dict[str, Any]) -> str:
    """A short text summary for people."""
    g, i, e = result["generate"], result["import"], result["end_to_end"]
    p, v = e["per_series_ms"], e["verdicts"]
    best = min(e["runs"], key=lambda r: r["total"])
    code = result["environment"]["code"]
    dirty = code["uncommitted_library_changes"]
    lines = [
        f"Code: commit {code['commit']}"
        + (f" with uncommitted changes ({', '.join(dirty)})" if dirty else "")
        + f"; agent/qa sha256 {code['agent_qa_sha256']}",
        f"Fleet: {result['config']['machines']} machines x "
        f"{result['config']['series']} series x {g['days']} days = {g['rows']:,} "
        f"rows ({g['csv_mb']:.0f} MB CSV); database {result['config']['db']}",
        f"a. generate   {g['seconds']:7.2f} s   peak RSS {g['peak_rss_mb']:6.0f} MB",
        f"b. import     {i['seconds']:7.2f} s   peak RSS {i['peak_rss_mb']:6.0f} MB"
        f"   {i['rows_per_second']:,.0f} rows/s ({i['added']:,} added, "
        f"{i['errors']} errors)",
        f"c. end to end best {best['total']:.2f} s (that run: load "
        f"{best['load']:.2f} + analyse {best['analyze']:.2f}), median "
        f"{e['median']['total']:.2f} s over {len(e['runs'])} runs; best load "
        f"{e['best']['load']:.2f} s, best analyse {e['best']['analyze']:.2f} s",
        f"   peak RSS {e['peak_rss_mb']:.0f} MB (idle child after imports "
        f"{e['rss_after_imports_mb']:.0f} MB); load average before/after "
        f"{e['loadavg_before'][0]:.2f}/{e['loadavg_after'][0]:.2f}",
        f"   aim < 2 s: best {'met' if best['total'] < 2 else 'NOT met'}, median "
        f"{'met' if e['median']['total'] < 2 else 'NOT met'}",
    ]
    sf = e.get("store_fleet")
    if sf:
        lines.append(f"   whole store, workers load their own shares "
                     f"(analyze_store_fleet): best {sf['best']:.2f} s, median "
                     f"{sf['median']:.2f} s; aim < 2 s "
                     f"{'met' if sf['best'] < 2 else 'NOT met'}")
    one = e.get("analyze_one_process")
    if one:
        lines.append(f"   analysis in one process (workers=1): best {one['best']:.2f} "
                     f"s, median {one['median']:.2f} s; worker peak RSS "
                     f"{e['peak_rss_worker_mb']:.0f} MB")
    lines += [
        f"d. per series median {p['median']:.2f} ms, p95 {p['p95']:.2f} ms, max "
        f"{p['max']:.2f} ms ({p['slowest']}) over {p['n']} series (first call, "
        f"warm-up: {p['first_call_warm_up_ms']:.0f} ms)",
        f"verdicts: {v['status_counts']}; injected changes called drift "
        f"{v['injected_called_drift']}/{v['injected_changes']} (direction right "
        f"{v['injected_direction_right']}); clean series called drift "
        f"{v['clean_called_drift']}/{v['clean_series']}",
    ]
    if "profile" in e:
        seconds = e["profile"]["seconds_under_profiler"]
        lines.append(f"e. profile of {e['profile']['what']} ({seconds:.2f} s under "
                     "cProfile), top by cumulative time:")
        for row in e["profile"]["top_cumulative"]:
            lines.append(f"   {row['cumtime']:8.3f} s {row['tottime']:8.3f} s "
                         f"{row['ncalls']:>9}  {row['function']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=20)
    parser.add_argument("--series", type=int, default=30,
                        help="series per machine (default 30)")
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--db", default=None,
                        help="SQLAlchemy URL of an EMPTY database (default: a fresh "
                             "SQLite file in a temporary directory)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="end-to-end repetitions (default 3)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the cProfile pass")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        csv_path = str(Path(tmp) / "fleet.csv")
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        shown = url if args.db is None else url.split("@")[-1]
        result: dict[str, Any] = {
            "config": {"machines": args.machines, "series": args.series,
                       "years": args.years, "seed": args.seed, "db": shown,
                       "repeats": args.repeats, "analysis_options": {}},
            "environment": environment(),
        }
        print("a. generating ...", file=sys.stderr, flush=True)
        result["generate"] = in_child(generate, args.machines, args.series,
                                      args.years, args.seed, csv_path)
        print("b. importing ...", file=sys.stderr, flush=True)
        result["import"] = in_child(import_csv, url, csv_path)
        if url.startswith("sqlite:///"):
            db_file = Path(url.removeprefix("sqlite:///"))
            result["import"]["db_mb"] = db_file.stat().st_size / 2**20
        print("c-e. end to end ...", file=sys.stderr, flush=True)
        result["end_to_end"] = in_child(end_to_end, url, args.repeats,
                                        not args.no_profile,
                                        result["generate"]["injected"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
