"""The agent graph: route, run tools in code, answer with citations, verify.

Small local models cannot be trusted with a free tool loop or with numbers
(README.md, "The agent"), so the graph is fixed and short:

1. **route**: the request's intent and names (machines, tests, energies,
   frequencies, periods) by plain-word rules, with a guard for
   patient-specific questions; a follow-up ("and for 10X?") inherits the
   previous request. The rules are :func:`agent.understanding.understand`,
   a pure function. A question they leave open is a knowledge question: a
   tolerance question when it names a test, else a protocol question when
   retrieval finds anything like it, else out of scope. No model routes.
2. **tools**: the typed, read-only tools of ``agent.tools`` run in code.
   Protocol questions are graded by the retrieval's calibrated gate; when
   nothing relevant is found the query is rewritten once, then the agent
   abstains (corrective RAG). The passages that state a tolerance question's
   table rows join the retrieved ones (:mod:`agent.row_passages`).
3. **answer**: protocol answers are extracted first: code finds the spans
   of the passages that state the answer (:mod:`agent.extraction`) and
   shows them with their citations at once; the LLM may add one sentence
   from those spans alone; when no span states what was asked, the agent
   abstains. Analyses (by kind of question and period, see
   :mod:`agent.data_calls`), comparisons, fleet overviews, data lists and
   tolerance look-ups are written from the tool results by code.
4. **verify**: every number in the answer must appear, with its unit, in a
   tool result, the passage it cites or the question; a sentence that fails
   is dropped and the extract is the answer.

The answers written by code are in :mod:`agent.answers`, the number and
citation checks in :mod:`agent.verification`, the prompts in
:mod:`agent.prompts`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from pydantic import ValidationError

from agent.answers import (
    CLINICAL_REPLY,
    NOT_FOUND,
    OUT_OF_SCOPE_REPLY,
    SMALL_TALK_REPLY,
    abstention,
    answer_from_tolerance,
)
from agent.data_answers import answer_from_calls
from agent.data_calls import data_calls
from agent.errors import QAAgentError, ServiceError
from agent.extraction import Extract, Lexicon, extract, question_parts, worded
from agent.prompts import REWRITE_PROMPT, SPAN_PROMPT
from agent.qa.selection import SelectionError
from agent.row_passages import passages_for_rows
from agent.tools import ToolContext, run_tool
from agent.understanding import (
    INTENTS,
    Intent,
    Request,
    RequestContext,
    Route,
    mentions,
    rule_intent,
    understand,
)
from agent.verification import (
    best_source,
    cited_numbers,
    evidence_text,
    numbers_in,
    unbound_numbers,
    unsupported_numbers,
)

__all__ = [
    "CLINICAL_REPLY",
    "INTENTS",
    "NOT_FOUND",
    "OFF_TOPIC_DENSE",
    "OUT_OF_SCOPE_REPLY",
    "SMALL_TALK_REPLY",
    "Agent",
    "AgentState",
    "BackendUnavailable",
    "Call",
    "Conversation",
    "Intent",
    "Request",
    "RequestContext",
    "Route",
    "Turn",
    "answer_from_tolerance",
    "best_source",
    "cited_numbers",
    "mentions",
    "numbers_in",
    "rule_intent",
    "understand",
    "unsupported_numbers",
]

#: The model's one sentence is cut off (and dropped) after this many tokens:
#: a sentence of every value takes 20-50; beyond, it costs seconds and says
#: nothing the extract does not (issue 14: full answer p95 < 15 s).
SENTENCE_TOKENS = 72
#: ... and given up after this many seconds: the extract is on screen by then
#: (0.03 s median) and is the answer. Idle, every sentence took under 12 s
#: (bench/protocol_speed.py); with other jobs on both cores a few took 20 to
#: 100 s, the model's two threads starved of CPU (README, "Protocol answer
#: speed").
SENTENCE_SECONDS = 15.0
#: Below this best dense similarity to any passage a question is off topic.
#: Seen on the eval sets: off-topic questions 0.05-0.30 (weather, recipes,
#: scripts), near-domain unanswerable ones 0.33-0.58 (TG-51 kQ, TG-43).
OFF_TOPIC_DENSE = 0.31


class BackendUnavailable(ServiceError):  # noqa: N818 (reads as a state)
    """The language model could not be reached; the message says what to do.

    Requests that code answers alone (analyses, fleet overview, data on hand,
    small talk, the patient-question guard) still work without the model.
    """


class AgentState(TypedDict, total=False):
    """What flows through the steps (each returns the keys it sets)."""

    question: str
    route: Route
    request: Request
    passages: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    answer: str
    abstained: bool
    evidence: str
    attempts: int
    notes: list[str]


@dataclass
class Call:
    """What belongs to one ``ask`` call (the conversation, the callbacks)."""

    conversation: Conversation
    on_token: Callable[[str], None] | None = None
    on_step: Callable[[dict[str, Any]], None] | None = None


@dataclass
class Turn:
    """One finished exchange, kept for follow-up questions."""

    question: str
    answer: str
    route: Route
    #: The whole request (what was asked, its period), for follow-ups.
    request: Request | None = None


@dataclass
class Conversation:
    """A conversation's memory (one per user session)."""

    turns: list[Turn] = field(default_factory=list)
    uploads: list[Path] = field(default_factory=list)  # image files, the chat's


class Agent:
    """The linac QA agent over one LLM and one tool context.

    Parameters
    ----------
    llm : BaseChatModel
        From :func:`agent.llm.chat_model`.
    ctx : ToolContext
        Settings, data source and caches for the tools.
    backend, model : str
        Shown with every answer.
    unavailable : str
        Why there is no LLM when ``llm`` is None, said when a request needs one.
    """

    def __init__(self, llm: Any, ctx: ToolContext, backend: str = "",
                 model: str = "", unavailable: str = "") -> None:
        self.llm = llm
        self.ctx = ctx
        self.backend = backend
        self.model = model
        #: Why there is no LLM (``llm`` None): said when a request needs one.
        self.unavailable = unavailable

    def _model_down(self, exc: BaseException | None = None) -> BackendUnavailable:
        """The error for a request that needs the LLM when it cannot answer."""
        if self.llm is None:
            why = self.unavailable or "no language model is configured"
        else:
            why = (f"the language model ({self.backend} {self.model}) did not "
                   f"answer: {type(exc).__name__}: {exc}")
        return BackendUnavailable(
            f"{why}. Protocol questions need the model: start it (for Ollama, "
            "`ollama serve` and `ollama pull <model>`; or set "
            "QA_AGENT_LLM_BACKEND=embedded) and ask again. Drift analyses, the "
            "fleet overview and questions about the data on hand still work.")

    # -- graph -------------------------------------------------------------
    def _run(self, state: AgentState, call: Call) -> AgentState:
        """The fixed graph: route, tools, answer, verify; a "regenerate" note
        from verify sends the answer back once.

        Plain calls, not LangGraph's StateGraph: the graph is a fixed chain
        that no model steers (README.md, "The agent"), and importing LangGraph
        cost 1.1-1.4 s of every command's start-up, most of the 2 s a
        tolerance look-up through ``qa-agent ask`` may take (issue 14,
        ``bench/cli_startup.py``).
        """
        for step in (self._route, self._tools, self._answer):
            state.update(step(state, call))
        state.update(self._verify(state))
        if state.get("attempts", 0) == 1 and state["notes"][-1:] == ["regenerate"]:
            state.update(self._answer(state, call))
            state.update(self._verify(state))
        return state

    def ask(self, question: str, conversation: Conversation | None = None,
            on_token: Callable[[str], None] | None = None,
            on_step: Callable[[dict[str, Any]], None] | None = None,
            ) -> dict[str, Any]:
        """Answer one question; the ``qa-agent ask --json`` document.

        ``on_token`` receives the answer's text as it is written (streaming);
        when the check replaces an answer, the final ``answer`` is what counts.
        ``on_step`` receives each tool call (name, args, result, seconds) as
        soon as it has run. One Agent may serve several conversations at
        once: what belongs to a call travels in a :class:`Call`, not on the
        Agent.

        Parameters
        ----------
        question : str
            The user's words.
        conversation : Conversation, optional
            The session's memory; the finished turn is appended to it.
        on_token, on_step : callable, optional
            Streaming callbacks (answer text, tool calls).

        Returns
        -------
        dict
            answer, citations, tool_calls, abstained, backend, model, seconds
            and intent.

        Raises
        ------
        BackendUnavailable
            When the request needs the LLM and it cannot answer.
        """
        started = time.perf_counter()
        call = Call(conversation or Conversation(), on_token, on_step)
        state = self._run({"question": question, "attempts": 0, "notes": [],
                           "tool_calls": [], "passages": []}, call)
        if conversation is not None:
            conversation.turns.append(Turn(question, state["answer"], state["route"],
                                           state.get("request")))
        cited = sorted(cited_numbers(state["answer"]))
        passages = state.get("passages", [])
        citations = [{k: passages[n - 1][k] for k in ("source", "section", "page",
                                                       "text")}
                     for n in cited if 0 < n <= len(passages)]
        return {"answer": state["answer"], "citations": citations,
                "tool_calls": state.get("tool_calls", []),
                "abstained": bool(state.get("abstained")),
                "backend": self.backend, "model": self.model,
                "seconds": round(time.perf_counter() - started, 2),
                "intent": state["route"].intent}

    # -- nodes -------------------------------------------------------------
    def _machines(self) -> list[str]:
        try:
            on_hand = set(self.ctx.engine.machines())
        except QAAgentError:  # no data on hand: names still come from the registry
            on_hand = set()
        return sorted(on_hand | set(self.ctx.tables.machines))

    def _route(self, state: AgentState, call: Call) -> AgentState:
        question = state["question"]
        turns = call.conversation.turns
        request = understand(question, RequestContext(
            machines=self._machines(), previous=turns[-1].route if turns else None,
            previous_request=turns[-1].request if turns else None))
        if request.intent is not None:
            return {"route": request.route(), "request": request}
        names = request.names()
        # The rules settle analysis, fleet, data, small talk and declines; a
        # knowledge question is decided by what the protocols hold, not by a
        # model (a 1.5B's route cost 2-5 s and made up names: an electron
        # beam and a month for an isocentricity question). A named test makes
        # it a tolerance question: the table's rows join the passages and
        # the extract decides which answers. Otherwise the retrieval's gate:
        # relevant or near (the answer step abstains) is a protocol question,
        # nothing like the documents is out of scope ("weather tomorrow?").
        if "test" in names:
            intent = "tolerance"
        else:
            intent = "out_of_scope" if self._topic(question) == "off" else "protocol"
        return {"route": Route(intent=intent).model_copy(update=names),
                "request": request}

    def _topic(self, question: str) -> str:
        """"relevant" (retrieval's gate passes), "near" (linac/physics words
        but nothing that answers: the agent says it will not guess) or "off"
        (nothing like the documents at all: weather, recipes, scripts)."""
        try:
            relevant, dense = self.ctx.searcher.relevance(question)
        except Exception:  # no index: treat as near, the answer step abstains
            return "near"
        if relevant:
            return "relevant"
        return "near" if dense >= OFF_TOPIC_DENSE else "off"

    def _call(self, state: AgentState, name: str, args: dict[str, Any],
              on_step: Callable[[dict[str, Any]], None] | None = None) -> Any:
        args = {k: v for k, v in args.items() if v is not None}
        started = time.perf_counter()
        try:
            result = run_tool(self.ctx, name, args)
        except (SelectionError, ValidationError, ValueError) as exc:
            result = {"error": str(exc)}
        step = {"name": name, "args": args, "result": result,
                "seconds": round(time.perf_counter() - started, 3)}
        state["tool_calls"].append(step)
        if on_step:
            on_step(step)
        return result

    def _tools(self, state: AgentState, run: Call) -> AgentState:
        def call(name: str, args: dict[str, Any]) -> Any:
            return self._call(state, name, args, run.on_step)

        route = state["route"]
        question = state["question"]
        request = state.get("request")
        if request is not None and request.clarification:
            return {"tool_calls": state["tool_calls"], "passages": []}
        if route.intent in ("protocol", "tolerance"):
            rows = []
            if route.intent == "tolerance" and route.test:
                rows = call("lookup_tolerance", {
                    "test": route.test, "frequency": route.frequency,
                    "machine": route.machine, "machine_class": route.machine_class,
                    "energy": route.energy, "beam": route.beam}).get("rows", [])
            found = call("search_protocols", {"query": question})
            passages = found.get("results", [])
            for part in question_parts(question):  # every value asked for
                seen = {p["text"] for p in passages}
                passages += [p for p in call("search_protocols", {
                    "query": part, "k": 3}).get("results", [])
                    if p["text"] not in seen]
            if not passages and not rows:
                rewritten = self._rewrite(question)
                if rewritten and rewritten.lower() != question.lower():
                    found = call("search_protocols", {"query": rewritten})
                    passages = found.get("results", [])
            # The passages that state the table's rows, so its answer is cited.
            state["passages"] = passages + passages_for_rows(
                self.ctx.searcher, rows, passages)
        elif route.intent == "analysis":
            data_calls(route, request, call, run.conversation.uploads)
        elif route.intent == "fleet":
            call("fleet_overview", {"machine": route.machine})
        elif route.intent == "data":
            call("list_data", {"machine": route.machine})
        return {"tool_calls": state["tool_calls"], "passages": state["passages"]}

    def _rewrite(self, question: str) -> str:
        from langchain_core.messages import HumanMessage, SystemMessage

        if self.llm is None:
            return ""
        messages = [SystemMessage(REWRITE_PROMPT), HumanMessage(question)]
        try:
            return str(self.llm.invoke(messages).content).strip().strip('"')[:200]
        except Exception:  # the rewrite is optional: abstain instead
            return ""

    def _evidence(self, state: AgentState) -> str:
        return evidence_text(state["question"], state.get("passages", []),
                             state["tool_calls"])

    def _answer(self, state: AgentState, call: Call) -> AgentState:
        route = state["route"]
        attempts = state.get("attempts", 0) + 1
        if route.intent == "clinical":
            return self._final(CLINICAL_REPLY, attempts, abstained=True)
        if route.intent == "out_of_scope":
            return self._final(OUT_OF_SCOPE_REPLY, attempts, abstained=True)
        if route.intent == "small_talk":
            return self._final(SMALL_TALK_REPLY, attempts)
        request = state.get("request")
        if request is not None and request.clarification:
            return self._final(request.clarification, attempts)
        if route.intent in ("analysis", "fleet", "data"):
            return self._final(answer_from_calls(state["tool_calls"]), attempts)
        passages = state.get("passages", [])
        if not passages:
            return self._final(NOT_FOUND, attempts, abstained=True)
        found = extract(state["question"], passages, Lexicon.of(self.ctx.searcher))
        if found.abstained:  # no passage, nor any table row, states what was asked
            return self._final(abstention(found.nearby), attempts, abstained=True)
        # The table answers when the extract quotes one of its rows (by machine
        # class, with its notes); when the passages that answer are about
        # something else ("what target T does TG-218 use"), they do.
        written = answer_from_tolerance(state["tool_calls"], passages, found.spans)
        if written:
            return self._final(written, attempts)
        return self._final(self._write(state, found, call.on_token),
                           attempts)

    def _write(self, state: AgentState, found: Extract,
               on_token: Callable[[str], None] | None) -> str:
        """Extract first (streamed at once), then the model's one sentence from
        the spans alone, kept when the spans it cites state its numbers."""
        from langchain_core.messages import HumanMessage, SystemMessage

        shown = found.text()
        if on_token:
            on_token(shown)
        if self.llm is None:
            return shown
        messages = [SystemMessage(SPAN_PROMPT.format(spans=found.numbered())),
                    HumanMessage(state["question"])]
        text, pieces = "", 0
        deadline = time.perf_counter() + SENTENCE_SECONDS
        try:
            for chunk in self.llm.stream(messages, stop=["\n"]):
                piece = str(chunk.content)
                if on_token and piece:
                    on_token(("\n\n" if not text else "") + piece)
                text, pieces = text + piece, pieces + 1
                # Rambling, or too slow to wait for: the extract stands.
                if pieces >= SENTENCE_TOKENS or time.perf_counter() > deadline:
                    return shown
        except Exception as exc:  # the server went away mid-answer
            raise self._model_down(exc) from exc
        sentence = worded(text, found)
        if not sentence or unbound_numbers(sentence, found.cited()):
            return shown
        return f"{shown}\n\n{sentence}"

    def _final(self, answer: str, attempts: int, abstained: bool = False) -> AgentState:
        return {"answer": answer, "attempts": attempts, "abstained": abstained}

    def _verify(self, state: AgentState) -> AgentState:
        notes = list(state.get("notes", []))
        request = state.get("request")
        if request is not None and request.clarification:
            # A question back lists machine names, not measured numbers.
            return {"notes": [*notes, "clarification"]}
        bad = unsupported_numbers(state["answer"], self._evidence(state))
        if not bad:
            return {"notes": [*notes, "verified"]}
        if state.get("passages"):  # never "the closest passage"
            found = extract(state["question"], state["passages"],
                            Lexicon.of(self.ctx.searcher))
            return {"answer": found.text() or abstention(found.nearby),
                    "abstained": found.abstained,
                    "notes": [*notes, f"fallback: unsupported {sorted(bad)}"]}
        if state.get("attempts", 0) == 1:
            return {"notes": [*notes, "regenerate"]}
        return {"answer": NOT_FOUND, "abstained": True,
                "notes": [*notes, f"fallback: unsupported {sorted(bad)}"]}

