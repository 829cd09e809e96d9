"""Load test: simultaneous conversations with the running app via gradio_client.

Each conversation is its own gradio_client session (so its own
``Conversation`` in the app's ``gr.State``), asks its own question and then a
follow-up that only makes sense in that conversation ("and for 6X?"). Every
answer is checked against the answer the tools give for that request when
computed here, directly on the same store, so a crossed or wrong answer
fails. Latency is measured per answer (submit to final output).

    .venv/bin/python bench/load_test.py                 # starts the app itself
    .venv/bin/python bench/load_test.py --url http://127.0.0.1:7860/

Results go to ``bench/results/load.json`` and the console; the README quotes
them. ``tests/test_load.py`` runs the same check (10 conversations) on the
fast model.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import Settings  # noqa: E402
from agent.data_answers import answer_from_call  # noqa: E402
from agent.tools import ToolContext, run_tool  # noqa: E402

#: (first question, analyze args, follow-up, args of the follow-up). Drift
#: requests and follow-ups are answered by code from the tools, so the right
#: answer is known exactly; two protocol questions go through the LLM and
#: must come back cited.
ANALYSES: list[tuple[str, dict[str, str], str, dict[str, str]]] = [
    ("Is the 10 MV output on TrueBeam 2 drifting?",
     {"machine": "TrueBeam2", "test": "output", "energy": "10X"},
     "and for 6X?", {"energy": "6X"}),
    ("Is the 6 MeV output on TrueBeam 1 drifting?",
     {"machine": "TrueBeam1", "test": "output", "energy": "6E"},
     "and for 9E?", {"energy": "9E"}),
    ("Check the 15X energy constancy on Clinac3",
     {"machine": "Clinac3", "test": "energy", "energy": "15X"},
     "and for 6X?", {"energy": "6X"}),
    ("Any drift in TrueBeam2 6X cross-plane symmetry?",
     {"machine": "TrueBeam2", "test": "symmetry_crossplane", "energy": "6X"},
     "and for 10X?", {"energy": "10X"}),
    ("How is the TrueBeam1 6X flatness trending?",
     {"machine": "TrueBeam1", "test": "flatness", "energy": "6X"},
     "and for 10X?", {"energy": "10X"}),
    ("Is Clinac3's 6X output stable?",
     {"machine": "Clinac3", "test": "output", "energy": "6X"},
     "and for 15X?", {"energy": "15X"}),
    ("Trend of the TrueBeam2 6FFF output?",
     {"machine": "TrueBeam2", "test": "output", "energy": "6FFF"},
     "and for 10FFF?", {"energy": "10FFF"}),
    ("Is the 10 MV in-plane symmetry on TrueBeam 1 drifting?",
     {"machine": "TrueBeam1", "test": "symmetry_inplane", "energy": "10X"},
     "and for 6X?", {"energy": "6X"}),
]
PROTOCOL = ["What does TG-142 say about the daily door interlock check?",
            "How are the control limits of an individuals chart computed?"]


@dataclass
class Answer:
    """One answer as the app gave it."""

    conversation: int
    question: str
    seconds: float
    right: bool
    why: str = ""


@dataclass
class LoadReport:
    """What a load run measured."""

    conversations: int
    answers: list[Answer] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def right(self) -> int:
        return sum(a.right for a in self.answers)

    def summary(self) -> dict[str, Any]:
        """Counts and latency figures (seconds per answer under load)."""
        seconds = sorted(a.seconds for a in self.answers)
        return {"conversations": self.conversations, "answers": len(self.answers),
                "right": self.right, "wall_seconds": round(self.wall_seconds, 1),
                "median_seconds": round(statistics.median(seconds), 1),
                "max_seconds": round(seconds[-1], 1),
                "code_answers_median": round(statistics.median(
                    [a.seconds for a in self.answers
                     if a.question not in PROTOCOL]), 1),
                "wrong": [asdict(a) for a in self.answers if not a.right]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def serve_app(data_dir: Path, log_path: Path, model: str = "",
              start_timeout: float = 600) -> Iterator[str]:
    """Run ``python app.py`` on a free loopback port; yield its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_AGENT_")}
    env.update({"QA_AGENT_DATA_DIR": str(data_dir), "QA_AGENT_UI_PORT": str(port),
                "QA_AGENT_UI_HOST": "127.0.0.1", "QA_AGENT_LLM_BACKEND": "embedded",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    if model:
        env["QA_AGENT_LLM_MODEL"] = model
    for key in ("QA_AGENT_MODEL_PATH", "QA_AGENT_LLM_THREADS"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    url = f"http://127.0.0.1:{port}/"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + start_timeout
            while not answers_http(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the app did not start:\n"
                                       + log_path.read_text()[-3000:])
                time.sleep(1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def expected_answer(data_dir: Path, args: dict[str, str]) -> str:
    """The answer the tools give for an analysis request, computed here."""
    ctx = ToolContext(settings=Settings(data_dir=data_dir))
    result = run_tool(ctx, "analyze_series", args)
    return answer_from_call({"name": "analyze_series", "result": result})


def _reply_text(history: list[dict[str, Any]]) -> str:
    """Text of the assistant's messages after the last user message."""
    last_user = max(i for i, m in enumerate(history) if m["role"] == "user")
    texts = []
    for message in history[last_user + 1:]:
        if message.get("metadata") and message["metadata"].get("title"):
            continue  # a tool step, not the answer
        content = message["content"]
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(part["text"])
            elif isinstance(part, str):
                texts.append(part)
    return "\n".join(texts)


def _conversation(url: str, n: int, turns: list[tuple[str, str | None]],
                  report: LoadReport, lock: threading.Lock,
                  start: threading.Barrier) -> None:
    from gradio_client import Client

    client = Client(url, analytics_enabled=False, verbose=False,
                    download_files=False)
    history: list[dict[str, Any]] = []
    start.wait()
    for question, expected in turns:
        began = time.perf_counter()
        try:
            history, *_ = client.predict(question, history, api_name="/respond")
            text = _reply_text(history)
            if expected is None:  # a protocol answer: cited
                right = "[1]" in text or "[2]" in text
                why = "" if right else "no citation: " + text[:200]
            else:
                right = expected in text
                why = "" if right else f"expected {expected[:80]!r}, got {text[:200]!r}"
        except Exception as exc:  # a failed request is a wrong answer
            right, why = False, f"{type(exc).__name__}: {exc}"
        answer = Answer(n, question, time.perf_counter() - began, right, why)
        with lock:
            report.answers.append(answer)


def run_load(url: str, data_dir: Path, conversations: int = 10) -> LoadReport:
    """``conversations`` simultaneous sessions, two turns each, all checked."""
    plans: list[list[tuple[str, str | None]]] = []
    for n in range(conversations):
        if n % 5 == 4 and (n // 5) < len(PROTOCOL):
            plans.append([(PROTOCOL[n // 5], None)])
            continue
        question, args, follow_up, change = ANALYSES[n % len(ANALYSES)]
        plans.append([(question, expected_answer(data_dir, args)),
                      (follow_up, expected_answer(data_dir, {**args, **change}))])
    report = LoadReport(conversations)
    lock = threading.Lock()
    start = threading.Barrier(conversations)
    threads = [threading.Thread(target=_conversation,
                                args=(url, n, plan, report, lock, start))
               for n, plan in enumerate(plans)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report.wall_seconds = time.perf_counter() - began
    return report


def main() -> int:
    """Run the load test and write ``bench/results/load.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running app (its data dir: --data-dir)")
    parser.add_argument("--data-dir", type=Path, help="the running app's data dir")
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--model", default="", help="embedded model (default: "
                        "the configured one)")
    args = parser.parse_args()
    if args.url:
        report = run_load(args.url, args.data_dir or Settings().data_dir,
                          args.conversations)
        model = args.model or "as configured"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp)
            with serve_app(data_dir, data_dir / "app.log", args.model) as url:
                report = run_load(url, data_dir, args.conversations)
        model = args.model or Settings().llm_model
    summary = {"model": model, "cpus": os.cpu_count(), **report.summary()}
    out = ROOT / "bench" / "results" / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0 if report.right == len(report.answers) else 1


if __name__ == "__main__":
    sys.exit(main())
