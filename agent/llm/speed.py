"""Set-up and speed of the embedded model: the body of ``qa-agent model``.

:func:`setup_model` assembles and checks the GGUF; with ``--bench`` it also
loads the model and :func:`measure_speed` times prompt processing, generation
and the first token.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from agent.llm.chat_model import EmbeddedChatModel
from agent.llm.weights import DEFAULT_MODEL, ensure_model, model_spec

if TYPE_CHECKING:
    from agent.config import Settings


def measure_speed(llm: EmbeddedChatModel, prompt: str | None = None,
                  max_tokens: int = 64) -> dict[str, float]:
    """Prompt and generation speed and time to first token of an embedded model.

    Parameters
    ----------
    llm : EmbeddedChatModel
        The model (loaded if it is not).
    prompt : str, optional
        The user message (default: a ~150-token QA question).
    max_tokens : int
        Tokens to generate.

    Returns
    -------
    dict
        ``load_s``, ``prompt_tokens``, ``prompt_tok_s``, ``gen_tokens``,
        ``gen_tok_s``, ``ttft_s``, ``total_s``.
    """
    started = time.perf_counter()
    engine = llm.engine
    load = time.perf_counter() - started
    prompt = prompt or (
        "You are a medical physics assistant. A TrueBeam linac's daily 6X output "
        "readings, as percent deviation from baseline, over the last ten days "
        "were 0.1, 0.3, 0.2, 0.4, 0.6, 0.5, 0.7, 0.9, 0.8 and 1.1. The TG-142 "
        "daily output tolerance is 3 percent. Explain in plain words, in about "
        "fifty words, whether the output is drifting and what a physicist "
        f"should check next. Request id {uuid.uuid4().hex[:8]}.")
    request = {"messages": [{"role": "user", "content": prompt}],
               "max_tokens": max_tokens, "temperature": 0.0, "seed": 42,
               "cache_prompt": False}
    t0 = time.perf_counter()
    first = None
    timings: dict[str, Any] = {}
    for piece in engine.stream(request):
        choices = piece.get("choices") or []
        if first is None and choices and (choices[0].get("delta") or {}).get(
                "content"):
            first = time.perf_counter() - t0
        timings = piece.get("timings") or timings
    total = time.perf_counter() - t0
    return {
        "load_s": round(load, 2),
        "prompt_tokens": int(timings.get("prompt_n", 0)),
        "prompt_tok_s": round(float(timings.get("prompt_per_second", 0.0)), 1),
        "gen_tokens": int(timings.get("predicted_n", 0)),
        "gen_tok_s": round(float(timings.get("predicted_per_second", 0.0)), 1),
        "ttft_s": round(first or total, 2),
        "total_s": round(total, 2),
    }


def setup_model(settings: Settings | Any, name: str | None = None,
                bench: bool = False, progress: bool = True) -> dict[str, Any]:
    """Assemble (and check) the embedded model; optionally measure its speed.

    The body of ``qa-agent model``.

    Parameters
    ----------
    settings : Settings
        Gives ``model_dir`` and the default ``llm_model``.
    name : str, optional
        Model to set up (default: ``llm_model``).
    bench : bool
        Load the model and measure prompt/generation speed.
    progress : bool
        Progress bars on stderr.

    Returns
    -------
    dict
        ``name``, ``title``, ``path``, ``size``, ``sha256`` and, with
        ``bench``, ``speed`` (see :func:`measure_speed`).

    Raises
    ------
    ModelSetupError
        When a part package is missing or corrupted.
    """
    name = name or getattr(settings, "llm_model", DEFAULT_MODEL) or DEFAULT_MODEL
    spec = model_spec(name)
    path = ensure_model(settings, name, progress=progress)
    result: dict[str, Any] = {"name": spec.name, "title": spec.title,
                              "path": str(path), "size": spec.size,
                              "sha256": spec.sha256}
    if bench:
        llm = EmbeddedChatModel(model_path=path, model_name=name,
                                threads=getattr(settings, "llm_threads", None) or None)
        result["speed"] = measure_speed(llm)
    return result
