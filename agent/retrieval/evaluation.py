"""Retrieval evaluation and calibration of the relevance score.

An evaluation set (``eval/retrieval.yaml``) lists answerable questions, each
with the files that hold the answer and strings the passage must contain,
and unanswerable ones. A returned passage is a hit when it comes from one of
the files and contains every expected string (case-insensitive, whitespace
collapsed). Reported: hit@1, hit@5, MRR (over the first 10), the share of
answerable questions wrongly rejected, and the rejection rate on the
unanswerable questions (no passage above the threshold).
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from agent.errors import UserError
from agent.retrieval.search import (
    FEATURES,
    GATE_DEPTH,
    GATE_FEATURES,
    Calibration,
    HybridSearcher,
)

#: Fused candidates per question used to fit the relevance model.
TRAIN_DEPTH = 15


class EvalSetError(UserError):
    """An evaluation file is malformed; the message names the file and entry."""


@dataclass(frozen=True)
class Question:
    """One evaluation question."""

    id: str
    question: str
    sources: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    kind: str = ""

    @property
    def answerable(self) -> bool:
        """Whether the corpus holds the answer."""
        return bool(self.sources)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def is_hit(question: Question, source: str, text: str) -> bool:
    """Whether a passage answers an answerable question."""
    body = _squash(text)
    return source in question.sources and all(_squash(e) in body
                                              for e in question.expect)


def load_questions(path: Path) -> list[Question]:
    """Answerable and unanswerable questions of one YAML file.

    Raises
    ------
    EvalSetError
        When the file is missing or an entry lacks a field.
    """
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EvalSetError(f"{path}: cannot be read ({exc})") from None
    out: list[Question] = []
    for n, item in enumerate(data.get("answerable") or [], start=1):
        try:
            out.append(Question(str(item["id"]), str(item["question"]),
                                tuple(item["sources"]), tuple(item["expect"]),
                                str(item.get("kind", ""))))
        except (KeyError, TypeError):
            raise EvalSetError(f"{path}: answerable entry {n} needs id, question, "
                               f"sources and expect") from None
    for n, item in enumerate(data.get("unanswerable") or [], start=1):
        try:
            out.append(Question(str(item["id"]), str(item["question"]),
                                kind="unanswerable"))
        except (KeyError, TypeError):
            raise EvalSetError(f"{path}: unanswerable entry {n} needs id and "
                               f"question") from None
    return out


@dataclass
class RetrievalReport:
    """Scores of one evaluation run."""

    answerable: int
    unanswerable: int
    hit_at_1: float
    hit_at_5: float
    mrr: float
    false_rejection: float
    rejection: float
    median_ms: float
    p95_ms: float
    by_kind: dict[str, float] = field(default_factory=dict)
    misses: list[dict[str, Any]] = field(default_factory=list)

    def text(self) -> str:
        """Human-readable summary."""
        lines = [
            f"answerable questions    {self.answerable}",
            f"  hit@1                 {self.hit_at_1:.3f}",
            f"  hit@5                 {self.hit_at_5:.3f}",
            f"  MRR                   {self.mrr:.3f}",
            f"  wrongly rejected      {self.false_rejection:.3f}",
            f"unanswerable questions  {self.unanswerable}",
            f"  rejected              {self.rejection:.3f}",
            f"query latency           median {self.median_ms:.0f} ms, "
            f"p95 {self.p95_ms:.0f} ms",
            "hit@5 by kind           " + ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(self.by_kind.items())),
        ]
        for miss in self.misses:
            lines.append(f"  miss {miss['id']}: {miss['question']!r} -> "
                         f"{miss['got']}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def evaluate(searcher: HybridSearcher, questions: list[Question],
             k: int = 5) -> RetrievalReport:
    """Run every question through the searcher and score the results."""
    hits1 = hits5 = 0
    reciprocal: list[float] = []
    rejected_answerable = rejected_unanswerable = 0
    latencies: list[float] = []
    kind_hits: dict[str, list[int]] = {}
    misses: list[dict[str, Any]] = []
    for q in questions:
        started = time.perf_counter()
        results = searcher.search(q.question, k=10)
        latencies.append((time.perf_counter() - started) * 1000)
        if not q.answerable:
            rejected_unanswerable += not results
            if results:
                misses.append({"id": q.id, "question": q.question,
                               "got": f"{results[0].source} "
                                      f"({results[0].score:.2f}) not rejected"})
            continue
        if not results:
            rejected_answerable += 1
        rank = next((i for i, r in enumerate(results) if is_hit(q, r.source, r.text)),
                    None)
        hits1 += rank == 0
        hit5 = rank is not None and rank < k
        hits5 += hit5
        kind_hits.setdefault(q.kind or "other", []).append(int(hit5))
        reciprocal.append(0.0 if rank is None else 1.0 / (rank + 1))
        if not hit5:
            got = (f"{results[0].source}: {results[0].text[:60]!r} "
                   f"({results[0].score:.2f})" if results else "rejected")
            misses.append({"id": q.id, "question": q.question, "got": got})
    n_ans = sum(q.answerable for q in questions)
    n_un = len(questions) - n_ans
    latencies.sort()
    return RetrievalReport(
        answerable=n_ans, unanswerable=n_un,
        hit_at_1=hits1 / n_ans if n_ans else 0.0,
        hit_at_5=hits5 / n_ans if n_ans else 0.0,
        mrr=statistics.fmean(reciprocal) if reciprocal else 0.0,
        false_rejection=rejected_answerable / n_ans if n_ans else 0.0,
        rejection=rejected_unanswerable / n_un if n_un else 0.0,
        median_ms=statistics.median(latencies) if latencies else 0.0,
        p95_ms=latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
        if latencies else 0.0,
        by_kind={k: statistics.fmean(v) for k, v in kind_hits.items()},
        misses=misses)


def calibrate(searcher: HybridSearcher, questions: list[Question],
              source_name: str) -> Calibration:
    """Fit both relevance models on a calibration set.

    Passage model: the first ``TRAIN_DEPTH`` fused candidates (by RRF) of
    every question are examples, labelled 1 when a hit. Answerable model:
    one example per question (answerable or not) with the best gate features
    of its first ``GATE_DEPTH`` candidates; its threshold is 0.5. The passage
    floor is the 5th percentile of the hits' passage scores.
    """
    from sklearn.linear_model import LogisticRegression

    rows: list[list[float]] = []
    labels: list[int] = []
    gate_rows: list[list[float]] = []
    gate_labels: list[int] = []
    kw = searcher.keywords()
    for q in questions:
        _, cands = searcher.candidates(q.question)
        if not cands:
            continue
        top = cands[:GATE_DEPTH]
        gate_rows.append([max(c["features"][f] for c in top) for f in GATE_FEATURES])
        gate_labels.append(int(q.answerable))
        for cand in sorted(cands, key=lambda c: -c["features"]["rrf"])[:TRAIN_DEPTH]:
            row = cand["row"]
            hit = q.answerable and is_hit(q, kw.metas[row].get("source", ""),
                                          kw.texts[row])
            rows.append([cand["features"][f] for f in FEATURES])
            labels.append(int(hit))
    passage = LogisticRegression(C=1.0, max_iter=5000).fit(rows, labels)
    gate = LogisticRegression(C=10.0, max_iter=5000).fit(gate_rows, gate_labels)
    fitted = Calibration(
        float(passage.intercept_[0]),
        {f: float(c) for f, c in zip(FEATURES, passage.coef_[0], strict=True)},
        float(gate.intercept_[0]),
        {f: float(c) for f, c in zip(GATE_FEATURES, gate.coef_[0], strict=True)},
        threshold=0.5, fitted_on=f"{source_name} ({date.today().isoformat()})")
    hit_scores = sorted(fitted.probability(dict(zip(FEATURES, r, strict=True)))
                        for r, y in zip(rows, labels, strict=True) if y)
    fitted.passage_floor = (round(hit_scores[int(0.05 * len(hit_scores))], 4)
                            if hit_scores else 0.0)
    gate_right = sum(
        (fitted.answerable([dict(zip(GATE_FEATURES, r, strict=True))]) >= 0.5) == y
        for r, y in zip(gate_rows, gate_labels, strict=True))
    fitted.notes = (f"passage model: {len(labels)} candidates ({sum(labels)} hits) "
                    f"from {len(questions)} questions; answerable model right on "
                    f"{gate_right}/{len(gate_rows)} calibration questions")
    return fitted
