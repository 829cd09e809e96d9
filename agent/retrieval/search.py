"""Hybrid search with a calibrated relevance score.

A query is normalised (beam notation, typos, abbreviations: ``text.py``),
then searched twice: BM25 over the passages' words (bm25s) and nearest
neighbours of its embedding in Chroma. The two rankings are fused by
reciprocal rank fusion (RRF, k=60). Each fused candidate then gets a
relevance score, the probability that it answers the query, from a logistic
model over five features (dense similarity, BM25 score relative to the best,
RRF score, the share of the query's topic words found in the passage and the
share found nowhere in the index, both weighted by rarity). A second logistic
model gives the probability that the index answers the query at all, from
the best coverage, unknown share and dense similarity among the first five
passages; below 0.5 the answer is "nothing relevant found", not the nearest
unrelated text. Both models are fitted on ``eval/retrieval_calibration.yaml``
(``qa-agent eval retrieval --calibrate``) and shipped in
``knowledge/retrieval_calibration.json``; the evaluation set stays held out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import Settings, get_settings
from agent.retrieval.index import KnowledgeIndex, KnowledgeIndexError
from agent.retrieval.text import (
    SYNONYMS,
    NormalizedQuery,
    content_tokens,
    normalize_query,
    tokenize,
    words,
)

RRF_K = 60
CANDIDATES = 40
FEATURES = ("dense", "bm25", "rrf", "coverage", "unknown")
GATE_FEATURES = ("coverage", "unknown", "dense")
GATE_DEPTH = 5
CALIBRATION_FILE = "retrieval_calibration.json"


@dataclass(frozen=True)
class SearchResult:
    """One passage found, with where it comes from."""

    source: str
    section: str
    page: int | None
    text: str
    score: float
    title: str
    path: str
    passage_id: str
    frequency: str

    def contract(self) -> dict[str, Any]:
        """The ``qa-agent search --json`` fields (README, command line)."""
        return {"source": self.source, "section": self.section,
                "page": self.page, "text": self.text,
                "score": round(self.score, 4)}


@dataclass
class Calibration:
    """Two fitted logistic models (see the module docstring).

    ``passage``: probability that one passage answers the query, from
    ``FEATURES``; it ranks the passages and is their ``score``.
    ``answerable``: probability that the index answers the query at all, from
    the best ``GATE_FEATURES`` among the first five passages; below
    ``threshold`` the search returns nothing. Passages scoring below
    ``passage_floor`` are left out of an answered query.
    """

    passage_intercept: float
    passage_coefficients: dict[str, float]
    gate_intercept: float
    gate_coefficients: dict[str, float]
    threshold: float = 0.5
    passage_floor: float = 0.0
    fitted_on: str = ""
    notes: str = ""

    def probability(self, features: dict[str, float]) -> float:
        """Relevance of one passage."""
        z = self.passage_intercept + sum(
            self.passage_coefficients[f] * features[f] for f in FEATURES)
        return _sigmoid(z)

    def answerable(self, top: list[dict[str, float]]) -> float:
        """Probability that the query is answered, from its best passages."""
        if not top:
            return 0.0
        z = self.gate_intercept + sum(
            c * max(f[name] for f in top) for name, c in self.gate_coefficients.items())
        return _sigmoid(z)

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read the shipped calibration (a rough default when it is missing)."""
        if not path.is_file():
            return cls(-6.0, {"dense": 2.0, "bm25": 3.0, "rrf": 2.0,
                              "coverage": 3.0, "unknown": -1.0},
                       -6.0, {"coverage": 6.0, "unknown": -6.0, "dense": 4.0},
                       notes="default, not fitted")
        try:
            data = json.loads(path.read_text())
            return cls(float(data["passage_intercept"]),
                       {f: float(data["passage_coefficients"][f]) for f in FEATURES},
                       float(data["gate_intercept"]),
                       {f: float(data["gate_coefficients"][f])
                        for f in GATE_FEATURES},
                       float(data["threshold"]), float(data["passage_floor"]),
                       data.get("fitted_on", ""), data.get("notes", ""))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KnowledgeIndexError(
                f"{path}: not a usable retrieval calibration ({type(exc).__name__}: "
                f"{exc}); refit it with 'qa-agent eval retrieval --calibrate'"
            ) from None

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def _expansion_words(text: str) -> set[str]:
    """Tokens of the synonyms of phrases found in a text."""
    low = text.lower()
    out: set[str] = set()
    for group in SYNONYMS:
        if any(p in low for p in group):
            for phrase in group:
                out.update(tokenize(phrase))
    return out


class KeywordIndex:
    """BM25 over the visible passages, with their texts and metadata.

    Built from Chroma and cached on disk under the index fingerprint, so a
    process starts in about a second; any ingestion changes the fingerprint.
    """

    def __init__(self, fingerprint: str, ids: list[str], texts: list[str],
                 metas: list[dict[str, Any]], retriever: Any,
                 vocabulary: frozenset[str],
                 document_frequency: dict[str, int]) -> None:
        self.fingerprint = fingerprint
        self.ids = ids
        self.texts = texts
        self.metas = metas
        self.retriever = retriever
        self.vocabulary = vocabulary
        self.document_frequency = document_frequency
        self.token_vocab = frozenset(retriever.vocab_dict) if retriever else frozenset()
        self.row_of = {cid: i for i, cid in enumerate(ids)}
        self._tokens: dict[int, frozenset[str]] = {}
        self.sources = np.array([m.get("source", "") for m in metas], dtype=object)
        self.frequencies = np.array([m.get("frequency", "") for m in metas],
                                    dtype=object)

    @staticmethod
    def indexed_text(text: str, meta: dict[str, Any]) -> str:
        """Title, section and passage: what BM25 sees (as embedded)."""
        head = " > ".join(p for p in (meta.get("title", ""), meta.get("section", ""))
                          if p)
        return f"{head}\n{text}" if head else text

    @classmethod
    def build(cls, index: KnowledgeIndex, fingerprint: str) -> KeywordIndex:
        """Read every visible passage from Chroma and index its words."""
        import bm25s

        ids: list[str] = []
        texts: list[str] = []
        metas: list[dict[str, Any]] = []
        for cid, text, meta in index.all_passages():
            ids.append(cid)
            texts.append(text)
            metas.append(dict(meta))
        vocabulary: set[str] = set()
        corpus_tokens = []
        frequency: Counter[str] = Counter()
        for text, meta in zip(texts, metas, strict=True):
            full = cls.indexed_text(text, meta)
            vocabulary.update(words(full))
            tokens = tokenize(full)
            corpus_tokens.append(tokens)
            frequency.update(set(tokens))
        retriever = None
        if ids:
            retriever = bm25s.BM25()
            retriever.index(corpus_tokens, show_progress=False)
        return cls(fingerprint, ids, texts, metas, retriever, frozenset(vocabulary),
                   dict(frequency))

    def save(self, directory: Path) -> None:
        """Write to ``directory`` (replaced atomically)."""
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.retriever is not None:
            self.retriever.save(str(tmp / "bm25"), show_progress=False)
        (tmp / "passages.json").write_text(json.dumps({
            "fingerprint": self.fingerprint, "ids": self.ids, "texts": self.texts,
            "metas": self.metas, "vocabulary": sorted(self.vocabulary),
            "document_frequency": self.document_frequency}))
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)

    @classmethod
    def load(cls, directory: Path, fingerprint: str) -> KeywordIndex | None:
        """The cached index when it matches ``fingerprint``, else None."""
        import bm25s

        try:
            data = json.loads((directory / "passages.json").read_text())
            if data["fingerprint"] != fingerprint:
                return None
            retriever = None
            if data["ids"]:
                retriever = bm25s.BM25.load(str(directory / "bm25"),
                                            show_progress=False)
            return cls(fingerprint, data["ids"], data["texts"], data["metas"],
                       retriever, frozenset(data["vocabulary"]),
                       data["document_frequency"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or from an older version: rebuilt

    def idf(self, token: str) -> float:
        """BM25 inverse document frequency; a token never seen gets the most."""
        n = len(self.ids)
        df = self.document_frequency.get(token, 0)
        return math.log((n - df + 0.5) / (df + 0.5) + 1.0)

    def passage_tokens(self, row: int) -> frozenset[str]:
        """A passage's tokens with its phrases' synonyms (computed once)."""
        tokens = self._tokens.get(row)
        if tokens is None:
            full = self.indexed_text(self.texts[row], self.metas[row])
            tokens = frozenset(tokenize(full)) | _expansion_words(full)
            self._tokens[row] = tokens
        return tokens

    def mask(self, document: str | None, frequency: str | None) -> np.ndarray | None:
        """1 for passages that pass the filters (None: no filter)."""
        if not document and not frequency:
            return None
        keep = np.ones(len(self.ids), dtype=bool)
        if document:
            keep &= self.sources == document
        if frequency:
            keep &= self.frequencies == frequency
        return keep.astype(np.float32)


class HybridSearcher:
    """Search the knowledge index: BM25 + dense, fused and calibrated.

    Parameters
    ----------
    index : KnowledgeIndex, optional
        The index to search (default: from the settings).
    settings : Settings, optional
    calibration : Calibration, optional
        Default: ``knowledge/retrieval_calibration.json``.
    """

    def __init__(self, index: KnowledgeIndex | None = None,
                 settings: Settings | None = None,
                 calibration: Calibration | None = None) -> None:
        self.settings = settings or (index.settings if index else get_settings())
        self.index = index or KnowledgeIndex(self.settings)
        self.calibration = calibration or Calibration.load(
            self.settings.knowledge_dir / CALIBRATION_FILE)
        self._keywords: KeywordIndex | None = None
        self._checked = 0.0
        self.refresh_seconds = 2.0

    @property
    def cache_path(self) -> Path:
        """Where the keyword index is cached for this collection and server."""
        where = self.settings.chroma_url or str(self.settings.chroma_dir)
        # The tokenizer's source is part of the key: changing it rebuilds.
        from agent.retrieval import text as tokenizer

        tag = hashlib.sha256(where.encode()
                             + Path(tokenizer.__file__).read_bytes()).hexdigest()[:12]
        return (self.settings.cache_dir
                / f"keywords-{self.settings.knowledge_collection}-{tag}")

    def keywords(self) -> KeywordIndex:
        """The keyword index, rebuilt when the index has changed."""
        now = time.monotonic()
        if self._keywords is not None and now - self._checked < self.refresh_seconds:
            return self._keywords
        fingerprint = self.index.fingerprint()
        self._checked = now
        if self._keywords is None or self._keywords.fingerprint != fingerprint:
            cached = KeywordIndex.load(self.cache_path, fingerprint)
            if cached is None:
                cached = KeywordIndex.build(self.index, fingerprint)
                # A read-only data directory only costs a rebuild next time.
                with contextlib.suppress(OSError):
                    cached.save(self.cache_path)
            self._keywords = cached
        return self._keywords

    def invalidate(self) -> None:
        """Check the index for changes on the next search."""
        self._checked = 0.0

    def candidates(self, query: str, document: str | None = None,
                   frequency: str | None = None,
                   limit: int = CANDIDATES) -> tuple[NormalizedQuery,
                                                      list[dict[str, Any]]]:
        """Fused candidates with their features and relevance, best first."""
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
        where = _where(document, frequency)
        hits = self.index.chunks.query(
            query_embeddings=[vector], n_results=min(limit, len(kw.ids)),
            where=where, include=["distances"])
        dense_sim: dict[int, float] = {}
        dense_rank: list[int] = []
        for cid, dist in zip(hits["ids"][0], hits["distances"][0], strict=True):
            row = kw.row_of.get(cid)
            if row is not None:  # stale passages of an interrupted run are skipped
                dense_sim[row] = 1.0 - float(dist)
                dense_rank.append(row)
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
        # Topic words weighted by rarity: a word found nowhere in the index
        # ("proton", "kQ") weighs most and counts against every passage.
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

    def search(self, query: str, k: int = 5, document: str | None = None,
               frequency: str | None = None,
               threshold: float | None = None) -> list[SearchResult]:
        """The k most relevant passages, or none when nothing is relevant.

        The query is answered when the calibrated probability that the index
        answers it reaches the threshold; then up to k passages are returned,
        best first, leaving out those below the passage floor (above which 95 %
        of true hits lay on the calibration set).

        Parameters
        ----------
        query : str
        k : int
            At most this many results.
        document : str, optional
            Only passages of this file (its name, e.g. ``tg142-monthly.md``).
        frequency : str, optional
            Only passages about this QA frequency (daily, weekly, monthly,
            quarterly, annual).
        threshold : float, optional
            Probability of being answerable the query must reach (default:
            the calibrated 0.5). An empty list means nothing relevant found.
        """
        if not query.strip():
            return []
        _, ranked = self.candidates(query, document, frequency)
        return self._results(ranked, k, threshold)

    def relevance(self, query: str) -> tuple[bool, float]:
        """Whether :meth:`search` finds something, and how near the index is.

        Returns
        -------
        tuple of (bool, float)
            ``search(query, k=1)`` would return a passage; the best dense
            similarity among the first candidates (how close the question is
            to anything indexed, relevant or not). One candidate pass serves
            both.
        """
        if not query.strip():
            return False, 0.0
        _, ranked = self.candidates(query)
        dense = max((c["features"]["dense"] for c in ranked[:GATE_DEPTH]),
                    default=0.0)
        return bool(self._results(ranked, 1)), dense

    def _results(self, ranked: list[dict[str, Any]], k: int,
                 threshold: float | None = None) -> list[SearchResult]:
        """The gate, then up to k ranked candidates above the passage floor."""
        cut = self.calibration.threshold if threshold is None else threshold
        gate = self.calibration.answerable(
            [c["features"] for c in ranked[:GATE_DEPTH]])
        if gate < cut:
            return []
        floor = self.calibration.passage_floor
        kw = self.keywords()
        results = []
        for cand in ranked:
            if cand["score"] < floor or len(results) >= k:
                break
            meta = kw.metas[cand["row"]]
            results.append(SearchResult(
                source=str(meta.get("source", "")),
                section=str(meta.get("section", "")),
                page=int(meta["page"]) if "page" in meta else None,
                text=kw.texts[cand["row"]], score=cand["score"],
                title=str(meta.get("title", "")), path=str(meta.get("path", "")),
                passage_id=kw.ids[cand["row"]],
                frequency=str(meta.get("frequency", ""))))
        return results


def _where(document: str | None, frequency: str | None) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if document:
        clauses.append({"source": document})
    if frequency:
        clauses.append({"frequency": frequency})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
