"""A/B timing of the fleet path between source trees, interleaved.

On a machine whose speed drifts between runs, one run of each version says
little; this runs ``analyze_store_fleet`` of each tree (a checkout of another
commit: ``git worktree add /tmp/old 7fd31ac``) in turn, several rounds, on the
same store, and reports the fastest and the median per tree.

Run from the repository root::

    .venv/bin/python bench/fleet_ab.py /tmp/old . [--rounds 6] [--workers 2]

The store (8 machines x 30 series x 5 years, 438 480 rows, SQLite) is made
once in ``bench/.work/fleet_ab.sqlite`` with ``fleet_benchmark.generate``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
STORE = WORK / "fleet_ab.sqlite"

#: Timed in a child process with the tree first on sys.path.
CHILD = """
import inspect, sys, time
root = sys.argv[1]
sys.path.insert(0, root)
from pathlib import Path
import scipy.signal  # noqa: F401 (imported lazily by the EWMA: not timed)
from agent.qa import fleet
from agent.qa.store import MeasurementStore
from agent.qa.tolerances import ToleranceTables
tables = ToleranceTables.load(Path(root) / "knowledge" / "tolerances")
url = sys.argv[2]
first = list(inspect.signature(fleet.analyze_store_fleet).parameters)[0]
arg = MeasurementStore(url) if first == "store" else url
t = time.perf_counter()
fleet.analyze_store_fleet(arg, tables, None, workers=int(sys.argv[3]))
print(time.perf_counter() - t)
"""


def make_store() -> str:
    """The shared store (made once)."""
    url = f"sqlite:///{STORE}"
    if not STORE.exists():
        sys.path.insert(0, str(ROOT / "bench"))
        import fleet_benchmark

        from agent.qa.store import MeasurementStore

        WORK.mkdir(parents=True, exist_ok=True)
        csv = WORK / "fleet_ab.csv"
        fleet_benchmark.generate(8, 30, 5, 20240601, str(csv))
        MeasurementStore(url).import_file(csv)
    return url


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    url = make_store()
    times: dict[Path, list[float]] = {t: [] for t in args.trees}
    for _ in range(args.rounds):
        for tree in args.trees:
            env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(tree.resolve()), url,
                 str(args.workers)], env=env, capture_output=True, text=True,
                check=True)
            times[tree].append(float(out.stdout.strip().splitlines()[-1]))
    for tree, values in times.items():
        print(f"{tree}: fastest {min(values):.3f} s, median "
              f"{statistics.median(values):.3f} s over {len(values)} runs "
              f"({args.workers} workers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
