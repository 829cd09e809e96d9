"""A test server that speaks Ollama's HTTP API, backed by the embedded model.

No Ollama binary can be installed on the project's machines, so the Ollama
backend is tested against this server with the real ``ollama`` client and
``ChatOllama``. It answers, on 127.0.0.1 and a free port:

- ``GET /``, ``GET /api/version``, ``GET /api/tags``, ``POST /api/show``;
- ``POST /api/chat`` with ``stream`` true (NDJSON chunks, HTTP chunked
  encoding) or false, ``options`` (``temperature``, ``seed``, ``num_predict``,
  ``stop``, ``top_k``, ``top_p``), ``format`` (``"json"`` or a JSON schema:
  constrained by llama.cpp's grammar) and ``tools`` (the reply's JSON tool call,
  fenced, tagged or bare, becomes ``message.tool_calls``).

Usage::

    with OllamaTestServer(model_path, "qwen2.5-coder:0.5b") as server:
        ollama.Client(host=server.url).list()
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agent.llm import LlamaEngine, LLMError, get_engine, parse_tool_calls


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def to_openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama chat messages as OpenAI messages for llama.cpp.

    Parameters
    ----------
    messages : list of dict
        Ollama messages (``role``, ``content``, ``tool_calls`` with dict
        arguments, ``tool_name``).

    Returns
    -------
    list of dict
        OpenAI messages (tool call arguments as JSON strings, ids filled in).
    """
    converted: list[dict[str, Any]] = []
    last_ids: list[str] = []
    counter = 0
    for message in messages:
        role = message.get("role", "user")
        item: dict[str, Any] = {"role": role, "content": message.get("content") or ""}
        if role == "assistant" and message.get("tool_calls"):
            last_ids = []
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function", {})
                counter += 1
                call_id = call.get("id") or f"call_{counter}"
                last_ids.append(call_id)
                arguments = function.get("arguments", {})
                calls.append({"id": call_id, "type": "function", "function": {
                    "name": function.get("name", ""),
                    "arguments": arguments if isinstance(arguments, str)
                    else json.dumps(arguments)}})
            item["tool_calls"] = calls
        elif role == "tool":
            item["tool_call_id"] = (message.get("tool_call_id")
                                    or (last_ids.pop(0) if last_ids else "call_0"))
        converted.append(item)
    return converted


def to_llama_request(body: dict[str, Any]) -> dict[str, Any]:
    """An Ollama ``/api/chat`` body as a llama.cpp chat-completion request.

    Parameters
    ----------
    body : dict
        The Ollama request.

    Returns
    -------
    dict
        The OpenAI-style request for :class:`agent.llm.LlamaEngine`.
    """
    options = body.get("options") or {}
    request: dict[str, Any] = {
        "messages": to_openai_messages(body.get("messages") or []),
        "temperature": options.get("temperature", 0.8),
        "max_tokens": options.get("num_predict", 256),
    }
    if request["max_tokens"] is None or request["max_tokens"] < 0:
        request["max_tokens"] = 1024
    for ours, theirs in (("seed", "seed"), ("stop", "stop"), ("top_k", "top_k"),
                         ("top_p", "top_p")):
        if options.get(theirs) is not None:
            request[ours] = options[theirs]
    fmt = body.get("format")
    if fmt == "json":
        request["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        request["response_format"] = {"type": "json_schema",
                                      "json_schema": {"name": "format",
                                                      "schema": fmt}}
    if body.get("tools"):
        request["tools"] = body["tools"]
    return request


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no access log on stderr."""

    # -- plumbing -------------------------------------------------------

    def _send_json(self, document: Any, status: int = 200) -> None:
        data = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json({"error": "invalid JSON body"}, 400)
            return None
        return body if isinstance(body, dict) else {}

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_chunk(self, document: dict[str, Any]) -> None:
        data = (json.dumps(document) + "\n").encode("utf-8")
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- routes ---------------------------------------------------------

    def do_HEAD(self) -> None:
        """``HEAD /``: the server is up."""
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        """``/``, ``/api/version`` and ``/api/tags``."""
        owner = self.server.owner
        if self.path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/api/version":
            self._send_json({"version": "0.6.3"})
        elif self.path == "/api/tags":
            owner.record("GET", self.path, {})
            self._send_json({"models": [owner.model_entry()]})
        else:
            self._send_json({"error": f"{self.path} not found"}, 404)

    def do_POST(self) -> None:
        """``/api/show`` and ``/api/chat``."""
        owner = self.server.owner
        body = self._read_json()
        if body is None:
            return
        owner.record("POST", self.path, body)
        if self.path not in ("/api/show", "/api/chat"):
            self._send_json({"error": f"{self.path} not found"}, 404)
            return
        name = body.get("model") or body.get("name")
        if not owner.serves(name):
            self._send_json({"error": f"model '{name}' not found"}, 404)
            return
        if self.path == "/api/show":
            self._send_json(owner.show())
        else:
            self._chat(body)

    def _chat(self, body: dict[str, Any]) -> None:
        owner = self.server.owner
        started = time.perf_counter_ns()
        try:
            request = to_llama_request(body)
        except (TypeError, ValueError, AttributeError) as exc:
            self._send_json({"error": f"bad request: {exc}"}, 400)
            return
        tool_names = [t.get("function", t).get("name") for t in body.get("tools") or []]
        stream = body.get("stream", True)
        if not stream or tool_names:
            try:
                response = owner.engine.chat(request)
            except LLMError as exc:
                self._send_json({"error": str(exc)}, 500)
                return
            message = owner.message(response, tool_names)
            final = owner.final(response, started, message)
            if stream:
                self._start_stream()
                self._send_chunk({**final, "done": False, "message": message})
                self._send_chunk({**final, "message": {"role": "assistant",
                                                       "content": ""}})
                self._end_stream()
            else:
                self._send_json(final)
            return
        self._start_stream()
        last: dict[str, Any] = {}
        try:
            for piece in owner.engine.stream(request):
                choices = piece.get("choices") or []
                delta = (choices[0].get("delta") or {}) if choices else {}
                if delta.get("content"):
                    self._send_chunk({"model": owner.model_name, "created_at": _now(),
                                      "message": {"role": "assistant",
                                                  "content": delta["content"]},
                                      "done": False})
                if choices and choices[0].get("finish_reason"):
                    last = piece
        except LLMError as exc:
            self._send_chunk({"error": str(exc)})
            self._end_stream()
            return
        last.setdefault("choices", [{"finish_reason": "stop"}])
        self._send_chunk(owner.final(last, started,
                                     {"role": "assistant", "content": ""}))
        self._end_stream()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: OllamaTestServer


class OllamaTestServer:
    """Ollama's HTTP API on 127.0.0.1, answered by the embedded llama.cpp model.

    Parameters
    ----------
    model_path : Path
        The GGUF (the 0.5B model keeps tests fast).
    model_name : str
        The name the server lists and accepts (with or without ``:latest``).
    n_ctx : int
        Context length.
    threads : int, optional
        llama.cpp threads (default: CPU count).

    Attributes
    ----------
    requests : list of dict
        Every request received: ``method``, ``path`` and ``body``.
    """

    def __init__(self, model_path: Path, model_name: str = "qwen2.5-coder:0.5b",
                 n_ctx: int = 4096, threads: int | None = None):
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.n_ctx = n_ctx
        self.threads = threads
        self.requests: list[dict[str, Any]] = []
        self._engine: LlamaEngine | None = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- life cycle -----------------------------------------------------

    @property
    def engine(self) -> LlamaEngine:
        """The shared llama.cpp engine (loaded on first use)."""
        if self._engine is None:
            self._engine = get_engine(self.model_path, self.n_ctx, self.threads)
        return self._engine

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OllamaTestServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="ollama-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OllamaTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answers ----------------------------------------------------------

    def record(self, method: str, path: str, body: dict[str, Any]) -> None:
        """Keep a request for the tests to inspect."""
        with self._lock:
            self.requests.append({"method": method, "path": path, "body": body})

    def serves(self, name: str | None) -> bool:
        """Whether ``name`` is the served model (``:latest`` optional)."""
        if not name:
            return False
        return name in (self.model_name, f"{self.model_name}:latest") or (
            name.endswith(":latest") and name[:-7] == self.model_name)

    def _details(self) -> dict[str, Any]:
        return {"parent_model": "", "format": "gguf", "family": "qwen2",
                "families": ["qwen2"], "parameter_size": "0.5B",
                "quantization_level": "Q4_K_M"}

    def model_entry(self) -> dict[str, Any]:
        """The model as ``/api/tags`` lists it."""
        stat = self.model_path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, UTC)
        return {"name": self.model_name, "model": self.model_name,
                "modified_at": modified.isoformat().replace("+00:00", "Z"),
                "size": stat.st_size, "digest": "0" * 64,
                "details": self._details()}

    def show(self) -> dict[str, Any]:
        """The ``/api/show`` document."""
        return {"modelfile": f"FROM {self.model_path}\n", "parameters": "",
                "template": "{{ .Prompt }}", "details": self._details(),
                "model_info": {"general.architecture": "qwen2",
                               "qwen2.context_length": self.n_ctx},
                "capabilities": ["completion", "tools"],
                "modified_at": self.model_entry()["modified_at"]}

    @staticmethod
    def message(response: dict[str, Any], tool_names: list[str]) -> dict[str, Any]:
        """Ollama's ``message`` from llama.cpp's reply, tool calls parsed."""
        raw = response["choices"][0].get("message") or {}
        content = raw.get("content") or ""
        message: dict[str, Any] = {"role": "assistant", "content": content}
        calls = []
        for call in raw.get("tool_calls") or []:
            function = call.get("function", {})
            args = function.get("arguments") or "{}"
            calls.append({"function": {"name": function.get("name", ""),
                                       "arguments": json.loads(args)
                                       if isinstance(args, str) else args}})
        if tool_names and not calls:
            parsed, rest = parse_tool_calls(content, tool_names)
            calls = [{"function": {"name": c["name"], "arguments": c["args"]}}
                     for c in parsed]
            if calls:
                message["content"] = rest
        if calls:
            message["tool_calls"] = calls
        return message

    def final(self, response: dict[str, Any], started_ns: int,
              message: dict[str, Any]) -> dict[str, Any]:
        """The closing ``done: true`` document with llama.cpp's counts."""
        usage = response.get("usage") or {}
        timings = response.get("timings") or {}
        finish = (response.get("choices") or [{}])[0].get("finish_reason") or "stop"
        return {
            "model": self.model_name,
            "created_at": _now(),
            "message": message,
            "done": True,
            "done_reason": "length" if finish == "length" else "stop",
            "total_duration": time.perf_counter_ns() - started_ns,
            "load_duration": 0,
            "prompt_eval_count": int(usage.get("prompt_tokens")
                                     or timings.get("prompt_n", 0)),
            "prompt_eval_duration": int(float(timings.get("prompt_ms", 0)) * 1e6),
            "eval_count": int(usage.get("completion_tokens")
                              or timings.get("predicted_n", 0)),
            "eval_duration": int(float(timings.get("predicted_ms", 0)) * 1e6),
        }
