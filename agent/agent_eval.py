"""End-to-end evaluation of the agent on the ``eval/agent_*.yaml`` sets.

Every question goes through :meth:`agent.graph.Agent.ask` on one backend.
Reported: routing accuracy (intent as expected; tolerance and protocol
questions may be answered by either of those two routes), answer accuracy on
protocol questions (every ``must_contain`` and one ``any_of`` string in the
answer), the verdict accuracy of drift requests (the analysed series and its
drift verdict), the citation rate of protocol answers, the abstention rate
on out-of-scope and clinical questions, the abstention on near-domain
questions the corpus does not answer (``route: unanswerable``: abstained,
nothing cited), the share of protocol questions wrongly abstained, the
share of answers holding a number found in no tool result or cited passage,
and median latency.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.graph import Agent, unsupported_numbers

KNOWLEDGE_ROUTES = {"protocol", "tolerance"}
DECLINE_ROUTES = {"clinical", "out_of_scope"}
#: Near-domain questions the corpus does not answer: any knowledge or decline
#: route will do, so long as the answer abstains and cites nothing.
UNANSWERABLE = "unanswerable"


@dataclass
class AgentReport:
    """Scores of one run on one backend."""

    backend: str
    model: str
    questions: int = 0
    routing: float = 0.0
    answer_accuracy: float = 0.0
    drift_accuracy: float = 0.0
    citation_rate: float = 0.0
    abstention: float = 0.0
    unanswerable_abstained: float = 0.0
    wrongly_abstained: float = 0.0
    unsupported_rate: float = 0.0
    median_seconds: float = 0.0
    p95_seconds: float = 0.0
    median_first_output: float = 0.0
    p95_first_output: float = 0.0
    median_first_token_llm: float = 0.0
    llm_answers: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: One record per question: id, intent, seconds, first output, streamed.
    records: list[dict[str, Any]] = field(default_factory=list)

    def text(self) -> str:
        """Human-readable summary."""
        lines = [f"backend {self.backend} ({self.model}), {self.questions} questions",
                 f"  routing accuracy          {self.routing:.3f}",
                 f"  answer accuracy (protocol) {self.answer_accuracy:.3f}",
                 f"  drift verdicts right      {self.drift_accuracy:.3f}",
                 f"  citation rate (protocol)  {self.citation_rate:.3f}",
                 f"  abstention (out of scope) {self.abstention:.3f}",
                 f"  unanswerable abstained    {self.unanswerable_abstained:.3f}",
                 f"  answerable but abstained  {self.wrongly_abstained:.3f}",
                 f"  unsupported-number rate   {self.unsupported_rate:.3f}",
                 f"  time to full answer       median {self.median_seconds:.1f} s, "
                 f"p95 {self.p95_seconds:.1f} s",
                 f"  time to first output      median "
                 f"{self.median_first_output:.1f} s, p95 {self.p95_first_output:.1f} s",
                 f"  first token, LLM-written  median "
                 f"{self.median_first_token_llm:.1f} s ({self.llm_answers} answers)"]
        lines += [f"  fail {f['id']}: {f['why']}" for f in self.failures[:40]]
        return "\n".join(lines)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).lower()


def load_sets(folder: Path) -> list[dict[str, Any]]:
    """All items of the three agent sets, each with its ``route``."""
    items: list[dict[str, Any]] = []
    for name, key in (("agent_protocol.yaml", "questions"),
                      ("agent_drift.yaml", "requests"),
                      ("agent_out_of_scope.yaml", "questions")):
        data = yaml.safe_load((folder / name).read_text())
        items.extend(data[key])
    return items


def evaluate_agent(agent: Agent, items: list[dict[str, Any]],
                   limit: int | None = None) -> AgentReport:
    """Ask every item and score the answers."""
    # why long: one pass over the items that scores each kind of question in turn;
    # split, the shared tallies would travel through every part.
    report = AgentReport(agent.backend, agent.model)
    routed = answered = knowledge = cited = declines = declined = 0
    drift_total = drift_right = unsupported = 0
    unanswerable = unanswerable_abstained = wrongly_abstained = 0
    seconds: list[float] = []
    for item in items[:limit]:
        # First output: the first streamed token of the answer; an answer
        # written by code arrives whole, so its first output is the answer.
        started = time.perf_counter()
        first_token: list[float] = []

        def on_token(_: str, first_token: list[float] = first_token,
                     started: float = started) -> None:
            if not first_token:
                first_token.append(time.perf_counter() - started)

        doc = agent.ask(item["question"], on_token=on_token)
        seconds.append(doc["seconds"])
        report.records.append({
            "id": item["id"], "intent": doc["intent"], "seconds": doc["seconds"],
            "first_output": round(first_token[0] if first_token else doc["seconds"],
                                  2),
            "streamed": bool(first_token)})
        route = item["route"]
        intent = doc["intent"]
        ok_route = (intent in KNOWLEDGE_ROUTES | DECLINE_ROUTES
                    if route == UNANSWERABLE
                    else intent in KNOWLEDGE_ROUTES if route in KNOWLEDGE_ROUTES
                    else intent in DECLINE_ROUTES if route in DECLINE_ROUTES
                    else intent == route)
        routed += ok_route
        if not ok_route:
            report.failures.append({"id": item["id"], "why": f"routed {intent}, "
                                    f"expected {route}"})
        evidence = item["question"] + "\n" + "\n".join(
            c["text"] for c in doc["citations"]) + "\n" + "\n".join(
            str(t["result"]) for t in doc["tool_calls"])
        if unsupported_numbers(doc["answer"], evidence):
            unsupported += 1
            report.failures.append({"id": item["id"], "why": "unsupported number: "
                                    + doc["answer"][:120]})
        if route in KNOWLEDGE_ROUTES:
            knowledge += 1
            body = _squash(doc["answer"])
            right = all(_squash(s) in body for s in item.get("must_contain", [])) \
                and (not item.get("any_of")
                     or any(_squash(s) in body for s in item["any_of"]))
            answered += right
            cited += bool(doc["citations"])
            wrongly_abstained += doc["abstained"]
            if not right:
                report.failures.append({"id": item["id"], "why": "answer lacks "
                                        f"{item.get('must_contain')}: "
                                        + doc["answer"][:120]})
        elif route == UNANSWERABLE:
            unanswerable += 1
            good = doc["abstained"] and not doc["citations"]
            unanswerable_abstained += good
            if not good:
                report.failures.append({"id": item["id"], "why": "not abstained: "
                                        + doc["answer"][:120]})
        elif route in DECLINE_ROUTES:
            declines += 1
            # Declined: abstained, and nothing but a (read-only) search ran.
            declined += doc["abstained"] and all(
                t["name"] == "search_protocols" for t in doc["tool_calls"])
        elif route == "analysis":
            drift_total += 1
            calls = [t for t in doc["tool_calls"] if t["name"] == "analyze_series"]
            series = calls[-1]["result"].get("series", []) if calls else []
            match = [s for s in series if s["machine"] == item["machine"]
                     and s["test"] == item["test"]
                     and s["energy"] == (item.get("energy") or "")]
            good = bool(match) and len(series) == 1 and \
                match[0]["drift"]["detected"] == item["drift_detected"]
            drift_right += good
            if not good:
                got = [(s["machine"], s["test"], s["energy"]) for s in series[:3]]
                report.failures.append({"id": item["id"], "why": f"analysed {got}"})
    n = len(items[:limit])
    report.questions = n
    report.routing = routed / n if n else 0.0
    report.answer_accuracy = answered / knowledge if knowledge else 0.0
    report.citation_rate = cited / knowledge if knowledge else 0.0
    report.abstention = declined / declines if declines else 0.0
    report.unanswerable_abstained = (unanswerable_abstained / unanswerable
                                     if unanswerable else 0.0)
    report.wrongly_abstained = wrongly_abstained / knowledge if knowledge else 0.0
    report.drift_accuracy = drift_right / drift_total if drift_total else 0.0
    report.unsupported_rate = unsupported / n if n else 0.0
    report.median_seconds = statistics.median(seconds) if seconds else 0.0
    report.p95_seconds = _p95(seconds)
    first = [r["first_output"] for r in report.records]
    report.median_first_output = statistics.median(first) if first else 0.0
    report.p95_first_output = _p95(first)
    streamed = [r["first_output"] for r in report.records if r["streamed"]]
    report.llm_answers = len(streamed)
    report.median_first_token_llm = statistics.median(streamed) if streamed else 0.0
    return report


def _p95(values: list[float]) -> float:
    """95th percentile (nearest rank), 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered) + 0.5) - 1)]
