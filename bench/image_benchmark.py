"""Image QA benchmark: seconds per image set for each pylinac analysis.

For each analysis (Winston-Lutz, picket fence, starshot, field analysis) it
generates a set with ``agent.qa.imaging.synthetic`` (pylinac's image
generator, offline), then times, ``--repeats`` times each: the analysis
alone (load, check and analyse: ``ANALYSES[kind](path).analyze()``) and the
whole stored import through the engine (``QAEngine.analyse_images``, into a
fresh SQLite store). Best and median seconds per set are written to
``bench/results/image.json`` with the machine's CPU count and the code
version.

Run from the repository root::

    .venv/bin/python bench/image_benchmark.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provenance import code_version  # bench/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_OUT = ROOT / "bench" / "results" / "image.json"

#: What each benchmark set is: kind -> (description, generator call).
SETS: dict[str, str] = {
    "wl": "Winston-Lutz, 4 images (AS1000 panel, 768 x 1024), BB 0.5 mm off",
    "picketfence": "picket fence, 1 image (AS1000), 7 pickets, one leaf 0.8 mm off",
    "starshot": "starshot, 1 image (AS1000), 5 spokes, wobble 1.0 mm",
    "field": "open field 15 x 15 cm, 1 image (AS1000), 4% tilt",
}


def make_set(kind: str, folder: Path) -> Path:
    """Generate the benchmark set of one analysis; return its path."""
    from agent.qa.imaging import synthetic

    if kind == "wl":
        return synthetic.wl_set(folder / "wl", left=0.5,
                                when="2025-03-04 07:30")["files"][0].parent
    if kind == "picketfence":
        return synthetic.picket_fence(folder / "pf.dcm", leaf_error_mm=0.8)["file"]
    if kind == "starshot":
        return synthetic.starshot(folder / "star.dcm", radius_mm=0.5)["file"]
    return synthetic.open_field(folder / "field.dcm", slope_x=0.04)["file"]


def timed(func: Any, repeats: int) -> dict[str, float]:
    """Best and median wall-clock seconds of ``repeats`` calls."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        seconds.append(time.perf_counter() - start)
    return {"best_s": round(min(seconds), 3),
            "median_s": round(statistics.median(seconds), 3),
            "repeats": repeats}


def bench_kind(kind: str, work: Path, repeats: int) -> dict[str, Any]:
    """Generation, analysis and stored-import times of one analysis."""
    from agent.config import Settings
    from agent.engine import QAEngine
    from agent.qa.imaging import ANALYSES

    start = time.perf_counter()
    path = make_set(kind, work)
    generate_s = time.perf_counter() - start
    energy = "6X" if kind == "field" else None
    analysis = timed(lambda: ANALYSES[kind](path).analyze(), repeats)

    def stored() -> None:
        engine = QAEngine(Settings(data_dir=Path(tempfile.mkdtemp(dir=work))))
        engine.analyse_images(kind, path, "TrueBeam1", energy=energy)

    return {"set": SETS[kind], "generate_s": round(generate_s, 3),
            "analysis": analysis, "analysis_and_store": timed(stored, repeats)}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from agent.qa.imaging.common import pylinac_version, quiet_matplotlib

    quiet_matplotlib()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in SETS:
            results[kind] = bench_kind(kind, Path(tmp), args.repeats)
            print(f"{kind}: analysis {results[kind]['analysis']['median_s']} s, "
                  f"with store {results[kind]['analysis_and_store']['median_s']} s "
                  "(median per set)", flush=True)
    document = {"benchmark": "image", "measured_at": datetime.now(UTC).isoformat(),
                "cpus": os.cpu_count(), "python": platform.python_version(),
                "pylinac": pylinac_version(), "code": code_version(),
                "note": "seconds per image set; the machine was shared with "
                        "other work, so the median is the figure to quote",
                "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
