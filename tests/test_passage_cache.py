"""The passage cache (agent/retrieval/passages.py): a warm search gives what
the search over Chroma gave, opens no Chroma, and sees every change.

Real index on disk, real embedding model, the eval questions; no mocks.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, knowledge_settings

from agent.retrieval.evaluation import load_questions
from agent.retrieval.index import KnowledgeIndex
from agent.retrieval.passages import index_stamp
from agent.retrieval.search import (
    CANDIDATES,
    RRF_K,
    HybridSearcher,
    open_searcher,
)
from agent.retrieval.text import content_tokens, normalize_query, tokenize

QUESTIONS = load_questions(ROOT / "eval" / "retrieval.yaml")
FILTERS: list[dict[str, str]] = [{"document": "tg142-monthly.md"},
                                 {"frequency": "monthly"},
                                 {"document": "tg142-daily.md", "frequency": "daily"}]


def _where(document: str | None, frequency: str | None) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if document:
        clauses.append({"source": document})
    if frequency:
        clauses.append({"frequency": frequency})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class SearchOverChroma(HybridSearcher):
    """The search as it was before the passage cache: BM25 by bm25s, the
    dense neighbours from Chroma's HNSW query (``candidates`` verbatim but
    for :meth:`neighbours`). ``exact``: the neighbours HNSW approximates, by
    brute force over the vectors stored in Chroma."""

    def __init__(self, index, exact: bool = False) -> None:
        super().__init__(index)
        self.exact = exact
        self.hnsw_was_exact = True
        self._stored: np.ndarray | None = None

    def neighbours(self, vector, document, frequency, limit, kw):
        """(similarity by row, rows nearest first); notes whether HNSW's
        neighbours are the exact ones."""
        hits = self.index.chunks.query(
            query_embeddings=[vector], n_results=min(limit, len(kw.ids)),
            where=_where(document, frequency), include=["distances"])
        dense_sim: dict[int, float] = {}
        dense_rank: list[int] = []
        for cid, dist in zip(hits["ids"][0], hits["distances"][0], strict=True):
            row = kw.row_of.get(cid)
            if row is not None:  # stale passages of an interrupted run are skipped
                dense_sim[row] = 1.0 - float(dist)
                dense_rank.append(row)
        if self._stored is None:
            got = self.index.chunks.get(ids=kw.ids, include=["embeddings"])
            by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
            stored = np.asarray([by_id[cid] for cid in kw.ids], dtype=np.float32)
            self._stored = stored / np.linalg.norm(stored, axis=1, keepdims=True)
        similarity = self._stored @ (vector / np.linalg.norm(vector))
        mask = kw.mask(document, frequency)
        rows = [r for r in np.argsort(-similarity, kind="stable")
                if mask is None or mask[r]][:limit]
        self.hnsw_was_exact = dense_rank == rows
        if self.exact:
            dense_rank = [int(r) for r in rows]
            dense_sim = {r: float(similarity[r]) for r in dense_rank}
        return dense_sim, dense_rank

    def keywords(self):
        if self._keywords is None:
            import bm25s

            kw = copy.copy(super().keywords())
            kw.retriever = bm25s.BM25()
            kw.retriever.index([tokenize(kw.indexed_text(t, m))
                                for t, m in zip(kw.texts, kw.metas, strict=True)],
                               show_progress=False)
            self._keywords = kw
            self.refresh_seconds = float("inf")
        return self._keywords

    def candidates(self, query, document=None, frequency=None, limit=CANDIDATES):
        kw = self.keywords()
        normalized = normalize_query(query, kw.vocabulary)
        if not kw.ids:
            return normalized, []
        # Keyword side.
        q_tokens = [t for t in tokenize(normalized.text) if t in kw.token_vocab]
        mask = kw.mask(document, frequency)
        bm25 = np.zeros(len(kw.ids), dtype=np.float32)
        if q_tokens:
            bm25 = kw.retriever.get_scores(q_tokens, weight_mask=mask)
        top_bm25 = [int(i) for i in np.argsort(-bm25)[:limit] if bm25[i] > 0]
        best_bm25 = float(bm25[top_bm25[0]]) if top_bm25 else 0.0
        # Dense side.
        vector = self.index.embedder.embed([normalized.text])[0]
        dense_sim, dense_rank = self.neighbours(vector, document, frequency, limit,
                                                kw)
        # Reciprocal rank fusion.
        fused: dict[int, float] = {}
        for ranking in (top_bm25, dense_rank):
            for rank, row in enumerate(ranking):
                fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
        missing = [kw.ids[r] for r in fused if r not in dense_sim]
        if missing:
            got = self.index.chunks.get(ids=missing, include=["embeddings"])
            for cid, emb in zip(got["ids"], got["embeddings"], strict=True):
                dense_sim[kw.row_of[cid]] = float(np.dot(vector, emb))
        q_content = set(content_tokens(normalized.corrected))
        weight = {t: kw.idf(t) for t in q_content}
        total = sum(weight.values())
        unknown = (sum(w for t, w in weight.items() if t not in kw.token_vocab)
                   / total) if total else 1.0
        out = []
        for row, rrf in fused.items():
            passage_tokens = kw.passage_tokens(row)
            coverage = (sum(weight[t] for t in q_content & passage_tokens) / total
                        if total else 0.0)
            features = {"dense": dense_sim.get(row, 0.0),
                        "bm25": float(bm25[row]) / best_bm25 if best_bm25 else 0.0,
                        "rrf": rrf * RRF_K, "coverage": coverage,
                        "unknown": unknown}
            out.append({"row": row, "features": features,
                        "score": self.calibration.probability(features)})
        out.sort(key=lambda c: (-c["score"], -c["features"]["rrf"]))
        return normalized, out


def _queries():
    for i, q in enumerate(QUESTIONS):
        yield q.question, {}
        if i % 5 == 0:
            yield q.question, FILTERS[i // 5 % len(FILTERS)]


def test_bm25_scores_are_those_of_bm25s(corpus_searcher):
    before = SearchOverChroma(corpus_searcher.index)
    kw, old = corpus_searcher.keywords(), before.keywords()
    for question, _ in _queries():
        tokens = [t for t in tokenize(normalize_query(question, kw.vocabulary).text)
                  if t in kw.token_vocab]
        if tokens:
            mask = kw.mask("tg142-monthly.md", None)
            assert np.array_equal(kw.retriever.get_scores(tokens),
                                  old.retriever.get_scores(tokens))
            assert np.array_equal(kw.retriever.get_scores(tokens, mask),
                                  old.retriever.get_scores(tokens, weight_mask=mask))


def _same(new: list[dict], old: list[dict], ids: list[str]) -> None:
    assert [ids[c["row"]] for c in new] == [ids[c["row"]] for c in old]
    for a, b in zip(new, old, strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-6)
        for name, value in b["features"].items():
            assert a["features"][name] == pytest.approx(value, abs=1e-6), name


def test_the_cache_finds_what_chroma_found_on_the_eval_questions(corpus_searcher):
    # Same passages in the same order, same scores to 1e-6, as the search
    # over Chroma; where Chroma's HNSW graph (approximate) missed one of the
    # 40 nearest passages, as that search given the exact neighbours.
    before = SearchOverChroma(corpus_searcher.index)
    exact = SearchOverChroma(corpus_searcher.index, exact=True)
    kw = corpus_searcher.keywords()
    runs = approximate = 0
    for question, filters in _queries():
        runs += 1
        _, new = corpus_searcher.candidates(question, **filters)
        _, old = before.candidates(question, **filters)
        reference = before
        if not before.hnsw_was_exact:
            approximate += 1
            _, old = exact.candidates(question, **filters)
            reference = exact
        _same(new, old, kw.ids)
        got = corpus_searcher._results(new, 10)  # what search(k=10) returns
        want = reference._results(old, 10)
        assert [r.passage_id for r in got] == [r.passage_id for r in want]
        assert [r.score for r in got] == pytest.approx([r.score for r in want],
                                                       abs=1e-6)
    assert approximate <= runs // 10, (approximate, runs)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_new_process_trusts_the_cache_until_the_index_changes(tmp_path, embedder):
    settings = knowledge_settings(tmp_path / "data")
    docs = tmp_path / "docs"
    _write(docs / "alpha.md", "# Alpha\n\n## Daily\n\nThe door interlock of the "
           "alpha bunker is checked every morning.\n")
    KnowledgeIndex(settings, embedder=embedder).sync([docs], progress=False)
    first = open_searcher(settings)
    assert [r.source for r in first.search("alpha bunker door interlock")] == \
        ["alpha.md"]
    assert first._index is not None  # no cache yet: built from Chroma, stamped
    # A new process (a new searcher) with nothing changed opens no Chroma.
    warm = open_searcher(settings)
    assert [r.passage_id for r in warm.search("alpha bunker door interlock")] == \
        [r.passage_id for r in first.search("alpha bunker door interlock")]
    assert warm._index is None
    # An ingestion changes the stamp: the next search reads Chroma and sees it.
    stamp = index_stamp(settings)
    _write(docs / "bravo.md", "# Bravo\n\n## Monthly\n\nThe bravo couch sag is "
           "measured monthly with a 90 kg load.\n")
    KnowledgeIndex(settings, embedder=embedder).sync([docs], progress=False)
    assert index_stamp(settings) != stamp
    fresh = open_searcher(settings)
    assert fresh.search("bravo couch sag")[0].source == "bravo.md"
    assert fresh._index is not None and fresh.sources() == ["alpha.md", "bravo.md"]
    # ... and a long-lived searcher sees it once told to look (the app).
    warm.invalidate()
    assert warm.search("bravo couch sag")[0].source == "bravo.md"
    # Then the cache is warm again for the next process.
    assert open_searcher(settings).search("bravo couch sag")[0].source == "bravo.md"
    # A removal too.
    KnowledgeIndex(settings, embedder=embedder).remove(docs / "bravo.md")
    assert open_searcher(settings).sources() == ["alpha.md"]


def test_vectors_of_another_embedder_are_not_trusted(tmp_path, embedder,
                                                      monkeypatch):
    settings = knowledge_settings(tmp_path / "data")
    _write(tmp_path / "docs" / "alpha.md", "# Alpha\n\nThe alpha lamp is lit.\n")
    KnowledgeIndex(settings, embedder=embedder).sync([tmp_path / "docs"],
                                                     progress=False)
    open_searcher(settings).keywords()  # the cache, stamped
    assert open_searcher(settings)._warm() is not None
    import agent.retrieval.embeddings as embeddings

    monkeypatch.setattr(embeddings, "default_identity", lambda: "another model")
    assert open_searcher(settings)._warm() is None  # open_index re-embeds first


#: Runs one ``qa-agent`` command in a fresh interpreter and prints, after the
#: command's JSON, which of the given heavy packages it imported.
COMMAND_IN_PROCESS = """
import json, sys
from agent.cli import app
argv, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
try:
    app(argv)
except SystemExit as exc:
    assert not exc.code, exc.code
print(sorted({m.split(".")[0] for m in sys.modules} & set(heavy)))
"""


def command_in_process(searcher, argv: list[str], heavy: tuple[str, ...],
                       **env: str) -> tuple[dict, str]:
    """The JSON document of ``qa-agent <argv> --json`` run on the session's
    index with its passage cache warm, and the heavy packages it imported."""
    searcher.invalidate()
    searcher.keywords()  # the session's index: its cache is on disk, stamped
    env = {**os.environ, "QA_AGENT_DATA_DIR": str(searcher.settings.data_dir), **env}
    done = subprocess.run([sys.executable, "-c", COMMAND_IN_PROCESS,
                           json.dumps([*argv, "--json"]), json.dumps(heavy)],
                          env=env, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    return json.loads("\n".join(lines[:-1])), lines[-1]


def test_a_warm_search_command_imports_no_chroma_torch_or_langgraph(corpus_searcher):
    document, imported = command_in_process(
        corpus_searcher,
        ["search", "what is the monthly tolerance for jaw position indicators?"],
        ("chromadb", "torch", "sentence_transformers", "langgraph", "langchain_core",
         "bm25s", "scipy", "pandas", "sqlalchemy"))
    assert document["results"][0]["source"] == "tg142-monthly.md"
    assert imported == "[]", f"a warm search imported {imported}"


def test_a_tolerance_ask_imports_no_langchain_scipy_or_model(corpus_searcher,
                                                            small_model_dir):
    """A look-up the rules settle answers from the table and its passage
    without LangChain, SciPy or the LLM's engine: their imports were 1.5 s
    of the 2 s a command may take (issue 14, bench/cli_startup.py)."""
    document, imported = command_in_process(
        corpus_searcher,
        ["ask", "What is the monthly tolerance for jaw position indicators?"],
        ("chromadb", "torch", "sentence_transformers", "langgraph", "langchain_core",
         "langsmith", "bm25s", "scipy", "xllamacpp"),
        QA_AGENT_LLM_BACKEND="embedded", QA_AGENT_LLM_MODEL="qwen2.5-coder-0.5b",
        QA_AGENT_MODEL_PATH=str(small_model_dir))
    assert "2 mm" in document["answer"] and not document["abstained"]
    assert document["citations"][0]["source"] == "tg142-monthly.md"
    assert imported == "[]", f"a tolerance ask imported {imported}"
