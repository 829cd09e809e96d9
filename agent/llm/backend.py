"""Choosing the backend: Ollama when it answers with the model, else embedded.

``llm_backend = "auto"`` (the default) takes Ollama when ``GET {host}/api/tags``
answers within a second and lists the configured model, and the embedded model
otherwise. Only the configured host is contacted, and without proxies. The
choice is reported (:func:`_report`): logged at INFO when logging would show
it, else written to stderr. With ``lazy=True`` the model itself is made on
first use (:class:`LazyChatModel`): a request that code answers alone never
imports LangChain's model classes.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.llm.errors import LLMError
from agent.llm.weights import DEFAULT_MODEL, ensure_model

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from agent.config import Settings
    from agent.llm.chat_model import EmbeddedChatModel

#: The package's logger (tests and users configure "agent.llm").
logger = logging.getLogger("agent.llm")


def _no_proxy_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _same_model(listed: str, wanted: str) -> bool:
    if listed == wanted:
        return True
    return ":" not in wanted and listed == f"{wanted}:latest"


def ollama_models(host: str, timeout: float = 1.0) -> list[str] | None:
    """Names listed by ``GET {host}/api/tags``, or None when nothing answers.

    Parameters
    ----------
    host : str
        The Ollama base URL, e.g. ``http://127.0.0.1:11434``.
    timeout : float
        Seconds to wait.

    Returns
    -------
    list of str or None
    """
    url = host.rstrip("/") + "/api/tags"
    try:
        with _no_proxy_opener().open(url, timeout=timeout) as response:
            document = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    names = []
    for item in document.get("models") or []:
        for key in ("name", "model"):
            if isinstance(item.get(key), str):
                names.append(item[key])
    return names


def ollama_available(host: str, model: str, timeout: float = 1.0) -> bool:
    """Whether an Ollama server at ``host`` answers and lists ``model``."""
    names = ollama_models(host, timeout)
    return bool(names) and any(_same_model(n, model) for n in names or [])


def ollama_chat_model(settings: Settings | Any, **kwargs: Any) -> BaseChatModel:
    """``ChatOllama`` for the configured host and model.

    Temperature 0, seed 42 and an 8192-token context (Ollama's default context
    is too short for retrieved passages) unless ``kwargs`` say otherwise.

    Environment proxies are ignored: only the configured host is contacted.

    Parameters
    ----------
    settings : Settings
        Gives ``ollama_host`` and ``ollama_model``.
    **kwargs
        More ``ChatOllama`` fields (``num_ctx``, ``num_predict`` ...).

    Returns
    -------
    BaseChatModel
    """
    from langchain_ollama import ChatOllama

    options: dict[str, Any] = {"temperature": 0.0, "seed": 42, "num_ctx": 8192}
    options.update(kwargs)
    return ChatOllama(
        model=getattr(settings, "ollama_model", "qwen2.5:7b-instruct"),
        base_url=getattr(settings, "ollama_host", "http://127.0.0.1:11434"),
        client_kwargs={"trust_env": False},
        **options,
    )


def embedded_chat_model(settings: Settings | Any, progress: bool = True,
                        **kwargs: Any) -> EmbeddedChatModel:
    """The embedded model named by ``llm_model``, assembled if needed.

    Parameters
    ----------
    settings : Settings
        Gives ``llm_model``, ``model_dir`` and ``llm_threads`` (optional;
        default: the CPU count).
    progress : bool
        Show the assembly progress bar on stderr.
    **kwargs
        More :class:`EmbeddedChatModel` fields.

    Returns
    -------
    EmbeddedChatModel
        Not loaded yet: the model loads on the first call.
    """
    from agent.llm.chat_model import EmbeddedChatModel  # LangChain: when needed

    name = getattr(settings, "llm_model", DEFAULT_MODEL) or DEFAULT_MODEL
    path = ensure_model(settings, name, progress=progress)
    kwargs.setdefault("threads", getattr(settings, "llm_threads", None) or None)
    return EmbeddedChatModel(model_path=path, model_name=name, **kwargs)


class LazyChatModel:
    """A chat model made by ``make`` on first use, then standing for it (every
    attribute is the model's): ``qa-agent ask`` builds its agent with one, so
    a request code answers alone imports no LangChain model class."""

    def __init__(self, make: Callable[[], BaseChatModel]) -> None:
        self._make = make
        self._made: BaseChatModel | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> BaseChatModel:
        """The model, made now if it is not yet."""
        with self._lock:
            if self._made is None:
                self._made = self._make()
            return self._made

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not the model's: copy, pickle and the like
            raise AttributeError(name)
        return getattr(self.model, name)


def _report(message: str) -> None:
    """Log at INFO when logging would show it, else write to stderr."""
    if logger.hasHandlers() and logger.isEnabledFor(logging.INFO):
        logger.info(message)
    else:
        print(message, file=sys.stderr)


def _check_ollama(host: str, model: str) -> None:
    """Check an Ollama asked for explicitly, and report it.

    Said now, not at the first question, when the server is down or lacks the
    model.

    Raises
    ------
    LLMError
        When the server does not answer or does not list ``model``.
    """
    names = ollama_models(host, timeout=2.0)
    if names is None:
        raise LLMError(f"Ollama at {host} does not answer: start it "
                       "('ollama serve') or set llm_backend to embedded "
                       "or auto (QA_AGENT_LLM_BACKEND)")
    if not any(_same_model(n, model) for n in names):
        raise LLMError(f"Ollama at {host} does not have {model} (it has: "
                       f"{', '.join(names) or 'none'}); run 'ollama pull "
                       f"{model}' or set ollama_model")
    _report(f"LLM: Ollama at {host}, model {model}")


def chat_model(settings: Settings | Any, progress: bool = True, lazy: bool = False
               ) -> tuple[BaseChatModel, str, str]:
    """The chat model the settings ask for.

    ``llm_backend``: ``ollama``; ``embedded``; or ``auto`` = Ollama when
    ``GET {ollama_host}/api/tags`` answers within a second and lists
    ``ollama_model``, else embedded. The choice is reported on stderr.

    Parameters
    ----------
    settings : Settings
        ``llm_backend``, ``ollama_host``, ``ollama_model``, ``llm_model``,
        ``model_dir``.
    progress : bool
        Show the model assembly progress bar on stderr.
    lazy : bool
        Return a :class:`LazyChatModel`: the backend is chosen, checked and
        reported (and the GGUF assembled) now, the model made on first use.

    Returns
    -------
    tuple of (BaseChatModel, str, str)
        The model, the backend (``ollama`` or ``embedded``) and the model name.

    Raises
    ------
    ValueError
        For an unknown ``llm_backend``.
    LLMError
        When ``llm_backend`` is ``ollama`` and the server is down or lacks the
        model.
    ModelSetupError
        When the embedded model is needed but cannot be assembled.
    """
    backend = (getattr(settings, "llm_backend", "auto") or "auto").lower()
    host = getattr(settings, "ollama_host", "http://127.0.0.1:11434")
    model = getattr(settings, "ollama_model", "qwen2.5:7b-instruct")
    if backend not in ("auto", "ollama", "embedded"):
        raise ValueError(f"llm_backend must be auto, ollama or embedded, "
                         f"not {backend!r}")
    if backend == "auto":
        if ollama_available(host, model):
            backend = "ollama"
            _report(f"LLM: Ollama at {host} lists {model}: using it")
        else:
            backend = "embedded"
            _report(f"LLM: no Ollama with {model} at {host}: using the embedded "
                    "llama.cpp model")
    if backend == "ollama":
        if getattr(settings, "llm_backend", "auto") == "ollama":
            _check_ollama(host, model)
        if lazy:
            return LazyChatModel(lambda: ollama_chat_model(settings)), "ollama", model
        return ollama_chat_model(settings), "ollama", model
    name = getattr(settings, "llm_model", DEFAULT_MODEL) or DEFAULT_MODEL
    path = ensure_model(settings, name, progress=progress)  # its errors: now
    _report(f"LLM: embedded llama.cpp, {name} ({path})")
    # ensure_model again on first use: its marker makes that immediate.
    make = lambda: embedded_chat_model(settings, progress=progress)  # noqa: E731
    return (LazyChatModel(make) if lazy else make()), "embedded", name
