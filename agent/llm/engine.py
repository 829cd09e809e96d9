"""llama.cpp in the process (xllamacpp): one engine per model file.

:class:`LlamaEngine` runs OpenAI-style chat-completion requests, one at a time
(a lock serialises them); :func:`get_engine` shares one engine per GGUF,
context length and thread count across the process.
"""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.llm.errors import LLMError, ModelSetupError


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class LlamaEngine:
    """One llama.cpp model loaded in this process (xllamacpp ``Server``).

    Requests are OpenAI chat-completion dicts. Calls are serialised by a lock:
    one request runs at a time, others wait. llama.cpp's own HTTP listener is
    bound to a Unix socket in a private temporary folder, never to a TCP port.
    Use :func:`get_engine` to share one engine per model file.

    Parameters
    ----------
    path : Path
        The GGUF.
    n_ctx : int
        Context length in tokens.
    threads : int
        Threads for generation and prompt processing.
    """

    def __init__(self, path: Path, n_ctx: int = 4096, threads: int | None = None):
        import xllamacpp

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelSetupError(f"model file {self.path} not found")
        self.n_ctx = n_ctx
        self.threads = threads or cpu_count()
        self.lock = threading.Lock()
        self._socket_dir = tempfile.mkdtemp(prefix="qa-agent-llama-")
        atexit.register(shutil.rmtree, self._socket_dir, True)
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        # No busy-waiting between llama.cpp's threads (its default polls at
        # level 50): with every core taken by another job, a spinning thread
        # holds the core its partner needs. Measured on 2 cores, six span
        # prompts: with two spinning processes, median 11.0 s (max 23.6)
        # polling, 6.5 s (max 9.1) not; idle the same, 2.3-2.7 s either way.
        params.cpuparams.poll = 0
        params.cpuparams_batch.poll = 0
        params.sampling.temp = 0.0
        params.sampling.seed = 42
        params.verbosity = 0
        params.endpoint_metrics = False
        params.hostnames = [os.path.join(self._socket_dir, "llama.sock")]
        started = time.perf_counter()
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # the wheel raises plain exceptions
            raise LLMError(f"llama.cpp could not load {self.path}: {exc}") from exc
        self.load_seconds = time.perf_counter() - started

    @staticmethod
    def _check(response: Any) -> dict[str, Any]:
        if not isinstance(response, dict):
            raise LLMError(f"llama.cpp answered {response!r}")
        error = response.get("error")
        if error is None and "choices" not in response and "message" in response:
            error = response
        if error is not None:
            message = error.get("message", error) if isinstance(error, dict) else error
            raise LLMError(f"llama.cpp: {message}")
        return response

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one chat completion and return llama.cpp's response dict.

        Raises
        ------
        LLMError
            When llama.cpp rejects the request (context overflow, bad schema).
        """
        request = {**request, "stream": False}
        with self.lock:
            try:
                response = self._server.handle_chat_completions(request)
            except ValueError as exc:
                raise LLMError(f"llama.cpp: {exc}") from exc
        return self._check(response)

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield llama.cpp's streamed chunks (OpenAI ``chat.completion.chunk``).

        Generation runs in a worker thread (xllamacpp releases the GIL), so
        chunks arrive here as the tokens are produced. Closing the iterator
        early stops the generation.

        Raises
        ------
        LLMError
            When llama.cpp rejects the request or fails mid-way.
        """
        request = {**request, "stream": True}
        chunks: queue.Queue[Any] = queue.Queue()
        cancel = threading.Event()
        done = object()

        def on_chunk(chunk: Any) -> bool:
            chunks.put(chunk)
            return cancel.is_set()

        def run() -> None:
            try:
                with self.lock:
                    self._server.handle_chat_completions(request, on_chunk)
            except Exception as exc:  # handed to the consumer
                chunks.put(exc)
            finally:
                chunks.put(done)

        worker = threading.Thread(target=run, name="llama-stream", daemon=True)
        worker.start()
        try:
            while (item := chunks.get()) is not done:
                if isinstance(item, Exception):
                    raise LLMError(f"llama.cpp: {item}") from item
                yield self._check(item)
        finally:
            cancel.set()


_ENGINES: dict[tuple[str, int, int], LlamaEngine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(path: Path, n_ctx: int = 4096, threads: int | None = None
               ) -> LlamaEngine:
    """The process-wide engine for a GGUF (loaded on first use, then cached).

    Parameters
    ----------
    path : Path
        The GGUF.
    n_ctx : int
        Context length in tokens.
    threads : int, optional
        Threads (default: the CPUs this process may use).

    Returns
    -------
    LlamaEngine
        The same object for the same path, context and threads.
    """
    threads = threads or cpu_count()
    key = (str(Path(path).resolve()), n_ctx, threads)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = LlamaEngine(Path(path), n_ctx, threads)
        return engine
