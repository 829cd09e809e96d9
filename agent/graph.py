"""The agent graph: route, run tools in code, answer with citations, verify.

Small local models cannot be trusted with a free tool loop or with numbers
(DESIGN.md), so the graph is fixed and short:

1. **route**: the request's intent and arguments under a JSON schema (the
   LLM), completed by deterministic name matching (machines, tests, energies,
   frequencies) and a guard for patient-specific questions; a follow-up ("and
   for 10X?") inherits the previous request's intent and arguments.
2. **tools**: the typed, read-only tools of ``agent.tools`` run in code.
   Protocol questions are graded by the retrieval's calibrated gate; when
   nothing relevant is found the query is rewritten once, then the agent
   abstains (corrective RAG).
3. **answer**: protocol answers are written by the LLM from numbered passages
   ([1], [2]); analyses, fleet overviews, data lists and tolerance look-ups
   are written from the tool result by code.
4. **verify**: every number in the answer must appear in a tool result, a
   cited passage or the question; otherwise the answer is regenerated once,
   then replaced by one built from the passages themselves.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ValidationError

from agent.qa.names import _TEST_ALIASES, TESTS, canonical_energy, canonical_machine
from agent.qa.selection import SelectionError
from agent.tools import ToolContext, run_tool

Frequency = Literal["daily", "weekly", "monthly", "quarterly", "annual"]
Intent = Literal["protocol", "tolerance", "analysis", "fleet", "data", "small_talk",
                 "out_of_scope", "clinical"]
INTENTS: tuple[str, ...] = Intent.__args__  # type: ignore[attr-defined]
FREQUENCY_WORDS = {"daily": "daily", "morning": "daily", "weekly": "weekly",
                   "monthly": "monthly", "month": "monthly", "quarterly": "quarterly",
                   "annual": "annual", "annually": "annual", "yearly": "annual"}


class BackendUnavailable(RuntimeError):  # noqa: N818 (reads as a state)
    """The language model could not be reached; the message says what to do.

    Requests that code answers alone (analyses, fleet overview, data on hand,
    small talk, the patient-question guard) still work without the model.
    """


class Route(BaseModel):
    """The request, as the router understood it."""

    intent: Intent
    machine: str | None = None
    test: str | None = None
    energy: str | None = None
    frequency: Frequency | None = None
    machine_class: Literal["non-IMRT", "IMRT", "SRS/SBRT"] | None = None
    beam: Literal["photon", "electron"] | None = None
    start: str | None = None
    end: str | None = None


ROUTER_PROMPT = """You route requests for a linac QA assistant used by medical \
physicists. Reply with JSON only. intent is one of:
- protocol: a question about what QA protocols or procedures say (TG-142, \
TG-218, MPPG 9.a, SPC methods, baselines, action levels, QA devices)
- tolerance: asks for the tolerance value of one QA test
- analysis: asks to check, analyse or trend QA measurements of a machine \
(drift, shifts, control chart, is X drifting, how is the output)
- fleet: asks for an overview of all machines or which need attention
- data: asks what QA data, machines or tests are on hand
- small_talk: greetings, thanks
- clinical: about a specific patient's treatment, dose or prescription
- out_of_scope: anything else, or requests to change or delete data
Fill machine, test, energy, frequency, start and end (YYYY-MM-DD) when named.
Examples:
"what is the monthly tolerance for jaw position indicators?" -> \
{"intent": "tolerance", "test": "jaw", "frequency": "monthly"}
"Is the 6X output on TrueBeam 2 drifting?" -> \
{"intent": "analysis", "machine": "TrueBeam 2", "test": "output", "energy": "6X"}
"how do I set up an I-MR chart?" -> {"intent": "protocol"}
"which machines need attention?" -> {"intent": "fleet"}
"what data do we have?" -> {"intent": "data"}
"what dose should I give this patient?" -> {"intent": "clinical"}
"""

ANSWER_PROMPT = """You answer linac QA protocol questions for medical \
physicists using ONLY the numbered passages below. Answer in one to three \
sentences. Copy every number with its unit exactly as the passage writes it. \
Cite the passages you use as [1], [2]. If the passages do not answer the \
question, say "The documents I have do not answer this." Never add numbers \
that are not in the passages.

Passages:
{passages}
"""

CLINICAL_REPLY = ("I answer questions about linac QA and QA protocols. Questions "
                  "about a specific patient's treatment, dose or prescription are "
                  "not my job: please ask the treating physician or the "
                  "physicist responsible for that plan.")
OUT_OF_SCOPE_REPLY = ("That is outside what I do. I answer questions about linac "
                      "QA protocols and tolerances, and I analyse the QA data on "
                      "hand (drift, control charts, fleet overview). I cannot change "
                      "or delete data.")
SMALL_TALK_REPLY = ("Hello. Ask me about a QA tolerance or protocol (\"monthly jaw "
                    "tolerance?\"), or ask me to check a series (\"is the 6X output "
                    "on TrueBeam 2 drifting?\").")
NOT_FOUND = ("The protocols I have do not answer this, so I will not guess. "
             "Add the relevant document to the knowledge base, or rephrase.")

_CLINICAL = re.compile(
    r"\b(patient'?s?|prescri\w*|fractionat\w*|fractions? (for|should)"
    r"|treat (him|her|them)|lesion|tumou?r|metasta\w*|should i (treat|give)"
    r"|dose (for|to) (this|my|the) (patient|tumou?r|lesion))\b", re.IGNORECASE)
# "Mrs Jones", "Mr. Smith" (case matters: "I-MR" is a chart).
_PERSON = re.compile(r"\b(Mr|Mrs|Ms|Miss)\.?\s+[A-Z][a-z]")
# Intents that plain words settle better than a small model does.
_ANALYSIS_WORDS = re.compile(
    r"\b(drift\w*|trend\w*|shift\w*|analy[sz]\w*|control chart|chart|spc|"
    r"stable|how is|how's|how are|check|look at|signals?|out of control)\b",
    re.IGNORECASE)
_FLEET_WORDS = re.compile(
    r"\b(fleet|all (the )?(machines|linacs)|which (machines|linacs)|worst|"
    r"need\w* attention|overview|every (machine|linac))\b", re.IGNORECASE)
_DATA_WORDS = re.compile(
    r"\b(what|which) (qa )?(data|series|measurements|machines and)\b|"
    r"\b(data|series) (do we have|on hand|loaded|are loaded|is loaded)\b|"
    r"\bdate range\b|\bwhat (have we got|do we have|is there) (for|on)\b",
    re.IGNORECASE)
_SMALL_TALK = re.compile(r"^\W*(hi|hello|hey|good (morning|afternoon|evening)|"
                         r"thanks?( you)?|thank you|cheers|bye)\b[\w\s!.,?']*$",
                         re.IGNORECASE)
_FORBIDDEN = re.compile(
    r"^\W*(please\s+|can you\s+|could you\s+|would you\s+|go and\s+)?"
    r"(delete|remove|drop|erase|overwrite|modify|edit|change|update|set|email|"
    r"send|upload|post|print|install|download|reset)\b"
    r"|\b(shell|rm -rf|sudo|bash|terminal command|execute|run (a |the )?"
    r"(command|script|code))\b", re.IGNORECASE)
#: Below this best dense similarity to any passage a question is off topic.
#: Seen on the eval sets: off-topic questions 0.05-0.30 (weather, recipes,
#: scripts), near-domain unanswerable ones 0.33-0.58 (TG-51 kQ, TG-43).
OFF_TOPIC_DENSE = 0.31
_ASKS_TOLERANCE = re.compile(
    r"\bwhat('s| is| are)?\b[^?]*\b(toleran\w*|limits?)\b|"
    r"(?<!within )(?<!in )(?<!of )\btoleran\w*\s*\?\s*$", re.IGNORECASE)
_ANYTHING = re.compile(r"\b(anything|what should|worr\w*|problems?|issues?)\b",
                       re.IGNORECASE)
_FOLLOW_UP = re.compile(r"^\s*(and|what about|how about|same for|also|now)\b",
                        re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.]*\d)")


def numbers_in(text: str) -> set[str]:
    """Numbers written in a text, normalised ("2.0" -> "2"), citations left out."""
    text = re.sub(r"\[\d+\]", " ", text)
    return {f"{float(m):g}" for m in re.findall(r"\d+(?:\.\d+)?", text)}


def unsupported_numbers(answer: str, evidence: str) -> set[str]:
    """Numbers in the answer that appear nowhere in the evidence.

    A number written with d >= 2 decimals is also supported by an evidence
    value that rounds to it ("0.0034" by 0.003412), so code's rounding is not
    an invented number; whole numbers and one-decimal numbers must match
    exactly ("2 mm" is not supported by "1.5 mm").
    """
    answer = re.sub(r"\[\d+\]", " ", answer)
    values = [float(m) for m in re.findall(r"\d+(?:\.\d+)?", evidence)]
    exact = {f"{v:g}" for v in values}
    bad = set()
    for written in re.findall(r"\d+(?:\.\d+)?", answer):
        if f"{float(written):g}" in exact:
            continue
        decimals = len(written.split(".")[1]) if "." in written else 0
        target = float(written)
        if decimals < 2 or not any(round(v, decimals) == target for v in values):
            bad.add(f"{target:g}")
    return bad


def _test_patterns() -> list[tuple[re.Pattern[str], str]]:
    names = {k.replace("_", " "): k for k in TESTS} | dict(_TEST_ALIASES)
    # An optional plural "s" ("output factors", "jaws").
    return [(re.compile(rf"(?<![\w-]){re.escape(alias)}s?(?![\w-])"), names[alias])
            for alias in sorted(names, key=len, reverse=True)
            if len(alias) >= 3 or alias == "wl"]


#: Test names and aliases, longest first, as compiled patterns (built once).
_TEST_PATTERNS = _test_patterns()


def mentions(question: str, machines: list[str]) -> dict[str, str]:
    """Machines, tests, energies and frequencies named in a question, by rule.

    More reliable than a small model for names: "truebeam 2", "TB2", "10 MV",
    "flatness", "lasers", "monthly".
    """
    found: dict[str, str] = {}
    low = question.lower()
    # Energy: "6X", "6 MV", "10 MV FFF", "9 MeV", "6E".
    energy = re.search(r"\b(\d{1,2})\s*(mv\s*fff|fff|mv|mev|x|e)\b", low)
    if energy:
        canonical = canonical_energy(f"{energy.group(1)} {energy.group(2)}")
        if canonical:
            found["energy"] = canonical
    # Machine: any window of one to three words that matches a known machine.
    tokens = re.findall(r"[a-z0-9]+", low)
    for size in (3, 2, 1):
        for i in range(len(tokens) - size + 1):
            candidate = " ".join(tokens[i:i + size])
            name = canonical_machine(candidate, machines)
            if name in machines:
                found["machine"] = name
                break
        if "machine" in found:
            break
    # Test: the longest alias or canonical name found in the question.
    # The test named first is the subject ("ODI tolerance at isocentre");
    # at one place the longest alias wins ("output factors" over "output").
    hits = [(m.start(), -len(m.group(0)), test) for pattern, test in _TEST_PATTERNS
            if (m := pattern.search(low))]
    if hits:
        found["test"] = min(hits)[2]
    for word, freq in FREQUENCY_WORDS.items():
        if re.search(rf"\b{word}\b", low):
            found["frequency"] = freq
            break
    if "energy" not in found:
        if re.search(r"\belectrons?\b", low):
            found["beam"] = "electron"
        elif re.search(r"\b(photons?|x-?rays?)\b", low):
            found["beam"] = "photon"
    if re.search(r"\bnon[- ]?imrt\b", low):
        found["machine_class"] = "non-IMRT"
    elif re.search(r"\b(?<!non-)(?<!non )(srs|sbrt|stereotactic|radiosurgery)\b",
                   low):
        found["machine_class"] = "SRS/SBRT"
    elif re.search(r"\bimrt\b", low):
        found["machine_class"] = "IMRT"
    dates = re.findall(r"\b(20\d\d-\d\d-\d\d)\b", question)
    if dates:
        found["start"] = dates[0]
        if len(dates) > 1:
            found["end"] = dates[1]
    else:
        found.update(_written_dates(low))
    return found


_MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august",
     "september", "october", "november", "december"], start=1)}
_WRITTEN_DATE = re.compile(
    r"\b(since|from|after|starting|until|till|up to|through|before|to)\s+"
    r"(?:(\d{1,2})(?:st|nd|rd|th)?\s+)?(" + "|".join(_MONTHS) + r")\s+(20\d\d)\b")


def _written_dates(low: str) -> dict[str, str]:
    """"since January 2025" -> start 2025-01-01; "up to 1 March 2025" -> end."""
    found: dict[str, str] = {}
    for word, day, month, year in _WRITTEN_DATE.findall(low):
        date = f"{year}-{_MONTHS[month]:02d}-{int(day or 1):02d}"
        key = "start" if word in ("since", "from", "after", "starting") else "end"
        found.setdefault(key, date)
    year = re.search(r"\b(?:in|during|over|for)\s+(20\d\d)\b(?!-)", low)
    if year and not found:
        found = {"start": f"{year.group(1)}-01-01", "end": f"{year.group(1)}-12-31"}
    return found


class AgentState(TypedDict, total=False):
    """What flows through the graph."""

    question: str
    route: Route
    passages: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    answer: str
    abstained: bool
    evidence: str
    attempts: int
    notes: list[str]


@dataclass
class Turn:
    """One finished exchange, kept for follow-up questions."""

    question: str
    answer: str
    route: Route


@dataclass
class Conversation:
    """A conversation's memory (one per user session)."""

    turns: list[Turn] = field(default_factory=list)


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
    """

    def __init__(self, llm: Any, ctx: ToolContext, backend: str = "",
                 model: str = "", unavailable: str = "") -> None:
        self.llm = llm
        self.ctx = ctx
        self.backend = backend
        self.model = model
        #: Why there is no LLM (``llm`` None): said when a request needs one.
        self.unavailable = unavailable
        self.graph = self._build()

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
    def _build(self) -> Any:
        from langgraph.graph import END, START, StateGraph

        graph = StateGraph(AgentState)
        graph.add_node("route", self._route)
        graph.add_node("tools", self._tools)
        graph.add_node("answer", self._answer)
        graph.add_node("verify", self._verify)
        graph.add_edge(START, "route")
        graph.add_edge("route", "tools")
        graph.add_edge("tools", "answer")
        graph.add_edge("answer", "verify")
        graph.add_conditional_edges(
            "verify", lambda s: "answer" if s.get("attempts", 0) == 1
            and s.get("notes", [])[-1:] == ["regenerate"] else END,
            ["answer", END])
        return graph.compile()

    def ask(self, question: str, conversation: Conversation | None = None,
            on_token: Callable[[str], None] | None = None,
            on_step: Callable[[dict[str, Any]], None] | None = None,
            ) -> dict[str, Any]:
        """Answer one question; the ``qa-agent ask --json`` document.

        ``on_token`` receives the answer's text as it is written (streaming);
        when the check replaces an answer, the final ``answer`` is what counts.
        ``on_step`` receives each tool call (name, args, result, seconds) as
        soon as it has run. One Agent may serve several conversations at
        once: what belongs to a call travels in the graph's config, not on
        the Agent.
        """
        started = time.perf_counter()
        call = {"conversation": conversation or Conversation(),
                "on_token": on_token, "on_step": on_step}
        state: AgentState = self.graph.invoke(
            {"question": question, "attempts": 0, "notes": [], "tool_calls": [],
             "passages": []}, config={"configurable": {"call": call}})
        if conversation is not None:
            conversation.turns.append(Turn(question, state["answer"], state["route"]))
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
            return sorted({s.machine for s in self.ctx.all_series()}
                          | set(self.ctx.tables.machines))
        except Exception:  # no data on hand: names still come from the registry
            return sorted(self.ctx.tables.machines)

    def _route(self, state: AgentState, config: RunnableConfig) -> AgentState:
        question = state["question"]
        found = mentions(question, self._machines())
        turns = _call_of(config)["conversation"].turns
        previous = turns[-1].route if turns else None
        if _CLINICAL.search(question) or _PERSON.search(question):
            return {"route": Route(intent="clinical")}
        if previous and (_FOLLOW_UP.match(question) or len(question.split()) <= 4) \
                and previous.intent in ("tolerance", "analysis", "protocol") \
                and found:
            return {"route": previous.model_copy(update=found)}
        updates = {k: v for k, v in found.items() if k in Route.model_fields}
        ruled = rule_intent(question, updates)
        if ruled is not None:
            return {"route": Route(intent=ruled).model_copy(update=updates)}
        if _is_tolerance_lookup(question, updates):
            # A named test asked with "tolerance", "limit", "how far"... is
            # a table look-up whatever the model would say: no LLM call.
            return {"route": Route(intent="tolerance").model_copy(update=updates)}
        route = self._llm_route(question)
        # The rules above settle analysis, fleet, data and small talk; for
        # the rest a small model's intent is only a hint: what the protocols
        # hold decides (retrieval's calibrated gate). Relevant passages or a
        # named test make it a protocol question, nothing relevant makes it
        # out of scope ("weather tomorrow?" is not a protocol question the
        # documents happen to lack).
        if route.intent != "tolerance":
            topic = "relevant" if "test" in updates else self._topic(question)
            route = route.model_copy(
                update={"intent": "out_of_scope" if topic == "off" else "protocol"})
        if route.intent == "protocol" and "test" in updates \
                and "frequency" in updates:
            # The model's "protocol" for "<test> <frequency>?" is the table.
            route = route.model_copy(update={"intent": "tolerance"})
        return {"route": route.model_copy(update=updates)}

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

    def _llm_route(self, question: str) -> Route:
        from langchain_core.messages import HumanMessage, SystemMessage

        if self.llm is None:
            raise self._model_down()
        messages = [SystemMessage(ROUTER_PROMPT), HumanMessage(question)]
        try:
            raw = structured(self.llm, messages, Route)
            return Route.model_validate(raw)
        except (ValidationError, ValueError, KeyError, TypeError):
            return Route(intent="protocol")
        except Exception as exc:  # connection refused, server gone, model error
            raise self._model_down(exc) from exc

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

    def _tools(self, state: AgentState, config: RunnableConfig) -> AgentState:
        on_step = _call_of(config)["on_step"]

        def call(name: str, args: dict[str, Any]) -> Any:
            return self._call(state, name, args, on_step)

        route = state["route"]
        question = state["question"]
        if route.intent in ("protocol", "tolerance"):
            if route.intent == "tolerance" and route.test:
                call("lookup_tolerance", {
                    "test": route.test, "frequency": route.frequency,
                    "machine": route.machine, "machine_class": route.machine_class,
                    "energy": route.energy, "beam": route.beam})
            found = call("search_protocols", {"query": question})
            passages = found.get("results", [])
            if not passages:
                rewritten = self._rewrite(question)
                if rewritten and rewritten.lower() != question.lower():
                    found = call("search_protocols", {"query": rewritten})
                    passages = found.get("results", [])
            state["passages"] = passages
        elif route.intent == "analysis":
            call("analyze_series", {
                "machine": route.machine, "test": route.test, "energy": route.energy,
                "start": route.start, "end": route.end})
        elif route.intent == "fleet":
            call("fleet_overview", {"machine": route.machine})
        elif route.intent == "data":
            call("list_data", {"machine": route.machine})
        return {"tool_calls": state["tool_calls"], "passages": state["passages"]}

    def _rewrite(self, question: str) -> str:
        from langchain_core.messages import HumanMessage, SystemMessage

        if self.llm is None:
            return ""
        messages = [SystemMessage(
            "Rewrite the question as a short keyword search query for linac QA "
            "protocols (TG-142, TG-218, MPPG 9.a). Reply with the query only."),
            HumanMessage(question)]
        try:
            return str(self.llm.invoke(messages).content).strip().strip('"')[:200]
        except Exception:  # the rewrite is optional: abstain instead
            return ""

    def _evidence(self, state: AgentState) -> str:
        parts = [state["question"]]
        parts += [p["text"] for p in state.get("passages", [])]
        parts += [json.dumps(c["result"], default=str) for c in state["tool_calls"]]
        return "\n".join(parts)

    def _answer(self, state: AgentState, config: RunnableConfig) -> AgentState:
        route = state["route"]
        attempts = state.get("attempts", 0) + 1
        if route.intent == "clinical":
            return self._final(CLINICAL_REPLY, attempts, abstained=True)
        if route.intent == "out_of_scope":
            return self._final(OUT_OF_SCOPE_REPLY, attempts, abstained=True)
        if route.intent == "small_talk":
            return self._final(SMALL_TALK_REPLY, attempts)
        if route.intent in ("analysis", "fleet", "data"):
            return self._final(answer_from_tool(state["tool_calls"][-1]), attempts)
        passages = state.get("passages", [])
        if route.intent == "tolerance":
            # The tolerance table answers when no passage is relevant, or when
            # the best passages state one of its rows; when they are about
            # something else ("what target T does TG-218 use...", "MLC
            # transmission") the question is not the table's: the passages
            # answer it.
            written = answer_from_tolerance(state["tool_calls"], passages)
            if written and (not passages or cited_numbers(written) & {1, 2}):
                return self._final(written, attempts)
        if not passages:
            return self._final(NOT_FOUND, attempts, abstained=True)
        return self._final(self._write(state, attempts,
                                       _call_of(config)["on_token"]), attempts)

    def _write(self, state: AgentState, attempts: int,
               on_token: Callable[[str], None] | None) -> str:
        from langchain_core.messages import HumanMessage, SystemMessage

        numbered = "\n".join(
            f"[{n}] ({p['source']}, {p['section']}) {p['text']}"
            for n, p in enumerate(state["passages"], start=1))
        system = ANSWER_PROMPT.format(passages=numbered)
        if attempts > 1:
            system += ("\nYour previous answer contained numbers that are not in "
                       "the passages. Use only numbers that appear in them.")
        messages = [SystemMessage(system), HumanMessage(state["question"])]
        if self.llm is None:
            raise self._model_down()
        text = ""
        try:
            for chunk in self.llm.stream(messages):
                piece = str(chunk.content)
                text += piece
                if on_token and piece:
                    on_token(piece)
        except Exception as exc:  # the server went away mid-answer
            raise self._model_down(exc) from exc
        text = text.strip()
        if "do not answer" in text:
            # The calibrated gate found relevant passages; a small model that
            # still says no gets the best passage quoted instead.
            return answer_from_passages(state["passages"])
        if not re.search(r"\[\d+\]", text):
            # A small model often forgets the marker: cite the passage that
            # shares most of the answer's numbers and words.
            n = best_source(text, state["passages"])
            if n:
                text += f" [{n}]"
                if on_token:
                    on_token(f" [{n}]")
        return text

    def _final(self, answer: str, attempts: int, abstained: bool = False) -> AgentState:
        return {"answer": answer, "attempts": attempts, "abstained": abstained}

    def _verify(self, state: AgentState) -> AgentState:
        notes = list(state.get("notes", []))
        bad = unsupported_numbers(state["answer"], self._evidence(state))
        if not bad:
            return {"notes": [*notes, "verified"]}
        if state.get("attempts", 0) == 1:
            return {"notes": [*notes, "regenerate"]}
        return {"answer": answer_from_passages(state.get("passages", [])),
                "notes": [*notes, f"fallback: unsupported {sorted(bad)}"]}


def _call_of(config: RunnableConfig) -> dict[str, Any]:
    """What belongs to one ``ask`` call (conversation, callbacks)."""
    call = (config.get("configurable") or {}).get("call")
    return call or {"conversation": Conversation(), "on_token": None,
                    "on_step": None}


_TOLERANCE_WORDS = re.compile(
    r"\btol[a-z]*\b|\blimits?\b|how (far|much|accurate|close)|\bwithin\b|"
    r"how many (degrees|mm|millimet|percent)|allowed|acceptable|\bbe off\b",
    re.IGNORECASE)


def _is_tolerance_lookup(question: str, found: dict[str, str]) -> bool:
    """A named test asked with the word tolerance, limit, how far, within...

    A frequency alone does not make a look-up ("What is the flatness field
    called in Daily QA 3 data?" is a protocol question).
    """
    return "test" in found and bool(_TOLERANCE_WORDS.search(question))


def rule_intent(question: str, found: dict[str, str]) -> str | None:
    """The intent when plain words settle it, else None (the LLM decides)."""
    if _FORBIDDEN.search(question):
        return "out_of_scope"
    if _SMALL_TALK.match(question) and len(question.split()) <= 8:
        return "small_talk"
    if _DATA_WORDS.search(question):
        return "data"
    if _FLEET_WORDS.search(question) and "test" not in found:
        return "fleet"
    if "machine" in found:
        if "test" in found or "energy" in found:
            # A named machine and series is a question about its data,
            # unless it asks what the tolerance is.
            return "tolerance" if _ASKS_TOLERANCE.search(question) else "analysis"
        if _ANALYSIS_WORDS.search(question) or _ANYTHING.search(question):
            # The whole machine: its series worst first.
            return "fleet"
    return None


def structured(llm: Any, messages: list[Any], schema: type[BaseModel]) -> dict:
    """The LLM's reply constrained to a JSON schema, as a dict."""
    if hasattr(llm, "structured"):
        return llm.structured(messages, schema.model_json_schema())
    runnable = llm.with_structured_output(schema, method="json_schema")
    result = runnable.invoke(messages)
    return result.model_dump() if isinstance(result, BaseModel) else dict(result)


def cited_numbers(text: str) -> set[int]:
    """The passage numbers an answer cites ([1], [2])."""
    return {int(n) for n in re.findall(r"\[(\d+)\]", text)}


def _words(text: str) -> set[str]:
    """Words of four letters or more, lower case (for overlap scores)."""
    return set(re.findall(r"[a-z]{4,}", text.lower()))


def best_source(answer: str, passages: list[dict[str, Any]]) -> int | None:
    """1-based number of the passage sharing most numbers and words with a text."""
    numbers = numbers_in(answer)
    words = _words(answer)
    best, best_score = None, 0.0
    for n, p in enumerate(passages, start=1):
        score = 3 * len(numbers & numbers_in(p["text"])) + len(
            words & _words(p["text"]))
        if score > best_score:
            best, best_score = n, score
    return best


def answer_from_passages(passages: list[dict[str, Any]]) -> str:
    """The fallback: the best passage quoted with its citation."""
    if not passages:
        return NOT_FOUND
    best = passages[0]
    return (f"The closest passage I have, quoted as written [1] "
            f"({best['source']}, {best['section']}): \"{best['text']}\"")


def answer_from_tolerance(tool_calls: list[dict[str, Any]],
                          passages: list[dict[str, Any]]) -> str:
    """A tolerance answer written from the table look-up, citing its passage.

    Each row gives its tolerance (for the machine's class when one is known,
    one value when all classes agree, else per class) and its action limit
    when the table has one (TG-218: tolerance 95%, action 90%).
    """
    lookup = next((c["result"] for c in tool_calls
                   if c["name"] == "lookup_tolerance"), None)
    if not lookup or not lookup.get("rows"):
        return ""
    lines = []
    klass = lookup.get("machine_class")
    for row in lookup["rows"][:4]:
        value = _limit_text(row["limits"], row["unit"], klass)
        if row["kind"] == "minimum":
            value = f"at least {value}"
        if row.get("action_limits"):
            value += "; action limit " + _limit_text(row["action_limits"],
                                                     row["unit"], klass)
        flag = "" if row["verified"] else " (unverified: check the original report)"
        n = _row_passage(row, value, passages)
        cite = f" [{n}]" if n else ""
        # The table's note carries what one number per class cannot say
        # ("1 mm for SRS; 2 mm for SBRT").
        note = f" Note: {row['note'].rstrip('.')}." if row.get("note") else ""
        lines.append(f"{row['description']} ({row['frequency']}): {value}; "
                     f"{row['source']}{flag}{cite}.{note}")
    return " ".join(lines)


def _row_passage(row: dict[str, Any], value: str,
                 passages: list[dict[str, Any]]) -> int | None:
    """The passage that states a tolerance row: its name, else its numbers.

    Falls back to a passage holding every number of the value and at least
    two words of the row's description, so a differently worded table row
    (TG-218's "passing rate" table) is still cited, and nothing else is.
    """
    for name in (row["description"], row["description"].split(",")[0]):
        n = next((n for n, p in enumerate(passages, start=1)
                  if name.lower() in p["text"].lower()), None)
        if n is not None:
            return n
    numbers = numbers_in(value)
    words = _words(row["description"])
    for n, p in enumerate(passages, start=1):
        if numbers <= numbers_in(p["text"]) and len(words & _words(p["text"])) >= 2:
            return n
    return None


def _limit_text(limits: dict[str, Any], unit: str, klass: str | None) -> str:
    """Limits by machine class as words: one value when they agree."""
    if klass and limits.get(klass) is not None:
        return f"{_quantity(limits[klass], unit)} ({klass})"
    values = {k: v for k, v in limits.items() if v is not None}
    if not values:
        return "functional (pass/fail)"
    if len(set(values.values())) == 1:
        return _quantity(next(iter(values.values())), unit)
    return ", ".join(f"{k} {_quantity(v, unit)}" for k, v in values.items())


def _quantity(value: float, unit: str) -> str:
    """A value with its unit as the protocols write it: 2%, 2 mm, 1 deg."""
    return f"{value:g}%" if unit == "%" else f"{value:g} {unit}"


def answer_from_tool(call: dict[str, Any]) -> str:
    """Analysis, fleet and data answers written from the tool result by code."""
    result = call["result"]
    if "error" in result:
        return f"I could not run that: {result['error']}"
    if call["name"] == "analyze_series":
        return _analysis_text(result)
    if call["name"] == "fleet_overview":
        lines = [f"{result['total']} series analysed: " + ", ".join(
            f"{n} {s}" for s, n in sorted(result["by_status"].items())) + "."]
        for s in result["series"][:5]:
            drift = s["drift"]
            trend = (f", drifting {'up' if drift['direction'] > 0 else 'down'} since "
                     f"{drift['onset']}" if drift["detected"] else "")
            lines.append(f"- {_name(s)}: {s['status']}{trend}")
        return "\n".join(lines)
    machines = result["machines"]
    if not machines:
        return "No QA measurements are on hand."
    return "\n".join(
        f"- {m['machine']}: {len(m['series'])} series, "
        f"{min(x['first'] for x in m['series'])} to "
        f"{max(x['last'] for x in m['series'])}" for m in machines)


def _name(s: dict[str, Any]) -> str:
    return " ".join(p for p in (s["machine"], s["energy"], s["test"]) if p)


def _analysis_text(result: dict[str, Any]) -> str:
    series = result["series"]
    if not series:
        return "No series matched."
    lines = []
    for s in series[:6]:
        tol, spc, drift = s["tolerance"], s["spc"], s["drift"]
        parts = [f"{_name(s)} ({s['n']} measurements): status {s['status']}."]
        if drift["detected"]:
            way = "upward" if drift["direction"] > 0 else "downward"
            parts.append(f"Drift detected, {way} since {drift['onset']}.")
            slope = drift["slope_per_day"] or 0.0
            if slope * drift["direction"] > 0:
                parts.append(f"Trend {slope:g} {s['unit']}/day.")
            else:
                # A step: the slope over the whole record does not follow it.
                parts.append(f"A shift rather than a steady trend (slope over "
                             f"the series {slope:g} {s['unit']}/day).")
            if drift.get("projected_crossing"):
                parts.append(f"Projected to reach tolerance on "
                             f"{drift['projected_crossing']}.")
        else:
            parts.append("No drift detected.")
        parts.append(f"Control limits {spc['lcl']:g} to {spc['ucl']:g} {s['unit']} "
                     f"(centre {spc['center']:g}).")
        if tol.get("limit") is not None:
            out = tol["out_of_tolerance"]
            parts.append(f"Tolerance {tol['limit']:g} {tol['unit']} ({tol['source']}); "
                         + ("none out of tolerance." if not out else
                            "out of tolerance on " + ", ".join(out[:5])
                            + (" and later dates." if len(out) > 5 else ".")))
        lines.append(" ".join(parts))
    if len(series) > 6:
        lines.append(f"... and {len(series) - 6} more series.")
    return "\n".join(lines)
