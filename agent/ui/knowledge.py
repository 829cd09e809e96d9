"""The Knowledge tab: indexed documents, upload, re-index, remove, search.

Uploaded documents are copied into the department's watch folder
(``documents_dir``) and indexed from there, so ``qa-agent ingest`` and the
app see the same files. Removing a department document takes it out of the
index and moves the file to ``<watch folder>/.removed/`` (hidden folders are
not indexed), so a re-index does not bring it back and nothing is lost.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from agent.errors import QAAgentError
from agent.retrieval.index import IngestReport, default_document_roots
from agent.ui.common import DOCUMENT_SUFFIXES, AppContext, check_upload, refresh

DOCUMENT_HEADERS = ["document", "title", "passages", "pages", "indexed", "folder"]


def _index(app: AppContext) -> Any:
    return app.searcher.index


def document_rows(app: AppContext) -> list[list[Any]]:
    """The indexed documents with their passage counts and dates."""
    rows = []
    watch = app.settings.watch_dir.resolve()
    for path, f in sorted(_index(app).files().items(), key=lambda kv: kv[1].source):
        folder = "department" if Path(path).is_relative_to(watch) else (
            "shipped corpus" if Path(path).is_relative_to(
                app.settings.corpus_dir.resolve()) else str(Path(path).parent))
        rows.append([f.source, f.title, f.chunks, f.pages,
                     f.ingested_at.replace("T", " ")[:16], folder])
    return rows


def document_choices(app: AppContext) -> list[tuple[str, str]]:
    """(label, path) of every indexed document, for the remove picker."""
    return [(f"{f.source} ({f.chunks} passages)", path)
            for path, f in sorted(_index(app).files().items(),
                                  key=lambda kv: kv[1].source)]


def add_documents(app: AppContext, paths: list[str | Path],
                  progress: bool = False) -> tuple[IngestReport, list[str]]:
    """Copy uploaded documents into the watch folder and index them.

    Parameters
    ----------
    app : AppContext
    paths : list of str or Path
        Uploaded files (PDF, DOCX, Markdown, text, HTML).
    progress : bool
        Show a tqdm bar (the app's progress bar follows it).

    Returns
    -------
    tuple of (IngestReport, list of str)
        What the indexing did, and the files refused (with why).
    """
    refused: list[str] = []
    copied: list[Path] = []
    watch = app.settings.watch_dir
    watch.mkdir(parents=True, exist_ok=True)
    for raw in paths:
        try:
            path = check_upload(raw, DOCUMENT_SUFFIXES, app.settings.max_upload_mb)
        except ValueError as exc:
            refused.append(str(exc))
            continue
        target = watch / Path(path).name
        shutil.copyfile(path, target)
        copied.append(target)
    report = _index(app).sync(copied, progress=progress, prune=False) if copied \
        else IngestReport()
    refresh(app, data=False, knowledge=True)
    return report, refused


def reindex(app: AppContext, progress: bool = False) -> IngestReport:
    """Bring the index up to date with the corpus and the watch folder."""
    report = _index(app).sync(default_document_roots(app.settings),
                              progress=progress)
    refresh(app, data=False, knowledge=True)
    return report


def remove_document(app: AppContext, path: str) -> str:
    """Take one document out of the index; say what was done.

    A file in the watch folder is moved to ``.removed/`` beside it so the next
    re-index does not add it again; a shipped corpus file stays on disk and
    comes back at the next re-index.
    """
    if not path:
        return "Choose a document first."
    index = _index(app)
    known = index.files()
    if path not in known:
        return "That document is not indexed (any more)."
    name = known[path].source
    removed = index.remove(path)
    refresh(app, data=False, knowledge=True)
    file = Path(path)
    watch = app.settings.watch_dir.resolve()
    if file.is_relative_to(watch) and file.exists():
        parked = watch / ".removed"
        parked.mkdir(exist_ok=True)
        shutil.move(str(file), parked / file.name)
        return (f"Removed {name} ({removed} passages); the file was moved to "
                f"{parked}.")
    return (f"Removed {name} ({removed} passages) from the index; it is part of "
            "the shipped corpus, so a re-index adds it again.")


def search_markdown(app: AppContext, query: str, k: int = 5) -> str:
    """Search results as Markdown (document, section, page, relevance, text)."""
    query = (query or "").strip()
    if len(query) < 2:
        return "*Type a question or keywords.*"
    try:
        results = app.searcher.search(query, k=k)
    except QAAgentError as exc:  # KnowledgeIndexError: say so
        return f"⚠ The search failed: {exc}"
    if not results:
        return "Nothing relevant found in the indexed documents."
    parts = []
    for n, r in enumerate(results, start=1):
        where = r.source + (f", {r.section}" if r.section else "") + (
            f", page {r.page}" if r.page else "")
        text = r.text.replace("\n", "\n> ")
        parts.append(f"**[{n}] {where}** (relevance {r.score:.2f})\n\n> {text}")
    return "\n\n".join(parts)


def ingest_summary(report: IngestReport, refused: list[str] | None = None) -> str:
    """An ingestion report in words, with unreadable and refused files."""
    lines = [report.summary()]
    lines += [f"- {Path(f).name}: {reason}" for f, reason in report.errors]
    lines += [f"- {reason}" for reason in refused or []]
    return "\n".join(lines)
