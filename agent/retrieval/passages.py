"""The visible passages as arrays, cached on disk: all that a search reads.

:class:`KeywordIndex` holds every visible passage of the knowledge index
(``index.py``): its text and metadata, its words' BM25 scores and its
normalised embedding. It is built from Chroma, the store of record, and saved
in the data directory's cache; a query then reads only this:

- the keyword side sums precomputed BM25 scores over a sparse matrix, one
  column per token (bm25s builds it; :class:`Bm25Scores` scores it with numpy
  exactly as bm25s's numpy backend does, so a query needs no bm25s import);
- the dense side is the exact cosine similarity of the query to every
  passage, one matrix-vector product (Chroma's HNSW graph is not used at
  query time: for the shipped corpus and a 100k-passage index alike it is
  the exact ranking, in milliseconds).

The cache holds one content, named by the index fingerprint and the embedder
of its vectors (checked against Chroma when Chroma is open), and records the
index's stamp (:func:`index_stamp`: the change marker and Chroma's database
file) under which it was last found current: a new process whose stamp is
still that one trusts the cache without opening Chroma.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import Settings
from agent.retrieval.index import CHANGE_MARKER
from agent.retrieval.text import SYNONYMS, tokenize, words

#: Bumped when the files change shape: an older cache is rebuilt.
FORMAT = 2
_ARRAYS = ("vectors", "bm25_data", "bm25_indices", "bm25_indptr")


class Bm25Scores:
    """bm25s's eager index (CSC ``data``/``indices``/``indptr``, one column per
    token) and its scoring, without bm25s: the same float32 sums in the same
    order, so the scores are bit-for-bit those of ``bm25s.BM25.get_scores``."""

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
                 vocab_dict: dict[str, int], num_docs: int) -> None:
        self.data = data
        self.indices = indices
        self.indptr = indptr
        self.vocab_dict = vocab_dict
        self.num_docs = num_docs

    @classmethod
    def build(cls, corpus_tokens: list[list[str]]) -> Bm25Scores:
        """Index tokenised passages with bm25s (Lucene BM25, k1 1.5, b 0.75)."""
        import bm25s

        retriever = bm25s.BM25()
        retriever.index(corpus_tokens, show_progress=False)
        # Lucene's variant scores only the tokens a passage has (no
        # non-occurrence term to add back, unlike BM25L and BM25+).
        assert retriever.nonoccurrence_array is None
        s = retriever.scores
        return cls(s["data"], s["indices"], s["indptr"], dict(retriever.vocab_dict),
                   int(s["num_docs"]))

    def get_scores(self, tokens: list[str],
                   weight_mask: np.ndarray | None = None) -> np.ndarray:
        """Each passage's BM25 score for the query's tokens (unknown ones are
        left out), times ``weight_mask`` when given."""
        ids = [self.vocab_dict[t] for t in tokens if t in self.vocab_dict]
        scores = np.zeros(self.num_docs, dtype=np.float32)
        for token in ids:
            start, end = self.indptr[token], self.indptr[token + 1]
            np.add.at(scores, self.indices[start:end], self.data[start:end])
        if weight_mask is not None:
            scores *= weight_mask
        return scores


class KeywordIndex:
    """The visible passages: texts, metadata, BM25 scores, vectors.

    ``fingerprint`` and ``embedder`` name the content (the index fingerprint,
    the embedder that made the vectors); ``stamp`` is the index's stamp when
    it was last found current (None: not known, Chroma must be asked).
    """

    def __init__(self, fingerprint: str, ids: list[str], texts: list[str],
                 metas: list[dict[str, Any]], retriever: Bm25Scores | None,
                 vocabulary: frozenset[str], document_frequency: dict[str, int],
                 vectors: np.ndarray, embedder: str = "",
                 stamp: str | None = None) -> None:
        self.fingerprint = fingerprint
        self.ids = ids
        self.texts = texts
        self.metas = metas
        self.retriever = retriever
        self.vocabulary = vocabulary
        self.document_frequency = document_frequency
        self.vectors = vectors
        self.embedder = embedder
        self.stamp = stamp
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
    def build(cls, index: Any, fingerprint: str, embedder: str = "") -> KeywordIndex:
        """Read every visible passage and its vector from Chroma; index its words."""
        ids: list[str] = []
        texts: list[str] = []
        metas: list[dict[str, Any]] = []
        for cid, text, meta in index.all_passages():
            ids.append(cid)
            texts.append(text)
            metas.append(dict(meta))
        found = _vectors(index, ids)
        # A passage deleted since it was listed (a concurrent ingestion) is left
        # out; that ingestion's change marker makes this cache stale anyway.
        keep = [i for i, cid in enumerate(ids) if cid in found]
        ids = [ids[i] for i in keep]
        texts = [texts[i] for i in keep]
        metas = [metas[i] for i in keep]
        vocabulary: set[str] = set()
        corpus_tokens = []
        frequency: Counter[str] = Counter()
        for text, meta in zip(texts, metas, strict=True):
            full = cls.indexed_text(text, meta)
            vocabulary.update(words(full))
            tokens = tokenize(full)
            corpus_tokens.append(tokens)
            frequency.update(set(tokens))
        retriever = Bm25Scores.build(corpus_tokens) if ids else None
        vectors = _normalised(np.asarray([found[cid] for cid in ids], dtype=np.float32)
                              .reshape(len(ids), -1))
        return cls(fingerprint, ids, texts, metas, retriever, frozenset(vocabulary),
                   dict(frequency), vectors, embedder)

    # -- on disk -----------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write to ``directory`` (replaced atomically), with its stamp.

        The arrays' file names carry a token that ``passages.json`` names, so
        a reader never pairs one version's passages with another's arrays.
        """
        token = os.urandom(6).hex()
        tmp = directory.with_name(f"{directory.name}.{token}.tmp")
        tmp.mkdir(parents=True)
        try:
            bm25 = self.retriever
            empty = np.zeros(0, dtype=np.int32)
            arrays = {"vectors": self.vectors,
                      "bm25_data": bm25.data if bm25 else empty.astype(np.float32),
                      "bm25_indices": bm25.indices if bm25 else empty,
                      "bm25_indptr": bm25.indptr if bm25 else empty}
            for name, array in arrays.items():
                np.save(tmp / f"{name}-{token}.npy", array)
            (tmp / "passages.json").write_text(json.dumps({
                "format": FORMAT, "arrays": token, "fingerprint": self.fingerprint,
                "embedder": self.embedder, "ids": self.ids, "texts": self.texts,
                "metas": self.metas, "vocabulary": sorted(self.vocabulary),
                "document_frequency": self.document_frequency,
                "bm25_vocab": bm25.vocab_dict if bm25 else {}}))
            self._write_stamp(tmp)
            shutil.rmtree(directory, ignore_errors=True)
            tmp.rename(directory)  # fails when another process just saved: fine
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def save_stamp(self, directory: Path) -> None:
        """Record (only) the stamp under which this content was found current."""
        self._write_stamp(directory)

    def _write_stamp(self, directory: Path) -> None:
        path = directory / "stamp.json"
        tmp = path.with_name(f"stamp.{os.urandom(6).hex()}.tmp")
        tmp.write_text(json.dumps({"stamp": self.stamp, "fingerprint": self.fingerprint,
                                   "embedder": self.embedder}))
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: Path, fingerprint: str | None = None,
             embedder: str | None = None, stamp: str | None = None
             ) -> KeywordIndex | None:
        """The cached passages when they are of this ``fingerprint`` and
        ``embedder``, or (given ``stamp`` instead) were last found current
        under this stamp; else None (also for a missing or older cache)."""
        try:
            if stamp is not None:
                recorded = json.loads((directory / "stamp.json").read_text())
                if recorded["stamp"] != stamp:
                    return None
                fingerprint, embedder = recorded["fingerprint"], recorded["embedder"]
            data = json.loads((directory / "passages.json").read_text())
            if (data.get("format") != FORMAT or data["fingerprint"] != fingerprint
                    or data["embedder"] != embedder):
                return None
            arrays = {name: np.load(directory / f"{name}-{data['arrays']}.npy",
                                    mmap_mode="r" if name == "vectors" else None)
                      for name in _ARRAYS}
            retriever = None
            if data["ids"]:
                retriever = Bm25Scores(arrays["bm25_data"], arrays["bm25_indices"],
                                       arrays["bm25_indptr"], data["bm25_vocab"],
                                       len(data["ids"]))
            return cls(data["fingerprint"], data["ids"], data["texts"], data["metas"],
                       retriever, frozenset(data["vocabulary"]),
                       data["document_frequency"], arrays["vectors"],
                       data["embedder"], stamp)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, half written or from an older version: rebuilt

    # -- what a query reads --------------------------------------------------
    def similarities(self, vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of a query vector to every passage (float32)."""
        query = _normalised(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
        return np.asarray(self.vectors @ query, dtype=np.float32)

    def nearest(self, similarity: np.ndarray, mask: np.ndarray | None,
                limit: int) -> list[int]:
        """Rows of the ``limit`` most similar passages passing ``mask``, best
        first (ties by row, so the order is always the same)."""
        rows = np.arange(len(self.ids)) if mask is None else np.flatnonzero(mask)
        if rows.size > limit:
            rows = rows[np.argpartition(-similarity[rows], limit - 1)[:limit]]
        order = np.lexsort((rows, -similarity[rows]))
        return [int(r) for r in rows[order]]

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


def index_stamp(settings: Settings) -> str | None:
    """The on-disk index's state, read without opening Chroma: its change
    marker and the size and mtime of Chroma's database file (which any writer
    changes; opening Chroma does too). None for a Chroma server, whose other
    clients change it unseen, or an index not made yet."""
    if settings.chroma_url:
        return None
    try:
        database = (settings.chroma_dir / "chroma.sqlite3").stat()
    except OSError:
        return None
    try:
        marker = (settings.chroma_dir / CHANGE_MARKER).read_text()
    except OSError:
        marker = ""
    return f"{marker}:{database.st_size}:{database.st_mtime_ns}"


def _expansion_words(text: str) -> set[str]:
    """Tokens of the synonyms of phrases found in a text."""
    low = text.lower()
    out: set[str] = set()
    for group in SYNONYMS:
        if any(p in low for p in group):
            for phrase in group:
                out.update(tokenize(phrase))
    return out


def _vectors(index: Any, ids: list[str], page_size: int = 5000
             ) -> dict[str, np.ndarray]:
    """The stored embeddings of these passages, by id."""
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), page_size):
        got = index.chunks.get(ids=ids[start:start + page_size],
                               include=["embeddings"])
        for cid, vector in zip(got["ids"], got["embeddings"], strict=True):
            out[cid] = vector
    return out


def _normalised(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (Chroma's cosine space); zero rows stay zero."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.where(norms > 0, norms, 1.0)).astype(np.float32)
