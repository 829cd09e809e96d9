"""The chat: streamed answers, tool steps, inline control charts, citations.

``Agent.ask`` is synchronous; it runs in a worker thread and hands its tokens
and tool steps to the event handler through a queue, so the answer streams
into the Chatbot. Each browser session keeps its own ``Conversation`` (in a
``gr.State``) and its own history, so sessions sharing the one agent never
see each other's turns. Images uploaded beside the question box go into the
session's ``Conversation.uploads``; an image analysis shows pylinac's figure
and the control chart of the set's main metric under its answer.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from agent.graph import BackendUnavailable
from agent.qa import presentation
from agent.qa.charts import control_chart
from agent.qa.result import SeriesResult
from agent.qa.series import series_name
from agent.tools import chart_key
from agent.ui.common import IMAGE_SUFFIXES, AppContext, UploadError, check_upload, log

EXAMPLES = [
    "What is the monthly tolerance for the jaw position indicators?",
    "Is the 10 MV output on TrueBeam 2 drifting?",
    "Which machines need attention?",
    "What QA data do we have?",
    "How do I set up an I-MR control chart?",
]
#: At most this many control charts are drawn under one answer.
MAX_CHARTS = 4
_ALIVE = 0.2


@dataclass
class ChatTurn:
    """What the chat shows after each update of one answer."""

    history: list[dict[str, Any]]
    citations: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False


def header_markdown(app: AppContext) -> str:
    """The header: title, and the backend and model in use (or why none)."""
    title = "### Linac QA assistant"
    if app.agent.llm is None:
        reason = app.backend_error or "not configured"
        return (f"{title}\n**LLM backend unavailable** ({reason}). Drift analyses, "
                "the fleet overview and data questions still work; protocol "
                "questions need the model.")
    return (f"{title}\nBackend **{app.backend}**, model **{app.model}**. Local "
            "only: nothing leaves this machine.")


def citation_label(n: int, c: dict[str, Any]) -> str:
    """``[1] tg142-monthly.md, Monthly mechanical checks, p. 3``."""
    where = c["source"] + (f", {c['section']}" if c.get("section") else "")
    if c.get("page"):
        where += f", p. {c['page']}"
    return f"[{n}] {where}"


def passage_markdown(c: dict[str, Any] | None, n: int | None = None) -> str:
    """A cited passage with its document, section and page."""
    if not c:
        return "*Citations of the latest answer open here.*"
    head = citation_label(n or 1, c)
    text = c["text"].replace("\n", "\n> ")
    return f"**{head}**\n\n> {text}"


def _short(value: Any, limit: int = 400) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + " …"


def summarize_result(name: str, result: Any) -> str:
    """One or a few lines saying what a tool returned."""
    if not isinstance(result, dict):
        return _short(result)
    if "error" in result:
        return f"error: {result['error']}"
    if name == "search_protocols":
        found = result.get("results", [])
        if not found:
            return "nothing relevant found"
        return f"{len(found)} passage(s): " + "; ".join(
            f"{r['source']} ({r['section']})" for r in found[:5])
    if name == "lookup_tolerance":
        rows = result.get("rows", [])
        return f"{len(rows)} tolerance row(s): " + "; ".join(
            r["description"] for r in rows[:4])
    if name in ("analyze_series", "fleet_overview"):
        series = result.get("series", [])
        lines = [f"{len(series)} series" + (
            f" of {result['total']}" if "total" in result else "")]
        for s in series[:6]:
            if "details" in s:
                lines.append(presentation.fleet_line(SeriesResult.from_contract(s)))
            else:
                lines.append(f"- {presentation.spoken_name(s)}: {s['status']}")
        if result.get("errors"):
            lines.append(f"{len(result['errors'])} row(s) rejected in the data")
        return "\n".join(lines)
    if name == "analyse_images":
        stored = result.get("stored") or {}
        return (f"{result['kind']} {result['machine']} {result['date']}: "
                f"{result['metric']} {result['value']:.3g}; "
                + ("already stored" if stored.get("already_imported")
                   else f"{stored.get('added', 0)} measurement(s) stored"))
    if name == "list_data":
        machines = result.get("machines", [])
        return f"{len(machines)} machine(s): " + ", ".join(
            f"{m['machine']} ({len(m['series'])} series)" for m in machines)
    return _short(result)


def step_message(step: dict[str, Any]) -> dict[str, Any]:
    """A tool call as a collapsible chat message (name, arguments, time)."""
    args = json.dumps(step.get("args", {}), ensure_ascii=False)
    body = (f"**Arguments** `{args}`\n\n**Result** "
            f"{summarize_result(step['name'], step.get('result'))}")
    return {"role": "assistant", "content": body,
            "metadata": {"title": f"Tool: {step['name']}",
                         "duration": float(step.get("seconds") or 0.0),
                         "status": "done"}}


def charts_of(app: AppContext, step: dict[str, Any]) -> list[tuple[str, Any]]:
    """(title, plotly figure) for each series an analysis step analysed; for an
    image analysis first (title, PNG path) of pylinac's figure, then the
    control chart of the set's main metric."""
    result = step.get("result") or {}
    if step.get("name") == "analyse_images" and "figure" in result:
        title = f"pylinac: {result['kind']} {result['machine']} {result['date']}"
        figure = [(title, Path(result["figure"]))]
        if result.get("pdf"):
            figure.append((f"{title} (PDF report)", Path(result["pdf"])))
        return figure + charts_of(app, {"name": "analyze_series", "args": {},
                                        "result": result.get("trend") or {}})
    if step.get("name") != "analyze_series":
        return []
    out = []
    args = step.get("args") or {}
    for s in result.get("series", [])[:MAX_CHARTS]:
        name = series_name(s["machine"], s["test"], s["energy"])
        analysis = app.ctx.charts.get(chart_key(
            s["machine"], s["test"], s["energy"], args.get("start"), args.get("end")))
        if analysis is None:
            continue
        out.append((name, control_chart(analysis)))
    return out


def unavailable_message(app: AppContext, exc: Exception | None) -> str:
    """What the chat says when the LLM backend is down (never a traceback)."""
    if isinstance(exc, BackendUnavailable) and str(exc):
        return f"⚠ **The language model is not available.** {exc}"
    reason = app.backend_error or "the model could not be reached"
    return (f"⚠ **The language model is not available**: {reason}.\n\n"
            "Drift analyses (\"is the 6X output on TrueBeam 2 drifting?\"), the "
            "fleet overview (\"which machines need attention?\") and data "
            "questions (\"what QA data do we have?\") still work.")


def stream_answer(app: AppContext, question: str, history: list[dict[str, Any]],
                  conversation: Any) -> Iterator[ChatTurn]:
    """Ask the agent and yield the chat as it fills in.

    Parameters
    ----------
    app : AppContext
    question : str
    history : list of dict
        The Chatbot's messages so far (not modified).
    conversation : agent.graph.Conversation
        This session's memory.

    Yields
    ------
    ChatTurn
        The messages after each token or tool step; the last one has
        ``done`` set and the answer's citations.
    """
    # why long: the event loop between the worker thread and the Chatbot; its cases
    # share the messages shown so far.
    history = [*history, {"role": "user", "content": question}]
    yield ChatTurn(history)
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    charts: list[tuple[str, Any]] = []

    def on_step(step: dict[str, Any]) -> None:
        # Taken at once, in the worker: the figure is this call's analysis.
        charts.extend(charts_of(app, step))
        events.put(("step", step))

    def work() -> None:
        try:
            document = app.agent.ask(question, conversation,
                                     on_token=lambda t: events.put(("token", t)),
                                     on_step=on_step)
            events.put(("done", document))
        except Exception as exc:  # last resort: the worker must always report
            events.put(("error", exc))

    threading.Thread(target=work, daemon=True, name="agent-ask").start()
    shown: list[dict[str, Any]] = []  # tool steps and the streamed text so far
    streamed = ""
    while True:
        try:
            kind, value = events.get(timeout=_ALIVE)
        except queue.Empty:
            continue
        if kind == "step":
            shown.append(step_message(value))
        elif kind == "token":
            if not streamed:
                shown.append({"role": "assistant", "content": ""})
            streamed += value
            shown[-1] = {"role": "assistant", "content": streamed}
        elif kind == "error":
            steps = [m for m in shown if m.get("metadata")]
            yield ChatTurn([*history, *steps, error_message(app, value)], done=True)
            return
        else:
            steps = [m for m in shown if m.get("metadata")]
            yield finish(history + steps, value, charts)
            return
        yield ChatTurn([*history, *shown])


def error_message(app: AppContext, exc: Exception) -> dict[str, Any]:
    """The chat message for a failed answer: clear words, never a traceback."""
    if isinstance(exc, BackendUnavailable) or app.agent.llm is None:
        text = unavailable_message(app, exc)
    else:
        log.error("answer failed", exc_info=exc)
        text = (f"⚠ Something went wrong while answering ({type(exc).__name__}: "
                f"{exc}). The details are in the server log; the analyses in the "
                "Data tab still work.")
    return {"role": "assistant", "content": text}


def finish(history: list[dict[str, Any]], document: dict[str, Any],
           charts: list[tuple[str, Any]]) -> ChatTurn:
    """The final messages of an answer: text with sources, then its charts."""
    text = document["answer"]
    citations = document.get("citations", [])
    if citations:
        text += "\n\n**Sources**  \n" + "  \n".join(
            citation_label(n, c) for n, c in enumerate(citations, start=1))
    note = f"{document.get('backend', '')} {document.get('model', '')}".strip()
    if note:
        text += f"\n\n<sub>{note}, {document.get('seconds', 0):.1f} s</sub>"
    history = [*history, {"role": "assistant", "content": text}]
    for title, figure in charts:
        content = (gr.File(str(figure), label=title, show_label=True)
                   if isinstance(figure, Path) and figure.suffix == ".pdf" else
                   gr.Image(str(figure), label=title, show_label=True, type="filepath")
                   if isinstance(figure, Path) else
                   gr.Plot(figure, label=f"Control chart: {title}", show_label=True))
        history.append({"role": "assistant", "content": content})
    return ChatTurn(history, citations, done=True)


def take_uploads(app: AppContext, paths: list[str] | None,
                 conversation: Any) -> str:
    """Put the files uploaded beside the question box into the session's
    ``Conversation.uploads``; say what is ready (or why a file is refused).

    Parameters
    ----------
    app : AppContext
    paths : list of str or None
        The upload component's files (None or empty: cleared).
    conversation : agent.graph.Conversation
        This session's memory (its ``uploads`` are replaced).

    Returns
    -------
    str
        Markdown for the note under the upload.
    """
    try:
        files = [check_upload(p, IMAGE_SUFFIXES, app.settings.max_upload_mb)
                 for p in paths or []]
    except UploadError as exc:
        conversation.uploads = []
        return f"⚠ {exc}"
    conversation.uploads = files
    if not files:
        return ""
    names = ", ".join(f.name for f in files[:5]) + (" …" if len(files) > 5 else "")
    return (f"{len(files)} file(s) ready for image QA: {names}. Ask e.g. *analyse "
            "the Winston-Lutz images for TrueBeam2*.")


def citation_choices(citations: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(label, index) pairs for the citation picker."""
    return [(citation_label(n, c), n - 1) for n, c in enumerate(citations, start=1)]
