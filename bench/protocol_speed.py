"""Protocol answer speed: first output and full answer, idle and under load.

Every protocol and tolerance question of ``eval/agent_protocol.yaml`` goes
through :meth:`agent.graph.Agent.ask` on the embedded backend (the model
loaded once, before timing; its load time is reported apart), in one
process, as ``qa-agent ask`` and the chat run it. For each question it
records:

* **first output**: seconds until the first streamed text (the cited
  extract, written by code) or, for an answer written whole by code (a
  tolerance row), until the answer;
* **full answer**: seconds until ``ask`` returns;
* where the time went: the LLM's routing call (when the rules did not
  settle the intent), the LLM's one-sentence wording of the extract, and
  the rest (retrieval, extraction, checks);
* whether the LLM worded the answer (issue 14's speed aims are for those
  questions: first output median < 1.5 s, full answer median < 6 s and
  p95 < 15 s, and under load less than twice the idle median).

The pass runs twice: on idle cores, then with a second process keeping
every core busy (``--load-processes`` pure-Python spinning processes, one
per core by default). Before each pass two questions warm the caches.
Results go to ``bench/results/protocol_speed.json`` with the code version.

Run from the repository root::

    .venv/bin/python bench/protocol_speed.py [--every 1] [--no-load]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from provenance import code_version  # bench/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_OUT = ROOT / "bench" / "results" / "protocol_speed.json"
SPIN = "while True:\n    pass\n"


class TimedLLM:
    """The agent's chat model, with the time of each kind of call counted.

    ``structured`` is the router's call; ``stream`` the extract's wording.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.clock: dict[str, float] = {"route": 0.0, "word": 0.0}

    def structured(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.structured(*args, **kwargs)
        finally:
            self.clock["route"] += time.perf_counter() - started

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            yield from self.inner.stream(*args, **kwargs)
        finally:
            self.clock["word"] += time.perf_counter() - started

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def questions(every: int) -> list[dict[str, Any]]:
    """The protocol set's answerable questions (every ``every``-th)."""
    data = yaml.safe_load((ROOT / "eval" / "agent_protocol.yaml").read_text())
    items = [q for q in data["questions"] if q["route"] in ("protocol", "tolerance")]
    return items[::every]


def ask_all(agent: Any, llm: TimedLLM, items: list[dict[str, Any]]) -> list[dict]:
    """One timed ``ask`` per question."""
    rows = []
    for item in items:
        llm.clock.update(route=0.0, word=0.0)
        started = time.perf_counter()
        first: list[float] = []
        pieces = [0]

        def on_token(_text: str, first: list[float] = first,
                     pieces: list[int] = pieces, started: float = started) -> None:
            pieces[0] += 1
            if not first:
                first.append(time.perf_counter() - started)

        doc = agent.ask(item["question"], on_token=on_token)
        full = time.perf_counter() - started
        rows.append({"id": item["id"], "full_s": round(full, 3),
                     "first_output_s": round(first[0] if first else full, 3),
                     "route_llm_s": round(llm.clock["route"], 3),
                     "word_llm_s": round(llm.clock["word"], 3),
                     "llm_worded": llm.clock["word"] > 0,
                     "abstained": doc["abstained"]})
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and p95 of first output and full answer, LLM-worded and all."""
    def stats(values: list[float]) -> dict[str, float]:
        if not values:
            return {"n": 0}
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered) + 0.5) - 1)]
        return {"n": len(values), "median_s": round(statistics.median(values), 2),
                "p95_s": round(p95, 2), "max_s": round(ordered[-1], 2)}

    worded = [r for r in rows if r["llm_worded"]]
    return {"llm_worded": {"first_output": stats([r["first_output_s"] for r in worded]),
                           "full": stats([r["full_s"] for r in worded]),
                           "word_llm": stats([r["word_llm_s"] for r in worded])},
            "all": {"first_output": stats([r["first_output_s"] for r in rows]),
                    "full": stats([r["full_s"] for r in rows])},
            "routed_by_llm": sum(r["route_llm_s"] > 0 for r in rows),
            "route_llm": stats([r["route_llm_s"] for r in rows
                                if r["route_llm_s"] > 0])}


def spinning(count: int) -> list[subprocess.Popen]:
    """``count`` processes that keep one core busy each."""
    return [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]


def main() -> None:
    """Run the idle and loaded passes and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, default=1,
                        help="every K-th question (default: all)")
    parser.add_argument("--no-load", action="store_true",
                        help="skip the pass under load")
    parser.add_argument("--load-processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    os.environ.setdefault("QA_AGENT_DATA_DIR", tempfile.mkdtemp(prefix="qa-speed-"))
    os.environ["QA_AGENT_LLM_BACKEND"] = "embedded"
    from agent.cli_common import build_agent
    from agent.config import get_settings
    from agent.qa.demo import write_demo_fleet

    settings = get_settings()
    agent = build_agent(settings, write_demo_fleet(settings.data_dir / "demo")["data"])
    started = time.perf_counter()
    agent.ask("What is the daily output constancy tolerance?")  # index + model
    warm_up_s = time.perf_counter() - started
    llm = TimedLLM(agent.llm)
    agent.llm = llm
    items = questions(args.every)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_before": os.getloadavg()},
        "code": code_version(), "backend": agent.backend, "model": agent.model,
        "threads": settings.llm_threads or os.cpu_count(),
        "first_question_s (index sync + model load)": round(warm_up_s, 2),
        "questions": len(items)}
    passes = [("idle", 0)] + ([] if args.no_load else [("load", args.load_processes)])
    for name, spin in passes:
        busy = spinning(spin)
        try:
            time.sleep(1.0 if spin else 0.0)
            ask_all(agent, llm, items[:2])  # warm caches for this pass
            rows = ask_all(agent, llm, items)
        finally:
            for p in busy:
                p.kill()
        result[name] = {"spinning_processes": spin, "summary": summary(rows),
                        "rows": rows}
        worded = result[name]["summary"]["llm_worded"]
        print(f"{name}: {worded['full'].get('n', 0)} LLM-worded answers; first "
              f"output {worded['first_output']}; full {worded['full']}", flush=True)
    if "load" in result:
        idle = result["idle"]["summary"]["llm_worded"]["full"].get("median_s")
        load = result["load"]["summary"]["llm_worded"]["full"].get("median_s")
        if idle and load:
            result["load_over_idle_full_median"] = round(load / idle, 2)
            print(f"under load / idle, full answer median: {load / idle:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
