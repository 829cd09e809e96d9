"""Hybrid search with a calibrated relevance score.

A query is normalised (beam notation, typos, abbreviations: ``text.py``),
then searched twice: BM25 over the passages' words and the exact nearest
neighbours of its embedding (cosine), both over the passage cache
(``passages.py``), which Chroma is opened to rebuild only when the index has
changed (a warm search imports no Chroma). The two rankings are fused by
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
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import Settings, get_settings
from agent.retrieval.index import KnowledgeIndex, KnowledgeIndexError, open_index
from agent.retrieval.passages import KeywordIndex, index_stamp
from agent.retrieval.text import (
    NormalizedQuery,
    content_tokens,
    normalize_query,
    tokenize,
)

__all__ = ["CALIBRATION_FILE", "FEATURES", "GATE_FEATURES", "Calibration",
           "HybridSearcher", "KeywordIndex", "SearchResult", "open_searcher"]

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


class HybridSearcher:
    """Search the knowledge index: BM25 + dense, fused and calibrated.

    Parameters
    ----------
    index : KnowledgeIndex, optional
        The index to search; default: opened by ``opener`` when the passage
        cache is stale (a warm search opens none).
    settings : Settings, optional
    calibration : Calibration, optional
        Default: ``knowledge/retrieval_calibration.json``.
    opener : callable, optional
        Opens the index (default ``KnowledgeIndex(settings)``; see
        :func:`open_searcher`).
    """

    def __init__(self, index: KnowledgeIndex | None = None,
                 settings: Settings | None = None,
                 calibration: Calibration | None = None,
                 opener: Callable[[], KnowledgeIndex] | None = None) -> None:
        self.settings = settings or (index.settings if index else get_settings())
        self._index = index
        self._opener = opener or (lambda: KnowledgeIndex(self.settings))
        self.calibration = calibration or Calibration.load(
            self.settings.knowledge_dir / CALIBRATION_FILE)
        self._keywords: KeywordIndex | None = None
        self._checked = 0.0
        self._lock = threading.RLock()  # the app's sessions search on threads
        self.refresh_seconds = 2.0

    @property
    def index(self) -> KnowledgeIndex:
        """The knowledge index (Chroma), opened on first use."""
        with self._lock:
            if self._index is None:
                self._index = self._opener()
            return self._index

    @property
    def embedder(self) -> Any:
        """The query embedder: the index's once it is open, else the process's
        (which loads without Chroma)."""
        if self._index is not None:
            return self._index.embedder
        from agent.retrieval.embeddings import get_embedder

        return get_embedder()

    def _identity(self) -> str:
        """Names the vectors :attr:`embedder` makes, without loading it."""
        if self._index is not None:
            return self._index.embedder_identity()
        from agent.retrieval.embeddings import default_identity

        return default_identity()

    @property
    def cache_path(self) -> Path:
        """Where the passage cache is kept for this collection and server."""
        where = self.settings.chroma_url or str(self.settings.chroma_dir)
        # The tokenizer's source is part of the key: changing it rebuilds.
        from agent.retrieval import text as tokenizer

        tag = hashlib.sha256(where.encode()
                             + Path(tokenizer.__file__).read_bytes()).hexdigest()[:12]
        return (self.settings.cache_dir
                / f"keywords-{self.settings.knowledge_collection}-{tag}")

    def keywords(self) -> KeywordIndex:
        """The visible passages (``passages.py``), checked for changes at most
        every ``refresh_seconds``: the cache while the index's stamp is the
        one it was last found current under, else read from Chroma."""
        with self._lock:
            now = time.monotonic()
            if (self._keywords is not None
                    and now - self._checked < self.refresh_seconds):
                return self._keywords
            self._checked = now
            self._keywords = self._warm() or self._from_index()
            return self._keywords

    def _warm(self) -> KeywordIndex | None:
        """The cached passages when the stamp says the index has not changed."""
        stamp = index_stamp(self.settings)
        if stamp is None:
            return None
        kw = self._keywords
        if kw is None or kw.stamp != stamp:
            kw = KeywordIndex.load(self.cache_path, stamp=stamp)
        # An empty index is opened: open_index ingests the shipped corpus.
        if kw is None or not kw.ids or kw.embedder != self._identity():
            return None
        return kw

    def _from_index(self) -> KeywordIndex:
        """The passages by Chroma's fingerprint: cached, else rebuilt; stamped."""
        index = self.index  # opening may ingest, re-embed, and writes the file
        stamp = index_stamp(self.settings)  # so it is read after opening
        fingerprint = index.fingerprint()
        identities = {f.embedder for f in index.files().values()}
        embedder = identities.pop() if len(identities) == 1 else repr(identities)
        kw = self._keywords
        if kw is None or (kw.fingerprint, kw.embedder) != (fingerprint, embedder):
            kw = KeywordIndex.load(self.cache_path, fingerprint, embedder)
        built = kw is None
        if kw is None:
            kw = KeywordIndex.build(index, fingerprint, embedder)
        kw.stamp = stamp
        # A read-only data directory only costs a rebuild next time.
        with contextlib.suppress(OSError):
            if built:
                kw.save(self.cache_path)
            else:
                kw.save_stamp(self.cache_path)
        return kw

    def invalidate(self) -> None:
        """Check the index for changes on the next search."""
        self._checked = 0.0

    def sources(self) -> list[str]:
        """The indexed files' names (what ``document`` filters by)."""
        return sorted({str(m.get("source", "")) for m in self.keywords().metas})

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
        # Dense side: the exact cosine similarity to every passage.
        dense = kw.similarities(self.embedder.embed([normalized.text])[0])
        dense_rank = kw.nearest(dense, mask, limit)
        # Reciprocal rank fusion.
        fused: dict[int, float] = {}
        for ranking in (top_bm25, dense_rank):
            for rank, row in enumerate(ranking):
                fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
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
            features = {"dense": float(dense[row]),
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


def open_searcher(settings: Settings, progress: bool = True,
                  notify: Callable[[str], None] | None = None) -> HybridSearcher:
    """A searcher over :func:`~agent.retrieval.index.open_index` (which ingests
    an empty index and re-embeds another embedder's vectors), opened only when
    the passage cache is stale: a search of an unchanged index opens no Chroma.
    """
    return HybridSearcher(settings=settings, opener=lambda: open_index(
        settings, progress=progress, notify=notify))
