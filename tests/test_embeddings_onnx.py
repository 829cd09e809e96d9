"""The ONNX int8 embedder: same vectors as PyTorch, no torch, one embedder per index.

Real model throughout: the export made at set-up (``qa-agent model``) in
``data/models/embedding`` (made here first if set-up has not run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, knowledge_settings

from agent.config import load_settings
from agent.retrieval.index import KnowledgeIndex
from agent.retrieval.onnx_model import (
    MANIFEST,
    corpus_passages,
    ensure_export,
    export_dir,
    find_export,
    length_batches,
    make_export,
    read_export,
)


@pytest.fixture(scope="module")
def export():
    """The checked export of the default data directory."""
    found, _ = ensure_export(load_settings({}))
    return found


@pytest.fixture(scope="module")
def passages():
    """Every fifth passage of the shipped corpus, as the index embeds them."""
    return corpus_passages(load_settings({}))[::5]


def test_onnx_int8_matches_pytorch_on_corpus_passages(export, passages, embedder):
    from agent.retrieval.embeddings import TorchEmbedder

    assert export.variant == "int8" and embedder.identity == export.identity
    assert len(passages) >= 40
    ours = embedder.embed(passages)
    reference = TorchEmbedder().embed(passages)
    assert ours.shape == (len(passages), 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    cosine = np.sum(ours * reference, axis=1)
    assert cosine.min() >= 0.99, (cosine.min(), passages[int(cosine.argmin())][:80])
    # The order given is kept (texts are sorted by length inside) ...
    shuffled = embedder.embed(passages[::-1])
    assert np.sum(shuffled[::-1] * reference, axis=1).min() >= 0.99
    # ... and nothing comes back for nothing.
    assert embedder.embed([]).shape == (0, 384)


def test_batches_hold_texts_of_similar_length():
    """Sorted longest first, a batch ends at 32 texts or at a text shorter
    than 0.7 of its longest (hand-worked: 0.7 x 256 = 179.2, 0.7 x 170 = 119,
    0.7 x 100 = 70, 0.7 x 60 = 42, 0.7 x 20 = 14)."""
    lengths = np.array([256, 250, 200, 170, 100, 90, 60, 20, 12, 10])
    cuts = [(b.start, b.stop) for b in length_batches(lengths, 32)]
    assert cuts == [(0, 3), (3, 4), (4, 6), (6, 7), (7, 8), (8, 10)]
    assert [(b.start, b.stop) for b in length_batches(np.full(70, 50), 32)] == [
        (0, 32), (32, 64), (64, 70)]
    assert length_batches(np.array([], dtype=int), 32) == []


def test_one_files_passages_embed_as_all_passages_do(embedder, passages):
    """Batches cut by length give the same vectors, to the int8 check's
    tolerance, whether a file's few passages or the whole corpus is embedded."""
    together = embedder.embed(passages)
    alone = np.vstack([embedder.embed(passages[i:i + 7])
                       for i in range(0, len(passages), 7)])
    assert float(np.min(np.sum(together * alone, axis=1))) >= 0.99


def test_loading_the_onnx_embedder_does_not_import_torch(export, tmp_path):
    code = ("import sys\n"
            "from agent.retrieval.embeddings import get_embedder\n"
            "from agent.retrieval.index import KnowledgeIndex\n"
            "vector = get_embedder().embed(['daily output constancy'])\n"
            "assert vector.shape == (1, 384)\n"
            "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers')\n"
            "         if m in sys.modules]\n"
            "print(heavy)\n")
    # A fresh data directory: the export set-up made is found and reused.
    env = {**os.environ, "QA_AGENT_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert not (tmp_path / "models").exists()  # nothing made again


class _Named:
    """The real embedder under another identity, its vectors rolled so that
    they can be told apart (still normalised)."""

    def __init__(self, inner, identity: str, shift: int) -> None:
        self.inner, self.identity, self.shift = inner, identity, shift
        self.dimension, self.texts = inner.dimension, 0

    def embed(self, texts, batch_size: int = 32):
        self.texts += len(texts)
        return np.roll(self.inner.embed(texts, batch_size), self.shift, axis=1)


class _Anonymous:
    """The real embedder, not saying which it is (as a test double would)."""

    def __init__(self, inner) -> None:
        self.embed, self.dimension = inner.embed, inner.dimension


def _vectors(index: KnowledgeIndex) -> dict[str, np.ndarray]:
    got = index.chunks.get(include=["embeddings"])
    return dict(zip(got["ids"], np.asarray(got["embeddings"]), strict=True))


def test_an_index_is_reembedded_when_the_embedder_changes(tmp_path, embedder):
    settings = knowledge_settings(tmp_path / "data")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Daily\n\n## Output\n\nOutput within 3%.\n\n"
                               "## Lasers\n\nLasers within 2 mm.\n")
    first = _Named(embedder, "test A", 0)
    KnowledgeIndex(settings, embedder=first).sync([docs], progress=False)
    before = _vectors(KnowledgeIndex(settings, embedder=first))
    assert {f.embedder for f in KnowledgeIndex(settings).files().values()} == \
        {"test A"}

    second = _Named(embedder, "test B", 7)
    index = KnowledgeIndex(settings, embedder=second)
    assert [f.source for f in index.stale_files()] == ["a.md"]
    report = index.sync([docs], progress=False)
    assert report.unchanged and report.chunks_added == 0
    assert report.reembedded == len(before) == second.texts == 2
    assert "2 passages re-embedded" in report.summary()
    after = _vectors(index)
    for cid, vector in before.items():  # same text, B's vector in place
        assert np.allclose(after[cid], np.roll(vector, 7), atol=2e-2)
    assert {f.embedder for f in index.files().values()} == {"test B"}
    assert index.sync([docs], progress=False).reembedded == 0  # done once

    # An embedder that does not name itself changes nothing.
    anonymous = KnowledgeIndex(settings, embedder=_Anonymous(embedder))
    assert anonymous.stale_files() == [] and anonymous.reembed() == 0
    # The default one (the ONNX export) re-embeds B's vectors.
    default = KnowledgeIndex(settings)
    assert default.embedder_identity() == embedder.identity
    assert default.reembed() == 2
    assert {f.embedder for f in default.files().values()} == {embedder.identity}


def test_the_export_is_skipped_when_its_manifest_is_valid(export, tmp_path):
    settings = load_settings({"QA_AGENT_DATA_DIR": str(tmp_path)})
    local = export_dir(settings)
    local.mkdir(parents=True)
    for name in (export.path.name, MANIFEST):
        shutil.copy2(export.path.parent / name, local / name)  # keeps the mtime
    stamp = (local / export.path.name).stat().st_mtime_ns
    found, made = ensure_export(settings, verify=True)
    assert not made and found.path == local / export.path.name
    assert found.identity == export.identity
    assert (local / export.path.name).stat().st_mtime_ns == stamp

    # A touched but identical file is still valid (its sha256 is checked) ...
    os.utime(local / export.path.name)
    assert read_export(local) is not None
    # ... a changed one, or an old manifest format, is not: the default
    # data directory's export is used instead.
    with (local / export.path.name).open("ab") as handle:
        handle.write(b"\0")
    assert read_export(local) is None
    assert find_export(settings).path == export.path
    manifest = json.loads((export.path.parent / MANIFEST).read_text())
    (local / MANIFEST).write_text(json.dumps({**manifest, "format": 0}))
    shutil.copy2(export.path, local / export.path.name)
    assert read_export(local) is None


def test_an_export_is_made_from_the_installed_weights(tmp_path, passages):
    made = make_export(tmp_path, passages[:24])
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["variant"] == "int8" and made.path.suffix == ".onnx"
    assert manifest["check"]["passed"] and manifest["check"]["passages"] == 24
    assert manifest["check"]["min_cosine"] >= 0.99
    assert manifest["source"]["weights_sha256"] and manifest["onnx"]["sha256"]
    assert set(manifest["versions"]) >= {"torch", "onnxruntime", "onnx"}
    assert len(manifest["quantization"]["nodes_to_exclude"]) == 6
    assert read_export(tmp_path, verify=True) == made
    assert not list(tmp_path.glob(".make-*"))  # the work files are gone
