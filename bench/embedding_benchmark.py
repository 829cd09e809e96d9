"""Embedding benchmark: PyTorch against the ONNX int8 export, raw and in ingestion.

One run measures both embedders of the packaged all-MiniLM-L6-v2 on the same
texts, each in its own freshly spawned Python process (so its import and load
time and its peak RSS are its own):

* ``torch``: ``TorchEmbedder`` (sentence-transformers on PyTorch, what
  ingestion used before);
* ``onnx-int8``: ``Embedder`` (the export made by ``qa-agent model`` in
  ``data/models/embedding``, onnxruntime and ``tokenizers``, no torch).

For each embedder:

1. **model load**: import and construction, then the first ``embed`` call;
2. **raw encode**: ``embed`` on the passages of the shipped corpus
   (``knowledge/corpus``) and of the generated 300-page PDF, as the index
   calls it (the texts it embeds, in slices of 256), ``--repeats`` times;
3. **whole ingestion pipeline**: ``KnowledgeIndex.sync`` of the corpus and
   of the PDF, each into a fresh on-disk Chroma in a scratch data directory
   (reading, chunking, embedding, Chroma writes): passages/s and pages/s (a
   page of Markdown is 500 words, as in ``retrieval_benchmark.py``).

4. **one thread**: ``embed`` of the corpus passages on one thread (torch
   ``set_num_threads(1)``, onnxruntime ``intra_op_num_threads=1``), in CPU
   seconds: the work per passage, which other processes on the machine
   change much less than the wall-clock rates above.

Then the **cosine check**: every corpus and PDF passage embedded by both, the
lowest and the median cosine (the export's own check at set-up is on the
corpus; the aim is a lowest cosine >= 0.99). The load average and the
process's CPU seconds are recorded with every timing: other processes share
the two cores. ``--rounds N`` alternates the two embedders N times (each
figure is then its best round's) so that both see the same shared load;
``--wait-load L`` waits, before each embedder, for the 1-minute load to fall
below L (10 minutes at most).

Run from the repository root (about 4 minutes a round on an idle machine)::

    .venv/bin/python bench/embedding_benchmark.py [--rounds 1] [--repeats 1]
        [--wait-load L] [--pdf-pages 300] [--out bench/results/embedding.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from retrieval_benchmark import (  # bench/ is on sys.path when run
    CORPUS_DIR,
    ROOT,
    WORDS_PER_PAGE,
    environment,
    fresh_dir,
    generate_pdf,
    in_child,
    passage_words,
    peak_rss_mb,
    prepare_work,
    settings_for,
)

DEFAULT_OUT = ROOT / "bench" / "results" / "embedding.json"
DEFAULT_WORK = ROOT / "bench" / ".work" / "embedding"
PDF_NAME = "qa-procedures-300p.pdf"
KINDS = ("torch", "onnx-int8")
MEASURES = ("raw_corpus", "raw_pdf", "pipeline_corpus", "pipeline_pdf")
SLICE = 256  # the index embeds in slices of this many passages


class CountingEmbedder:
    """An embedder with the time spent in ``embed`` counted (identity kept)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dimension = inner.dimension
        self.identity = inner.identity
        self.seconds = 0.0

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embed through the wrapped model and count the time."""
        t0 = time.perf_counter()
        out = self.inner.embed(texts, batch_size=batch_size)
        self.seconds += time.perf_counter() - t0
        return out


def load() -> list[float]:
    """The 1-minute and 5-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()[:2]]


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_for_load(limit: float | None, most_s: float = 600.0) -> float:
    """Wait (at most ``most_s``) until the 1-minute load is below ``limit``."""
    started = time.monotonic()
    while limit and os.getloadavg()[0] >= limit and \
            time.monotonic() - started < most_s:
        time.sleep(10)
    return time.monotonic() - started


def indexed_texts(paths: list[Path]) -> list[str]:
    """The texts the index embeds for these files (title > section, passage)."""
    from agent.retrieval.chunking import split_document
    from agent.retrieval.documents import load_document

    texts = []
    for path in paths:
        document = load_document(path)
        texts += [p.indexed_text(document.title)
                  for p in split_document(document, 150)]
    return texts


def raw_encode(embedder: Any, texts: list[str], repeats: int) -> dict[str, Any]:
    """``embed`` over ``texts`` in the index's slices; best and all runs."""
    runs, cpu, vectors = [], [], None
    before = load()
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), cpu_seconds()
        parts = [embedder.embed(texts[i:i + SLICE]) for i in range(0, len(texts),
                                                                   SLICE)]
        runs.append(time.perf_counter() - t0)
        cpu.append(cpu_seconds() - c0)
        vectors = np.concatenate(parts)
    best = min(runs)
    return {"passages": len(texts), "seconds_runs": [round(s, 3) for s in runs],
            "passages_per_second": len(texts) / best,
            "passages_per_second_median": len(texts) / float(np.median(runs)),
            "cpu_seconds_runs": [round(s, 3) for s in cpu],
            "loadavg_before_after": [before, load()], "vectors": vectors}


def pipeline(embedder: Any, paths: list[Path], data_dir: Path, pages: float,
             words: int) -> dict[str, Any]:
    """``KnowledgeIndex.sync`` into a fresh on-disk Chroma: rates and split."""
    from agent.retrieval.index import KnowledgeIndex

    timing = CountingEmbedder(embedder)
    before, c0 = load(), cpu_seconds()
    index = KnowledgeIndex(settings_for(fresh_dir(data_dir)), embedder=timing)
    report = index.sync(paths, progress=False)
    cpu = cpu_seconds() - c0
    if report.errors or not report.chunks_added:
        raise SystemExit(f"ingestion failed: {report.summary()}")
    s = report.seconds
    return {"seconds": s, "passages": report.chunks_added, "pages": pages,
            "words": words, "passages_per_second": report.chunks_added / s,
            "pages_per_second": pages / s, "seconds_embedding": timing.seconds,
            "seconds_reading_chunking_chroma": s - timing.seconds,
            "cpu_seconds": round(cpu, 3), "loadavg_before_after": [before, load()]}


def make_embedder(kind: str) -> Any:
    """The embedder of ``kind`` (imports included in the caller's timing)."""
    if kind == "torch":
        from agent.retrieval.embeddings import TorchEmbedder

        return TorchEmbedder()
    from agent.config import get_settings
    from agent.retrieval.embeddings import Embedder
    from agent.retrieval.onnx_model import find_export

    export = find_export(get_settings())
    if export is None:
        raise SystemExit("no ONNX export: run .venv/bin/qa-agent model first")
    return Embedder(export=export)


def one_thread(kind: str, embedder: Any, texts: list[str]) -> dict[str, Any]:
    """CPU seconds of ``embed`` on one thread: the work, whatever else runs."""
    if kind == "torch":
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        single = embedder
    else:
        from agent.retrieval.embeddings import Embedder

        single = Embedder(export=embedder.export, threads=1)
    single.embed(texts[:4])
    before, c0, t0 = load(), cpu_seconds(), time.perf_counter()
    single.embed(texts)
    cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
    if kind == "torch":
        torch.set_num_threads(threads)
    return {"passages": len(texts), "cpu_seconds": cpu, "seconds": wall,
            "passages_per_cpu_second": len(texts) / cpu,
            "loadavg_before_after": [before, load()]}


def step(kind: str, work: str, pdf: str, pdf_pages: int, repeats: int,
         wait_load: float | None) -> dict[str, Any]:
    """Load, raw encode and pipeline for one embedder (in its own process)."""
    waited = wait_for_load(wait_load)
    rss0 = peak_rss_mb()
    before = load()
    t0 = time.perf_counter()
    embedder = make_embedder(kind)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    embedder.embed(["Daily output constancy tolerance"])
    t_first = time.perf_counter() - t0
    out: dict[str, Any] = {
        "identity": embedder.identity, "seconds_waited_for_load": waited,
        "model": {"seconds_import_and_load": t_load,
                  "seconds_first_embed_call": t_first,
                  "torch_imported": "torch" in sys.modules,
                  "loadavg_before_after": [before, load()]}}
    files = sorted(p for p in CORPUS_DIR.iterdir() if p.is_file())
    corpus_texts, pdf_texts = indexed_texts(files), indexed_texts([Path(pdf)])
    words, _ = passage_words(files)
    pdf_words, _ = passage_words([Path(pdf)])
    out["raw_corpus"] = raw_encode(embedder, corpus_texts, repeats)
    out["raw_pdf"] = raw_encode(embedder, pdf_texts, repeats)
    base = Path(work) / kind
    out["pipeline_corpus"] = pipeline(embedder, [CORPUS_DIR], base / "corpus",
                                      words / WORDS_PER_PAGE, words)
    out["pipeline_pdf"] = pipeline(embedder, [Path(pdf)], base / "pdf",
                                   pdf_pages, pdf_words)
    out["one_thread_corpus"] = one_thread(kind, embedder, corpus_texts)
    out["peak_rss_mb"] = peak_rss_mb()
    out["rss_baseline_mb"] = rss0
    return out


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each measurement from its fastest round (the load is shared)."""
    best = dict(runs[0])
    for name in MEASURES:
        best[name] = max((r[name] for r in runs),
                         key=lambda b: b["passages_per_second"])
    best["model"] = min((r["model"] for r in runs),
                        key=lambda m: m["seconds_import_and_load"])
    best["one_thread_corpus"] = max((r["one_thread_corpus"] for r in runs),
                                    key=lambda b: b["passages_per_cpu_second"])
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def cosine(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Row-wise cosine of two sets of normalised vectors."""
    cos = np.sum(a * b, axis=1)
    return {"passages": len(cos), "min": float(cos.min()),
            "median": float(np.median(cos)), "mean": float(cos.mean()),
            "below_0_99": int((cos < 0.99).sum())}


def summary(result: dict[str, Any]) -> str:
    """A readable table of the numbers."""
    env, runs = result["environment"], result["embedders"]
    lines = [f"Machine: {env['cpus']} CPUs, Python {env['python']}; load average "
             f"at start {env['loadavg_at_start'][0]:.2f}", ""]
    for kind in KINDS:
        r = runs[kind]
        m = r["model"]
        lines += [
            f"{kind}: {r['identity']}",
            f"  import + load {m['seconds_import_and_load']:6.2f} s, first embed "
            f"{m['seconds_first_embed_call']:.2f} s (torch imported: "
            f"{m['torch_imported']}); peak RSS {r['peak_rss_mb']:.0f} MB"]
        for name in MEASURES:
            b = r[name]
            pages = (f" {b['pages_per_second']:6.2f} pages/s (embedding "
                     f"{b['seconds_embedding']:.1f} of {b['seconds']:.1f} s)"
                     if "pages" in b else "")
            lo = b["loadavg_before_after"]
            cpu = b.get("cpu_seconds") or min(b["cpu_seconds_runs"])
            lines.append(f"  {name:16s} {b['passages']:5d} passages "
                         f"{b['passages_per_second']:7.1f} passages/s{pages}  "
                         f"cpu {cpu:.1f} s  [load {lo[0][0]:.2f} -> {lo[1][0]:.2f}]")
        one = r["one_thread_corpus"]
        lines.append(f"  one thread, corpus {one['passages_per_cpu_second']:5.1f} "
                     f"passages per CPU second ({one['cpu_seconds']:.1f} CPU s, "
                     f"wall {one['seconds']:.1f} s)")
    for name, c in result["cosine"].items():
        lines.append(f"cosine onnx-int8 vs torch, {name}: min {c['min']:.4f} median "
                     f"{c['median']:.4f} ({c['passages']} passages, "
                     f"{c['below_0_99']} below 0.99)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="scratch directory (default bench/.work/embedding)")
    parser.add_argument("--pdf-pages", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1,
                        help="raw encode runs per text set (best is reported)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate the two embedders this many times; each "
                             "figure is the best round's")
    parser.add_argument("--wait-load", type=float, default=None,
                        help="before each embedder, wait (up to 10 min) until the "
                             "1-minute load average is below this")
    parser.add_argument("--seed", type=int, default=20241121)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    work = args.work.resolve()
    prepare_work(work.parent)
    work.mkdir(parents=True, exist_ok=True)
    pdf = fresh_dir(work / "pdf-source") / PDF_NAME
    generated = generate_pdf(pdf, args.pdf_pages, args.seed)
    result: dict[str, Any] = {
        "config": {"pdf_pages": args.pdf_pages, "repeats": args.repeats,
                   "rounds": args.rounds,
                   "wait_load": args.wait_load,
                   "seed": args.seed, "slice": SLICE, "batch_size": 32,
                   "chunk_words": 150, "words_per_page_markdown": WORDS_PER_PAGE,
                   "pdf": generated},
        "environment": environment(),
        "embedders": {}}
    from importlib.metadata import version

    result["environment"]["versions"].update(
        {n: version(n) for n in ("onnxruntime", "onnx", "tokenizers")})
    vectors: dict[str, dict[str, np.ndarray]] = {}
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for round_ in range(1, args.rounds + 1):
        for kind in KINDS:  # alternated, so both see the same shared load
            print(f"round {round_}: {kind} ...", file=sys.stderr, flush=True)
            got = in_child(step, kind, str(work), str(pdf), args.pdf_pages,
                           args.repeats, args.wait_load)
            for k in ("raw_corpus", "raw_pdf"):
                vectors.setdefault(kind, {})[k] = got[k].pop("vectors")
            runs[kind].append(got)
    result["embedders"] = {kind: best_of(r) for kind, r in runs.items()}
    result["rounds"] = runs
    result["cosine"] = {
        "corpus": cosine(vectors["onnx-int8"]["raw_corpus"],
                         vectors["torch"]["raw_corpus"]),
        "pdf": cosine(vectors["onnx-int8"]["raw_pdf"], vectors["torch"]["raw_pdf"])}
    result["loadavg_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
