"""Command-line start-up: wall seconds per ``qa-agent`` command, as a user runs it.

Each command runs as a subprocess ``--repeats`` times (default 10) against
one prepared data directory: the shipped corpus ingested beforehand
(``qa-agent ingest``) and every command run once untimed, so the passage
cache is warm and the embedded GGUF assembled (that first run is reported
apart as ``first_run_s``). Commands: ``qa-agent search`` for a few
questions, ``qa-agent ask`` for a tolerance look-up the rules settle
(``QA_AGENT_LLM_BACKEND=embedded``: no Ollama is asked), ``qa-agent --help``,
and ``python -c "import agent.cli"``. Best, median and p95 seconds, the load
average around each command's runs and which heavy packages one run
imported (``-X importtime``) go to ``bench/results/cli_startup.json`` with
the code version.

Run from the repository root::

    .venv/bin/python bench/cli_startup.py [--repeats 10] [--data-dir DIR]

``--data-dir`` (default ``bench/.work/cli-startup``) is kept between runs;
``--code DIR`` measures another checkout of the library (put first on
``PYTHONPATH``, e.g. ``git archive HEAD | tar -x -C DIR`` for the code before
a change) and needs a data directory of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provenance import code_version  # bench/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "cli_startup.json"
DEFAULT_DATA = ROOT / "bench" / ".work" / "cli-startup"
QA_AGENT = Path(sys.executable).with_name("qa-agent")

SEARCHES = ("picket fence tolerance",
            "What is the TG-142 daily output constancy tolerance?",
            "how often is the couch position indicator checked")
TOLERANCE_QUESTION = "What is the monthly tolerance for jaw position indicators?"
#: Packages a command should not need to import (reported per command).
HEAVY = ("chromadb", "torch", "sentence_transformers", "langgraph",
         "langchain_core", "bm25s", "scipy", "pandas", "sqlalchemy", "xllamacpp",
         "onnxruntime")


def commands() -> dict[str, list[str]]:
    """Name -> argv of every command measured."""
    out = {f"search {i + 1}": [str(QA_AGENT), "search", q]
           for i, q in enumerate(SEARCHES)}
    out["ask (tolerance look-up)"] = [str(QA_AGENT), "ask", TOLERANCE_QUESTION]
    out["--help"] = [str(QA_AGENT), "--help"]
    out["import agent.cli"] = [sys.executable, "-c", "import agent.cli"]
    return out


def run(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one run; fails loudly when the command does."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True,
                          cwd=env["BENCH_CODE_DIR"])
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n"
                         f"{done.stderr[-2000:]}")
    return seconds


def imported(argv: list[str], env: dict[str, str]) -> list[str]:
    """The heavy packages one run imports (from ``-X importtime``)."""
    python = [sys.executable, "-X", "importtime"]
    script = (["-c", "from agent.cli import main; import sys; "
                     "sys.argv = ['qa-agent', *sys.argv[1:]]; main()", *argv[1:]]
              if argv[0] == str(QA_AGENT) else argv[1:])
    done = subprocess.run([*python, *script], env=env, capture_output=True,
                          text=True, cwd=env["BENCH_CODE_DIR"])
    names = {line.rsplit("|", 1)[-1].strip().split(".")[0]
             for line in done.stderr.splitlines() if line.startswith("import time")}
    return sorted(names & set(HEAVY))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]


def prepare(env: dict[str, str]) -> dict[str, Any]:
    """Ingest the shipped corpus once (a no-op when it is indexed already)."""
    start = time.perf_counter()
    done = subprocess.run([str(QA_AGENT), "ingest", "--no-progress"], env=env,
                          capture_output=True, text=True, cwd=env["BENCH_CODE_DIR"])
    if done.returncode != 0:
        raise SystemExit(f"qa-agent ingest failed:\n{done.stderr[-2000:]}")
    return {"seconds": round(time.perf_counter() - start, 2),
            "summary": done.stdout.strip()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--code", type=Path, default=None,
                        help="measure this checkout of the library instead")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "QA_AGENT_DATA_DIR": str(args.data_dir.resolve()),
           "QA_AGENT_LLM_BACKEND": "embedded"}
    # In the code's folder: `python -c` puts the working folder first on sys.path.
    env["BENCH_CODE_DIR"] = str((args.code or ROOT).resolve())
    if args.code is not None:
        env["PYTHONPATH"] = str(args.code.resolve())
    if "QA_AGENT_MODEL_PATH" not in env and (ROOT / "data" / "models").is_dir():
        # The GGUF set-up assembled (1 GB): not a copy per data directory.
        env["QA_AGENT_MODEL_PATH"] = str(ROOT / "data" / "models")
    print(f"data directory {args.data_dir}: {prepare(env)['summary']}", flush=True)
    results: dict[str, Any] = {}
    for name, command in commands().items():
        first = run(command, env)  # warms the cache, assembles the GGUF
        load_before = os.getloadavg()
        seconds = [run(command, env) for _ in range(args.repeats)]
        results[name] = {
            "command": " ".join(command[1:] if command[0] == str(QA_AGENT)
                                else command),
            "first_run_s": round(first, 3), "best_s": round(min(seconds), 3),
            "median_s": round(statistics.median(seconds), 3),
            "p95_s": round(percentile(seconds, 0.95), 3), "repeats": args.repeats,
            "seconds": [round(s, 3) for s in seconds],
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "heavy_imports": imported(command, env)}
        r = results[name]
        print(f"{name}: best {r['best_s']} s, median {r['median_s']} s, p95 "
              f"{r['p95_s']} s (load {r['loadavg_before'][0]}); imports "
              f"{', '.join(r['heavy_imports']) or 'none of the heavy ones'}",
              flush=True)
    document = {"benchmark": "cli_startup",
                "measured_at": datetime.now(UTC).isoformat(),
                "cpus": os.cpu_count(), "python": platform.python_version(),
                "code": code_version() if args.code is None else {
                    "checkout": str(args.code),
                    "note": "the library of --code; git state unknown here"},
                "data_dir": str(args.data_dir),
                "note": "wall seconds per command, subprocess; the machine was "
                        "shared with other work (load average beside each)",
                "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
