"""The LangChain adapter of the embedded engine, and tool calls written as JSON.

:class:`EmbeddedChatModel` gives llama.cpp LangChain's chat model interface
(``invoke``, ``stream``, ``bind_tools``, ``with_structured_output``). Small
models cannot run a free tool loop; what works is tool choice under a JSON
schema (llama.cpp grammar): see :meth:`EmbeddedChatModel.structured` and
``bind_tools(..., tool_choice=...)``. Qwen2.5-Coder writes tool calls as
(fenced) JSON, which :func:`parse_tool_calls` turns into LangChain tool calls.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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

from agent.llm.engine import LlamaEngine, get_engine
from agent.llm.errors import StructuredOutputError
from agent.llm.weights import DEFAULT_MODEL

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
