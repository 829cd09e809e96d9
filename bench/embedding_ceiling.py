"""How many passages a second the embedder could reach here: the work per
passage against what the machine's cores can do.

Issue 14 asks for 150 passages/s of ingestion on 2 cores. This measures
whether any implementation of the packaged all-MiniLM-L6-v2 (6 layers,
width 384, feed-forward 1536, at most 256 tokens) can, before anyone tries
harder:

1. **work per passage**: every passage the index embeds (the shipped corpus
   and the benchmark's 300-page PDF, as ``bench/embedding_benchmark.py``
   makes them) is tokenized with the model's own tokenizer; a transformer
   layer over n tokens of width d costs 24 n d^2 multiply-adds x 2 in its
   dense layers and 4 n^2 d in attention, the standard count (Kaplan et al.
   2020, "Scaling laws for neural language models", section 2.1), here
   ``2 * (12 n d^2 + 2 n^2 d)`` per layer with the 4x feed-forward;
2. **what the cores do**: the best float32 matrix-multiply rate of numpy's
   BLAS on every core, on the shapes of this model's dense layers (a batch
   of 32 passages of 128 tokens through the 384 x 1536 feed-forward), and
   the rate the ONNX int8 export reaches on the same passages (measured
   seconds of ``Embedder.embed``);
3. **the ceiling**: passages/s = rate / work per passage, at the BLAS
   float32 rate and at twice it (what int8 kernels could give at best on
   AVX2 without VNNI: ``vpmaddubsw`` does 32 int8 products a cycle, an FMA
   unit 16 float32 multiply-adds; whether VNNI is present is read from
   ``/proc/cpuinfo``).

Run from the repository root (about a minute; the PDF is the one
``bench/embedding_benchmark.py`` made, or made now)::

    .venv/bin/python bench/embedding_ceiling.py [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from embedding_benchmark import DEFAULT_WORK, PDF_NAME, indexed_texts, load
from provenance import code_version  # bench/ is on sys.path when run
from retrieval_benchmark import CORPUS_DIR, ROOT, generate_pdf

sys.path.insert(0, str(ROOT))
DEFAULT_OUT = ROOT / "bench" / "results" / "embedding_ceiling.json"
LAYERS, WIDTH, MAX_TOKENS = 6, 384, 256
AIM = 150.0  # passages/s, issue 14


def layer_flops(n: int, d: int = WIDTH) -> float:
    """Floating-point operations of one encoder layer over ``n`` tokens."""
    return 2.0 * (12 * n * d * d + 2 * n * n * d)


def token_counts(texts: list[str]) -> list[int]:
    """Tokens per text as the model sees them ([CLS] and [SEP], truncated)."""
    from tokenizers import Tokenizer

    from agent.retrieval.onnx_model import source_dir

    tokenizer = Tokenizer.from_file(str(source_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    return [len(e.ids) for e in tokenizer.encode_batch(texts)]


def gemm_rate(repeats: int = 20) -> dict[str, Any]:
    """Best float32 GFLOP/s of numpy's matmul on the model's feed-forward shape."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32 * 128, WIDTH)).astype(np.float32)
    b = rng.standard_normal((WIDTH, 4 * WIDTH)).astype(np.float32)
    a @ b  # warm the BLAS threads
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - t0)
    flops = 2.0 * a.shape[0] * a.shape[1] * b.shape[1]
    return {"shape": [list(a.shape), list(b.shape)],
            "gflops_best": flops / min(seconds) / 1e9,
            "gflops_median": flops / statistics.median(seconds) / 1e9}


def model_rate(texts: list[str], flops: float) -> dict[str, Any]:
    """GFLOP/s the ONNX int8 export reaches on ``texts`` (best of two)."""
    from agent.retrieval.embeddings import Embedder

    embedder = Embedder()
    embedder.embed(texts[:8])
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        embedder.embed(texts)
        runs.append(time.perf_counter() - t0)
    return {"seconds_best": min(runs), "passages_per_second": len(texts) / min(runs),
            "gflops": flops / min(runs) / 1e9}


def work(texts: list[str]) -> dict[str, Any]:
    """Tokens and GFLOP per passage of one set of texts."""
    counts = token_counts(texts)
    per = [LAYERS * layer_flops(n) for n in counts]
    return {"passages": len(texts), "tokens_mean": statistics.fmean(counts),
            "tokens_median": statistics.median(counts), "tokens_max": max(counts),
            "gflop_per_passage_mean": statistics.fmean(per) / 1e9,
            "gflop_total": sum(per) / 1e9}


def main() -> None:
    """Measure and write the JSON; print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--pdf-pages", type=int, default=300)
    args = parser.parse_args()
    pdf = DEFAULT_WORK / "pdf-source" / PDF_NAME
    if not pdf.exists():
        pdf.parent.mkdir(parents=True, exist_ok=True)
        generate_pdf(pdf, args.pdf_pages, 20241121)
    info = Path("/proc/cpuinfo")
    cpuinfo = info.read_text() if info.exists() else ""
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")),
                 "")
    result: dict[str, Any] = {
        "benchmark": "embedding_ceiling", "code": code_version(),
        "cpus": os.cpu_count(), "loadavg_before": load(),
        "cpu": {"avx2": " avx2" in flags, "avx512_vnni": "avx512_vnni" in flags,
                "avx_vnni": " avx_vnni" in flags},
        "gemm_float32": gemm_rate()}
    peak = result["gemm_float32"]["gflops_best"]
    sets = {"corpus": indexed_texts(sorted(p for p in CORPUS_DIR.iterdir()
                                           if p.is_file())),
            "pdf": indexed_texts([pdf])}
    for name, texts in sets.items():
        w = work(texts)
        w["onnx_int8"] = model_rate(texts, w["gflop_total"] * 1e9)
        per = w["gflop_per_passage_mean"]
        w["ceiling_passages_per_second"] = {
            "at_float32_blas_peak": peak / per, "at_twice_it_int8_best": 2 * peak / per}
        w["gflops_needed_for_aim"] = AIM * per
        result[name] = w
    result["loadavg_after"] = load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"float32 matmul, best: {peak:.0f} GFLOP/s on {os.cpu_count()} cores; "
          f"VNNI: {result['cpu']['avx512_vnni'] or result['cpu']['avx_vnni']}")
    for name in sets:
        w = result[name]
        c = w["ceiling_passages_per_second"]
        print(f"{name}: {w['passages']} passages, {w['tokens_mean']:.0f} tokens "
              f"mean, {w['gflop_per_passage_mean']:.2f} GFLOP each; ONNX int8 "
              f"{w['onnx_int8']['passages_per_second']:.0f}/s = "
              f"{w['onnx_int8']['gflops']:.0f} GFLOP/s; 150/s needs "
              f"{w['gflops_needed_for_aim']:.0f} GFLOP/s; ceiling "
              f"{c['at_float32_blas_peak']:.0f}/s (float32 peak), "
              f"{c['at_twice_it_int8_best']:.0f}/s (2x it)")


if __name__ == "__main__":
    main()
