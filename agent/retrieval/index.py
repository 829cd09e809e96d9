"""The knowledge index: passages in Chroma, files tracked by content hash.

Two Chroma collections hold the index: ``<name>`` with one record per passage
(embedding, text, metadata) and ``<name>-files`` with one record per ingested
file (its sha256 and passage count). A file's passages carry the file's hash
in their ids and metadata, and search only shows passages whose hash is the
one recorded for their file. Re-ingesting a changed file therefore (1) adds
the new passages, (2) records the new hash, (3) deletes the old passages; an
ingestion interrupted at any point leaves either the old or the new version
visible, never a mixture, and the next run finishes the job.

Chroma runs in-process on disk (``PersistentClient`` in the data directory)
or, when ``chroma_url`` is set, as a server reached by ``HttpClient``.
Embeddings are always computed here and passed in: Chroma's own default
embedding function (which would download a model) is never used.

The index never mixes vectors of two embedders: each file record names the
embedder that made its passages' vectors (``Embedder.identity``, e.g.
``all-MiniLM-L6-v2 onnx-int8 80c1ac02150c``), and ``sync`` and
``open_index`` re-embed, from the stored text, the passages of every file
recorded with another one. A re-embedding interrupted half-way leaves that
file recorded under the old embedder, so the next run redoes it.

Every change (a file stored, removed or re-embedded) rewrites a change
marker beside Chroma's files, before and after it: with Chroma's database
file it makes the stamp by which a search trusts its passage cache without
opening Chroma (``passages.py``, ``index_stamp``).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.config import Settings, get_settings
from agent.errors import ServiceError
from agent.retrieval.chunking import Passage, split_document
from agent.retrieval.documents import (
    SUPPORTED_SUFFIXES,
    DocumentError,
    ParsedDocument,
    load_document,
)

DEFAULT_COLLECTION = "linac-qa-knowledge"
_BATCH = 256
#: Rewritten before and after every change of an on-disk index.
CHANGE_MARKER = "qa-agent-changes"


class KnowledgeIndexError(ServiceError):
    """The index cannot be reached or used; the message says what to do."""


@dataclass(frozen=True)
class IndexedFile:
    """One ingested file as recorded in the index."""

    path: str
    source: str
    title: str
    sha256: str
    chunks: int
    pages: int
    ingested_at: str
    embedder: str = ""


@dataclass
class IngestReport:
    """What one ingestion run did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    pages: int = 0
    reembedded: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the terminal."""
        text = (f"{len(self.added)} added, {len(self.updated)} updated, "
                f"{len(self.unchanged)} unchanged, {len(self.removed)} removed; "
                f"{self.chunks_added} passages indexed, {self.chunks_removed} "
                f"removed ({self.seconds:.1f} s)")
        if self.reembedded:
            text += f"; {self.reembedded} passages re-embedded (new embedding model)"
        if self.errors:
            text += f"; {len(self.errors)} file(s) could not be read"
        return text

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"added": self.added, "updated": self.updated,
                "unchanged": self.unchanged, "removed": self.removed,
                "errors": [{"file": f, "reason": r} for f, r in self.errors],
                "chunks_added": self.chunks_added,
                "chunks_removed": self.chunks_removed,
                "pages": self.pages, "reembedded": self.reembedded,
                "seconds": round(self.seconds, 3)}


def chroma_client(settings: Settings) -> Any:
    """Chroma client from the settings: HTTP server or on-disk, telemetry off.

    Raises
    ------
    KnowledgeIndexError
        When the server cannot be reached.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        parts = urlsplit(settings.chroma_url)
        if not parts.hostname:
            raise KnowledgeIndexError(
                f"chroma_url '{settings.chroma_url}' has no host; "
                f"write it as http://HOST:PORT")
        try:
            client = chromadb.HttpClient(
                host=parts.hostname, port=parts.port or 8000,
                ssl=parts.scheme == "https", settings=chroma_settings)
            client.heartbeat()
        except Exception as exc:  # chromadb raises several transport errors
            raise KnowledgeIndexError(
                f"the Chroma server at {settings.chroma_url} does not answer "
                f"({type(exc).__name__}); start it (chroma run --host 127.0.0.1 "
                f"--port {parts.port or 8000}) or unset chroma_url") from None
        return client
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(str(settings.chroma_dir),
                                     settings=chroma_settings)


def iter_document_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Supported files under the given files and folders, sorted, hidden skipped."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                rel = child.relative_to(path)
                if (child.is_file() and child.suffix.lower() in SUPPORTED_SUFFIXES
                        and not any(p.startswith((".", "~$")) for p in rel.parts)):
                    yield child
        else:
            yield path


class KnowledgeIndex:
    """Passages of the shipped corpus and the department's documents.

    Parameters
    ----------
    settings : Settings, optional
        Where Chroma lives (``chroma_dir`` or ``chroma_url``) and the
        collection name.
    embedder : object with ``embed(list[str]) -> ndarray``, optional
        Defaults to the packaged all-MiniLM-L6-v2 (loaded on first use).
    """

    def __init__(self, settings: Settings | None = None, embedder: Any = None) -> None:
        self.settings = settings or get_settings()
        self._embedder = embedder
        self.client = chroma_client(self.settings)
        name = self.settings.knowledge_collection
        # embedding_function=None: embeddings always come from this module.
        self.chunks = self.client.get_or_create_collection(
            name, embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}})
        self.file_records = self.client.get_or_create_collection(
            f"{name}-files", embedding_function=None)

    @property
    def embedder(self) -> Any:
        """The embedding model, loaded on first use."""
        if self._embedder is None:
            from agent.retrieval.embeddings import get_embedder

            self._embedder = get_embedder()
        return self._embedder

    # -- what is indexed -------------------------------------------------
    def files(self) -> dict[str, IndexedFile]:
        """Ingested files by absolute path."""
        got = self.file_records.get(include=["metadatas"])
        out = {}
        for path, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
            out[path] = IndexedFile(path, str(meta["source"]), str(meta["title"]),
                                    str(meta["sha256"]), int(meta["chunks"]),
                                    int(meta["pages"]), str(meta["ingested_at"]),
                                    str(meta.get("embedder", "")))
        return out

    def fingerprint(self) -> str:
        """Changes whenever any file is added, changed or removed."""
        items = sorted((p, f.sha256) for p, f in self.files().items())
        return hashlib.sha256(repr(items).encode()).hexdigest()[:16]

    def count(self) -> int:
        """Passages stored (including any left over by an interrupted run)."""
        return self.chunks.count()

    # -- ingestion --------------------------------------------------------
    def sync(self, paths: Iterable[Path], progress: bool = True,
             prune: bool = True) -> IngestReport:
        """Bring the index up to date with files and folders.

        Unchanged files (same sha256) are skipped, changed files replaced and,
        with ``prune``, indexed files that were inside a given folder (or were
        given themselves) and no longer exist are removed. A file that cannot
        be read is reported in ``errors`` and the rest goes on.
        """
        # why long: the add/replace/remove steps must run in this order for an
        # interrupted run to stay consistent (see the module docstring).
        from agent.qa.store import file_sha256  # SQLAlchemy: not for a search

        started = time.perf_counter()
        report = IngestReport()
        roots = [Path(p).resolve() for p in paths]
        known = self.files()
        # Passages beyond those recorded mean an earlier run was interrupted:
        # only then are unchanged files checked for leftovers (one delete each).
        leftovers = self.chunks.count() != sum(f.chunks for f in known.values())
        wanted: list[Path] = []
        for path in iter_document_files(roots):
            if path.exists():
                wanted.append(path)
            elif str(path) not in known:
                report.errors.append((str(path), "no such file or folder"))
        if prune:
            # Indexed files that were given, or were inside a given folder,
            # and no longer exist.
            for indexed in sorted(known):
                inside = any(Path(indexed).is_relative_to(r) for r in roots)
                if inside and not Path(indexed).exists():
                    report.chunks_removed += self._remove(indexed, known[indexed])
                    report.removed.append(indexed)
        bar = _progress(len(wanted), progress)
        for path in wanted:
            key = str(path)
            bar.set_postfix_str(path.name[:30], refresh=False)
            try:
                sha = file_sha256(path)
            except OSError as exc:
                report.errors.append((key, f"cannot be read ({exc.strerror or exc})"))
                bar.update(1)
                continue
            previous = known.get(key)
            if previous is not None and previous.sha256 == sha:
                report.unchanged.append(key)
                if leftovers:
                    self._delete_stale(key, sha)  # finishes an interrupted run
                bar.update(1)
                continue
            try:
                document = load_document(path)
                passages = split_document(document, self.settings.chunk_words)
            except DocumentError as exc:
                report.errors.append((key, str(exc).removeprefix(f"{path}: ")))
                bar.update(1)
                continue
            if not passages:
                report.errors.append((key, "no text found in the file"))
                bar.update(1)
                continue
            self._store(path, sha, document, passages)
            report.chunks_added += len(passages)
            report.pages += document.pages
            if previous is None:
                report.added.append(key)
            else:
                report.chunks_removed += previous.chunks
                report.updated.append(key)
            bar.update(1)
        bar.close()
        report.reembedded = self.reembed()
        report.seconds = time.perf_counter() - started
        return report

    def _store(self, path: Path, sha: str, document: ParsedDocument,
               passages: list[Passage]) -> None:
        self._changed()
        key = str(path)
        ids = [f"{sha[:16]}:{i:05d}:{hashlib.sha1(key.encode()).hexdigest()[:8]}"
               for i in range(len(passages))]
        metadatas = []
        for i, p in enumerate(passages):
            meta: dict[str, Any] = {
                "path": key, "source": path.name, "title": document.title,
                "section": p.section, "kind": p.kind, "frequency": p.frequency,
                "sha256": sha, "position": i}
            if p.page is not None:
                meta["page"] = p.page
            metadatas.append(meta)
        texts = [p.indexed_text(document.title) for p in passages]
        for start in range(0, len(passages), _BATCH):
            end = start + _BATCH
            vectors = self.embedder.embed(texts[start:end])
            self.chunks.upsert(ids=ids[start:end], embeddings=vectors,
                               documents=[p.text for p in passages[start:end]],
                               metadatas=metadatas[start:end])
        self.file_records.upsert(ids=[key], embeddings=[[1.0]], metadatas=[{
            "source": path.name, "title": document.title, "sha256": sha,
            "chunks": len(passages), "pages": document.pages,
            "ingested_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "embedder": self.embedder_identity()}])
        self._delete_stale(key, sha)
        self._changed()

    # -- which embedder made the vectors ----------------------------------
    def embedder_identity(self) -> str:
        """Names the vectors this index's embedder makes ('' when it does not
        say: a test double). The default embedder's is read from its export's
        manifest, without loading the model."""
        if self._embedder is None:
            from agent.retrieval.embeddings import default_identity

            if identity := default_identity():
                return identity
        return str(getattr(self.embedder, "identity", "") or "")

    def stale_files(self) -> list[IndexedFile]:
        """Files whose vectors another embedder made (none for an anonymous one)."""
        identity = self.embedder_identity()
        if not identity:
            return []
        return [f for f in self.files().values() if f.embedder != identity]

    def reembed(self) -> int:
        """Re-embed the passages of :meth:`stale_files` from their stored text
        (title, section and passage, as first embedded); returns how many."""
        done = 0
        for record in self.stale_files():
            got = self.chunks.get(
                where={"$and": [{"path": record.path}, {"sha256": record.sha256}]},
                include=["documents", "metadatas"])
            texts = [_embedded_text(text, meta) for text, meta
                     in zip(got["documents"], got["metadatas"], strict=True)]
            self._changed()
            for start in range(0, len(texts), _BATCH):
                end = start + _BATCH
                self.chunks.update(ids=got["ids"][start:end],
                                   embeddings=self.embedder.embed(texts[start:end]))
            self.file_records.update(ids=[record.path], metadatas=[
                {"embedder": self.embedder_identity()}])
            self._changed()
            done += len(texts)
        return done

    def _delete_stale(self, key: str, sha: str) -> None:
        self._changed()
        self.chunks.delete(where={"$and": [{"path": key}, {"sha256": {"$ne": sha}}]})
        self._changed()

    def _changed(self) -> None:
        """Write a new change marker (see the module docstring)."""
        if self.settings.chroma_url:
            return  # a server's other clients would not see it: never trusted
        marker = self.settings.chroma_dir / CHANGE_MARKER
        tmp = marker.with_name(f"{CHANGE_MARKER}.{os.getpid()}.tmp")
        tmp.write_text(os.urandom(8).hex())
        os.replace(tmp, marker)

    def remove(self, path: Path | str) -> int:
        """Remove one file's passages and record; returns the passages removed."""
        known = self.files()
        key = str(path) if str(path) in known else str(Path(path).resolve())
        return self._remove(key, known.get(key))

    def _remove(self, key: str, record: IndexedFile | None) -> int:
        self._changed()
        self.file_records.delete(ids=[key])
        self.chunks.delete(where={"path": key})
        self._changed()
        return record.chunks if record else 0

    def all_passages(self, page_size: int = 5000) -> Iterator[tuple[str, str, dict]]:
        """(id, text, metadata) of every visible passage (current file hashes)."""
        current = {p: f.sha256 for p, f in self.files().items()}
        offset = 0
        while True:
            got = self.chunks.get(include=["documents", "metadatas"],
                                  limit=page_size, offset=offset)
            if not got["ids"]:
                return
            for cid, text, meta in zip(got["ids"], got["documents"],
                                       got["metadatas"], strict=True):
                if current.get(str(meta.get("path"))) == meta.get("sha256"):
                    yield cid, text, meta
            offset += len(got["ids"])


def _embedded_text(text: str, meta: dict[str, Any]) -> str:
    """What was embedded for a stored passage (``Passage.indexed_text``)."""
    head = " > ".join(p for p in (str(meta.get("title", "")),
                                  str(meta.get("section", ""))) if p)
    return f"{head}\n{text}" if head else text


def default_document_roots(settings: Settings) -> list[Path]:
    """The shipped corpus and the department's watch folder (created if missing)."""
    settings.watch_dir.mkdir(parents=True, exist_ok=True)
    return [settings.corpus_dir, settings.watch_dir]


def open_index(settings: Settings, progress: bool = True,
               notify: Any = None) -> KnowledgeIndex:
    """The knowledge index; an empty one first gets the default documents.

    Parameters
    ----------
    settings : Settings
    progress : bool
        Progress bar on stderr while the first ingestion runs.
    notify : callable, optional
        Receives a line before and after that ingestion (the CLI prints them).
    """
    index = KnowledgeIndex(settings)
    if not index.files():
        if notify:
            notify("the knowledge index is empty: ingesting the shipped corpus "
                   f"and {settings.watch_dir}")
        report = index.sync(default_document_roots(settings), progress=progress)
        if notify:
            notify(report.summary())
    elif stale := index.stale_files():
        if notify:
            notify(f"{len(stale)} indexed file(s) were embedded by another model: "
                   "re-embedding their passages")
        done = index.reembed()
        if notify:
            notify(f"{done} passages re-embedded")
    return index


class _NoBar:
    def update(self, n: int = 1) -> None:
        """Nothing to show."""

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to show."""


def _progress(total: int, show: bool) -> Any:
    if not show or total == 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, desc="ingest",
                dynamic_ncols=True)
