"""Evaluation of request understanding on ``eval/agent_requests.yaml``.

Each item is a conversation (its ``turns``); the last turn is scored against
``expect``: the right tool (an analysis, a comparison, a clarifying question,
or the statement that the period holds no data), the right series, the
right period (each date within :data:`DAYS_ALLOWED` days; an open end must be
open), the right kind of answer (``ask``) and the right drift verdict per
series, and no number the tool results do not hold. Scores are per kind of
request (``qa-agent eval requests``; README, "Measured").
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from agent.graph import Agent, Conversation
from agent.verification import unsupported_numbers

#: A period date may differ by this many days from the expected one.
DAYS_ALLOWED = 3


@dataclass
class RequestReport:
    """Scores of one run: per kind and overall."""

    backend: str
    model: str
    per_kind: dict[str, tuple[int, int]] = field(default_factory=dict)
    routing: float = 0.0
    unsupported: int = 0
    median_seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Right answers over all items."""
        right = sum(r for r, _ in self.per_kind.values())
        total = sum(n for _, n in self.per_kind.values())
        return right / total if total else 0.0

    def text(self) -> str:
        """The per-kind table and the failures."""
        lines = [f"backend {self.backend} ({self.model})",
                 "| kind | right | of | accuracy |", "|---|---|---|---|"]
        for kind, (right, n) in sorted(self.per_kind.items()):
            lines.append(f"| {kind} | {right} | {n} | {right / n:.3f} |")
        lines += [f"overall accuracy {self.accuracy:.3f}, routing {self.routing:.3f}, "
                  f"unsupported numbers {self.unsupported}, median "
                  f"{self.median_seconds:.2f} s per request"]
        lines += [f"  fail {f['id']} ({f['kind']}): {f['why']}"
                  for f in self.failures[:60]]
        return "\n".join(lines)


def load_requests(folder: Path) -> list[dict[str, Any]]:
    """The items of ``agent_requests.yaml``."""
    return yaml.safe_load((folder / "agent_requests.yaml").read_text())["requests"]


def _near(got: str | None, want: str | None, edge: str | None = None) -> bool:
    """Within :data:`DAYS_ALLOWED` days; an expected open end (None) is met by
    an open end or by the data's own first/last date (``edge``)."""
    if want is None:
        want = edge if got is not None else None
    if want is None or got is None:
        return want is None and got is None
    gap = date.fromisoformat(got[:10]) - date.fromisoformat(want[:10])
    return abs(gap.days) <= DAYS_ALLOWED


def _key(entry: dict[str, Any]) -> tuple[str, str, str]:
    return entry["machine"], entry["test"], entry.get("energy") or ""


def _check_analysis(calls: list[dict[str, Any]], expect: dict[str, Any]) -> str:
    """"" when right, else why not."""
    runs = [c for c in calls if c["name"] == "analyze_series"
            and "error" not in c["result"]]
    if not runs:
        return f"no analysis ran: {[c['name'] for c in calls]}"
    got = {_key(s): s for c in runs for s in c["result"]["series"]}
    want = [tuple(s) for s in expect["series"]]
    if set(got) != set(want):
        return f"analysed {sorted(got)[:4]}, expected {want}"
    for c in runs:
        first = min(s["details"]["first_date"] for s in c["result"]["series"])
        last = max(s["details"]["last_date"] for s in c["result"]["series"])
        if not (_near(c["args"].get("start"), expect.get("start"), first)
                and _near(c["args"].get("end"), expect.get("end"), last)):
            return (f"period {c['args'].get('start')}..{c['args'].get('end')}, "
                    f"expected {expect.get('start')}..{expect.get('end')}")
        if c["args"].get("ask", "verdict") != expect.get("ask", "verdict"):
            return f"answered {c['args'].get('ask')}, expected {expect.get('ask')}"
    for key, detected in zip(want, expect["drift_detected"], strict=True):
        if got[key]["drift"]["detected"] != detected:
            return f"{key} drift {got[key]['drift']['detected']}, expected {detected}"
    return ""


def _check(doc: dict[str, Any], expect: dict[str, Any]) -> str:
    """"" when the last turn's answer is right, else why not."""
    calls = doc["tool_calls"]
    tool = expect["tool"]
    if tool == "analyze_series":
        return _check_analysis(calls, expect)
    if tool == "compare_series":
        runs = [c for c in calls if c["name"] == "compare_series"]
        if not runs or "error" in runs[-1]["result"]:
            seen = [(c["name"], c["result"].get("error")) for c in calls]
            return f"no comparison: {seen}"
        groups = runs[-1]["args"]["groups"]
        got = [(g.get("machine"), g.get("test"), g.get("energy") or "") for g in groups]
        want = [tuple(s) for s in expect["series"]]
        if got != want:
            return f"compared {got}, expected {want}"
        summaries = runs[-1]["result"]["comparison"]["groups"]
        for g, s, (start, end) in zip(groups, summaries, expect["periods"],
                                      strict=True):
            if not (_near(g.get("start"), start, s["start"])
                    and _near(g.get("end"), end, s["end"])):
                return f"group period {g.get('start')}..{g.get('end')}, expected " \
                       f"{start}..{end}"
        return ""
    if tool == "clarify":
        if calls:
            return f"ran {[c['name'] for c in calls]} instead of asking"
        missing = [m for m in expect["candidates"] if m not in doc["answer"]]
        return f"the question back lacks {missing}" if missing else ""
    # no_data: said, not widened
    ran = [c for c in calls if c["name"] in ("analyze_series", "compare_series")]
    if ran or not doc["answer"].startswith("I could not run that"):
        return f"not said as missing data: {doc['answer'][:100]}"
    return ""


def evaluate_requests(agent: Agent, items: list[dict[str, Any]]) -> RequestReport:
    """Ask every conversation and score its last turn."""
    report = RequestReport(agent.backend, agent.model)
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    routed = 0
    seconds: list[float] = []
    for item in items:
        conversation = Conversation()
        for turn in item["turns"][:-1]:
            agent.ask(turn, conversation)
        doc = agent.ask(item["turns"][-1], conversation)
        seconds.append(doc["seconds"])
        routed += doc["intent"] == "analysis"
        why = _check(doc, item["expect"])
        evidence = item["turns"][-1] + "\n" + "\n".join(
            str(c["result"]) for c in doc["tool_calls"])
        if not why and item["expect"]["tool"] != "clarify" and \
                unsupported_numbers(doc["answer"], evidence):
            report.unsupported += 1
            why = f"unsupported number in: {doc['answer'][:100]}"
        tally[item["kind"]][1] += 1
        tally[item["kind"]][0] += not why
        if why:
            report.failures.append({"id": item["id"], "kind": item["kind"],
                                    "why": why})
    report.per_kind = {k: (v[0], v[1]) for k, v in tally.items()}
    report.routing = routed / len(items) if items else 0.0
    report.median_seconds = statistics.median(seconds) if seconds else 0.0
    return report


__all__ = ["DAYS_ALLOWED", "RequestReport", "evaluate_requests", "load_requests"]
