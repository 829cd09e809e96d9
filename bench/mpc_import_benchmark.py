"""MPC import benchmark: five years of Varian MPC checks for three machines.

Steps (the import steps each in a fresh ``spawn`` child process, so the peak
RSS reported is that step's own high-water mark, interpreter and imports
included):

a. generate the TDS tree with ``tests/mpc_layout.py`` (the published layout,
   QATrack+'s QCPump): per machine and working day a geometry check on 6X
   (``GeometryCheckTemplate6xMVkV``: isocentre, beam, MLC summary and 60 leaves
   per bank with their backlash, jaws, gantry) and a beam check on each other
   energy, the enhanced couch check on Mondays and the enhanced MLC check on
   the first working day of each month; about 40,000 ``Results.csv`` files;
b. import it into a fresh SQLite store exactly as ``qa-agent import DIR`` does
   (``QAEngine(get_settings()).import_file``), with a machines.yaml naming the
   three serials; files/s and rows/s are per second of ``import_file``;
c. import the same tree again (every check known: nothing added).

The stored measurements are checked against the truth the tree was made from.

Run from the repository root::

    .venv/bin/python bench/mpc_import_benchmark.py [--years 5] [--machines 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from provenance import code_version  # bench/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import mpc_layout as layout  # noqa: E402 (the published layout, with the truth)

DEFAULT_OUT = ROOT / "bench" / "results" / "mpc_import.json"
#: Geometry on the first energy, a beam check on each other: 10 checks a day.
ENERGIES = ["6X", "10X", "15X", "6FFF", "10FFF", "6E", "9E", "12E", "16E", "20E"]
SERIALS = ["1101", "1102", "1103", "1104", "1105", "1106"]


def generate(root: Path, machines: int, years: int, seed: int) -> dict[str, Any]:
    """Write the tree; return its size and the truth's totals."""
    rng = random.Random(seed)
    days = [d for d in layout.working_days(date(2020, 1, 1), 262 * years)
            if d.year < 2020 + years]
    t0 = time.perf_counter()
    checks = [c for serial in SERIALS[:machines] for day in days
              for c in layout.session(rng, "NDS-WKS", serial, day, ENERGIES)]
    built = time.perf_counter() - t0
    tds = layout.write_tree(root, checks)
    registry = "machines:\n" + "".join(
        f'  - name: Linac{s}\n    serial: "{s}"\n' for s in SERIALS[:machines])
    (root / "data").mkdir()
    (root / "data" / "machines.yaml").write_text(registry, encoding="utf-8")
    return {"tds": str(tds), "data_dir": str(root / "data"),
            "files": len(checks), "records": sum(len(c.rows) for c in checks),
            "measurements": sum(len(c.expected()) for c in checks),
            "working_days": len(days), "first": str(days[0]), "last": str(days[-1]),
            "bytes": sum(p.stat().st_size for p in tds.rglob("Results.csv")),
            "seconds": round(time.perf_counter() - t0, 2),
            "seconds_building_rows": round(built, 2)}


def import_step(tds: str, data_dir: str) -> dict[str, Any]:
    """Import the tree as ``qa-agent import`` does (runs in a child process)."""
    os.environ["QA_AGENT_DATA_DIR"] = data_dir
    os.environ.pop("QA_AGENT_DATABASE_URL", None)
    from agent.config import get_settings
    from agent.engine import QAEngine

    engine = QAEngine(get_settings())
    idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    t0 = time.perf_counter()
    report = engine.import_file(Path(tds))
    seconds = time.perf_counter() - t0
    counts = engine.store.counts()
    return {"seconds": round(seconds, 2), "rows_read": report.rows_read,
            "added": report.added, "checks": report.checks,
            "checks_new": report.checks_new, "errors": len(report.errors),
            "already_imported": report.already_imported, "store": counts,
            "peak_rss_mb": round(resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
            "rss_after_imports_mb": round(idle, 1)}


def in_child(func, *args) -> dict[str, Any]:
    """Run one step in a fresh spawned interpreter (its own peak RSS)."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def main() -> None:
    """Generate, import twice, check and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=3)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qa-mpc-bench-"))
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()
    try:
        tree = generate(work, args.machines, args.years, args.seed)
        print(f"a. generated {tree['files']} Results.csv ({tree['records']} records,"
              f" {tree['bytes'] / 1e6:.0f} MB) in {tree['seconds']} s")
        first = in_child(import_step, tree["tds"], tree["data_dir"])
        again = in_child(import_step, tree["tds"], tree["data_dir"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first["files_per_s"] = round(tree["files"] / first["seconds"], 1)
    first["rows_per_s"] = round(first["rows_read"] / first["seconds"], 1)
    first["measurements_per_s"] = round(first["added"] / first["seconds"], 1)
    checks = {"all_files_logged": first["store"]["import_log"] == tree["files"],
              "records_read": first["rows_read"] == tree["records"],
              "measurements_as_truth": first["added"] == tree["measurements"]
              == first["store"]["measurement"],
              "no_errors": first["errors"] == 0,
              "reimport_adds_nothing": again["already_imported"]
              and again["added"] == 0 and again["store"] == first["store"]}
    print(f"b. import: {tree['files']} files, {first['rows_read']} rows read, "
          f"{first['added']} measurements in {first['seconds']} s = "
          f"{first['files_per_s']} files/s, {first['rows_per_s']} rows/s; "
          f"peak RSS {first['peak_rss_mb']} MB")
    print(f"c. re-import: {again['seconds']} s, added {again['added']}; "
          f"checks {'all pass' if all(checks.values()) else checks}")
    doc = {"config": vars(args) | {"out": str(args.out), "energies": ENERGIES,
                                   "db": "fresh SQLite file (temporary)"},
           "environment": {"date": started, "python": platform.python_version(),
                           "platform": platform.platform(), "cpus": os.cpu_count(),
                           "loadavg_at_start": load, "code": code_version()},
           "tree": {k: v for k, v in tree.items() if k not in ("tds", "data_dir")},
           "import": first, "reimport": again, "checks": checks}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    if not all(checks.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
