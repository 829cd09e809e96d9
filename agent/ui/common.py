"""What the app's tabs share: the agent, the tool contexts, the store."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import Settings
from agent.engine import QAEngine
from agent.errors import QAAgentError, UserError
from agent.tools import ToolContext

log = logging.getLogger("agent.ui")

#: Upload types (checked again on the server: the browser's filter is advice).
DATA_SUFFIXES = (".csv", ".xlsx", ".xls", ".txt", ".zip")  # .zip: an MPC TDS tree
DOCUMENT_SUFFIXES = (".pdf", ".docx", ".md", ".txt", ".html", ".htm")
IMAGE_SUFFIXES = (".dcm", ".zip")  # image QA in the chat: DICOM images or one zip



class UploadError(UserError):
    """An uploaded file that the app does not accept; the message says why."""


@dataclass
class AppContext:
    """The engine behind one running app (shared by all sessions).

    Attributes
    ----------
    settings : Settings
    agent : agent.graph.Agent
        Serves every chat session; its ``llm`` is None when the backend
        could not be set up (``backend_error`` says why).
    data_ctx : ToolContext
        Tool context of the Data and Reports tabs: the agent's engine, its
        own charts (so a chart opened there never replaces one a chat is
        drawing).
    backend, model, backend_error : str
        Shown in the header.
    """

    settings: Settings
    agent: Any
    data_ctx: ToolContext
    backend: str = ""
    model: str = ""
    backend_error: str = ""
    #: Imports what arrives in ``settings.data_watch_dirs`` (None: no folders).
    data_watch: Any = None

    @property
    def ctx(self) -> ToolContext:
        """The agent's tool context."""
        return self.agent.ctx

    @property
    def engine(self) -> QAEngine:
        """The one engine the chat and the tabs share."""
        return self.agent.ctx.engine

    @property
    def searcher(self) -> Any:
        """The agent's hybrid searcher (its index is the Knowledge tab's)."""
        return self.agent.ctx.searcher

    def store(self) -> Any:
        """The measurement store (the engine's)."""
        return self.engine.store


def refresh(app: AppContext, data: bool = True, knowledge: bool = True) -> None:
    """Drop the caches that an import or a re-index made stale.

    Parameters
    ----------
    app : AppContext
    data : bool
        Measurements changed: the series caches are dropped.
    knowledge : bool
        Documents changed: the searcher re-reads the index on its next search.
    """
    app.engine.invalidate(data=data, knowledge=knowledge)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_app(settings: Settings, llm: Any = None, backend: str | None = None,
              model: str | None = None, warm: bool = True,
              notify: Callable[[str], None] | None = _say) -> AppContext:
    """Set up the agent for the app; a missing LLM does not stop the app.

    Parameters
    ----------
    settings : Settings
    llm : BaseChatModel, optional
        Use this model (tests); default: :func:`agent.llm.chat_model`. When
        the backend cannot be set up (``LLMError``, ``ModelSetupError``) the
        agent runs without it: analyses, fleet and data questions still work.
    backend, model : str, optional
        Names shown with ``llm``.
    warm : bool
        Open the knowledge index now (ingesting the corpus into an empty one)
        and load the embedded model, so the first question is not slow.
    notify : callable, optional
        Receives progress lines (default: stderr).
    """
    # why long: the start-up sequence (backend, engine, index, model) in the order a
    # failure must be reported.
    from agent.graph import Agent
    from agent.llm import LLMError, ModelSetupError

    error = ""
    if llm is None:
        from agent.llm import chat_model

        try:
            llm, backend, model = chat_model(settings, progress=False)
        except (LLMError, ModelSetupError, ValueError, OSError) as exc:
            llm, error = None, str(exc) or type(exc).__name__
            backend = backend or settings.llm_backend
            model = model or ""
            if notify:
                notify(f"LLM backend unavailable: {error}")
    engine = QAEngine(settings)
    ctx = ToolContext(engine=engine)
    agent = Agent(llm, ctx, backend or "", model or "", unavailable=error)
    app = AppContext(settings, agent, ToolContext(engine=engine),
                     backend or "", model or "", error)
    if settings.data_watch_dirs:
        from agent.data_watch import DataWatch

        app.data_watch = DataWatch(engine, list(settings.data_watch_dirs))
    if warm:
        from agent.retrieval.index import open_index
        from agent.retrieval.search import HybridSearcher

        try:
            engine.searcher = HybridSearcher(open_index(settings, progress=False,
                                                        notify=notify))
            engine.searcher.keywords()  # builds or loads the keyword index now
        except QAAgentError as exc:  # the chat says so at the first question
            log.warning("knowledge index not opened: %s", exc)
        loader = getattr(llm, "load", None)
        if callable(loader):
            try:
                loader()
            except (QAAgentError, RuntimeError, OSError, ValueError) as exc:
                app.backend_error = f"the model could not be loaded: {exc}"
                agent.llm = None
                agent.unavailable = app.backend_error
                if notify:
                    notify(f"LLM backend unavailable: {app.backend_error}")
    return app


def file_name(path: str | Path) -> str:
    """The name a user gave an uploaded file (Gradio keeps it as the basename)."""
    return Path(path).name


def check_upload(path: str | Path | None, allowed: tuple[str, ...],
                 max_mb: float) -> Path:
    """An uploaded file's path, after checking its type and size.

    Raises
    ------
    UploadError
        No file, a type not in ``allowed`` or a file above ``max_mb``.
    """
    if not path:
        raise UploadError("choose a file first")
    path = Path(path)
    if path.suffix.lower() not in allowed:
        raise UploadError(f"{path.name}: {path.suffix or 'no extension'} files are "
                          f"not accepted here; use {', '.join(allowed)}")
    size = path.stat().st_size
    if size > max_mb * 1024 * 1024:
        raise UploadError(f"{path.name}: {size / 1e6:.1f} MB is above the "
                          f"{max_mb:g} MB limit (max_upload_mb)")
    return path
