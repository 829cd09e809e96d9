"""Understanding a request by rule: a pure function, testable without a model.

:func:`understand` reads a question with plain-word rules: the machines,
tests, energies, frequencies, beam, machine class and dates it names (the
words come from :mod:`agent.vocabulary`), whether it continues the previous
turn ("and for 10X?"), whether it is about a patient, small talk or a
forbidden action, and the intent when those rules settle it. When they do
not, :attr:`Request.intent` is None and the agent asks the LLM under the
:class:`Route` schema (README.md, "The agent").
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from agent.asks import Ask, ask_in
from agent.image_requests import image_request
from agent.mentions import ambiguous_machine, machines_named, mentions
from agent.period_words import compared_periods, period_in
from agent.qa.periods import PeriodSpec
from agent.vocabulary import (
    QUESTION_ENERGY,
    Frequency,
    MachineClass,
    canonical_energy,
)

Intent = Literal["protocol", "tolerance", "analysis", "fleet", "data", "small_talk",
                 "out_of_scope", "clinical"]
INTENTS: tuple[str, ...] = Intent.__args__  # type: ignore[attr-defined]


class Route(BaseModel):
    """The request, as the router understood it."""

    intent: Intent
    machine: str | None = None
    test: str | None = None
    energy: str | None = None
    frequency: Frequency | None = None
    machine_class: MachineClass | None = None
    beam: Literal["photon", "electron"] | None = None
    start: str | None = None
    end: str | None = None


#: The names a request can carry: every field of :class:`Route` but the intent.
NAME_FIELDS: tuple[str, ...] = tuple(f for f in Route.model_fields if f != "intent")
#: Intents whose arguments a short follow-up ("and for 10X?") inherits.
FOLLOW_UP_INTENTS: tuple[str, ...] = ("tolerance", "analysis", "protocol")


class Request(BaseModel):
    """A request as the rules understand it, before any model is asked.

    The names are those of :class:`Route` (kept as a separate model so the
    router's JSON schema stays what the LLM is given); ``intent`` is None
    when the rules leave the intent to the LLM.
    """

    intent: Intent | None = None
    machine: str | None = None
    test: str | None = None
    energy: str | None = None
    frequency: Frequency | None = None
    machine_class: MachineClass | None = None
    beam: Literal["photon", "electron"] | None = None
    start: str | None = None
    end: str | None = None
    #: It continues the previous turn and inherits its intent and names.
    follow_up: bool = False
    #: About a specific patient (declined, whatever else it names).
    clinical: bool = False
    #: A greeting or thanks of at most eight words.
    small_talk: bool = False
    #: Asks to change, delete or send data, or to run commands.
    forbidden: bool = False
    #: A named test asked with "tolerance", "limit", "how far", "within"...
    tolerance_lookup: bool = False
    #: What a data request asks for (:mod:`agent.asks`).
    ask: Ask = "verdict"
    #: The period named in words, settled against the data by the engine.
    period: PeriodSpec | None = None
    #: Two periods of one series to compare ("before and after the
    #: recalibration", "January with June").
    compare_periods: list[PeriodSpec] = Field(default_factory=list)
    #: Every machine and every energy named, when more than one is
    #: ("compare TrueBeam1 and TrueBeam2", "the 6X and 10X output").
    machines: list[str] = Field(default_factory=list)
    energies: list[str] = Field(default_factory=list)
    #: A kind of beam instead of one energy ("the electron outputs", "all
    #: FFF outputs").
    energy_kind: Literal["photon", "electron", "FFF"] | None = None
    #: A short question back when a name fits several on hand ("TrueBeam").
    clarification: str | None = None
    #: The image analysis asked of uploaded images (``wl``, ``picketfence``,
    #: ``starshot``, ``field``; :mod:`agent.image_requests`).
    image_kind: str | None = None

    def names(self) -> dict[str, str]:
        """The names the request carries (machine, test, energy...), set ones only.

        Returns
        -------
        dict of str to str
            Field name to value, for the fields of :data:`NAME_FIELDS` that
            are not None.
        """
        return {k: v for k in NAME_FIELDS if (v := getattr(self, k)) is not None}

    def route(self) -> Route:
        """The request as a :class:`Route` (only when the rules set the intent).

        Returns
        -------
        Route
            The intent and the names.

        Raises
        ------
        ValueError
            When the intent is None (the LLM decides it).
        """
        if self.intent is None:
            raise ValueError("the rules left this request's intent to the LLM")
        return Route(intent=self.intent).model_copy(update=self.names())


class RequestContext(BaseModel):
    """What :func:`understand` needs besides the question."""

    #: The machine names on hand (data and tolerance registry).
    machines: list[str] = Field(default_factory=list)
    #: The previous turn's request as it was routed, for follow-ups.
    previous: Route | None = None
    #: The previous turn's whole request (what was asked, its period).
    previous_request: Request | None = None


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
_ASKS_TOLERANCE = re.compile(
    r"\bwhat('s| is| are)?\b[^?]*\b(toleran\w*|limits?)\b|"
    r"(?<!within )(?<!in )(?<!of )\btoleran\w*\s*\?\s*$", re.IGNORECASE)
_ANYTHING = re.compile(r"\b(anything|what should|worr\w*|problems?|issues?)\b",
                       re.IGNORECASE)
_FOLLOW_UP = re.compile(r"^\s*(and|what about|how about|same for|also|now)\b",
                        re.IGNORECASE)
_TOLERANCE_WORDS = re.compile(
    r"\btol[a-z]*\b|\blimits?\b|how (far|much|accurate|close)|\bwithin\b|"
    r"how many (degrees|mm|millimet|percent)|allowed|acceptable|\bbe off\b",
    re.IGNORECASE)
def understand(question: str, context: RequestContext) -> Request:
    """Understand a request by rule, without a model or an index.

    Parameters
    ----------
    question : str
        The user's words.
    context : RequestContext
        The machine names on hand and the previous turn's request.

    Returns
    -------
    Request
        The names found and the flags, what is asked, the period and the
        comparison; ``intent`` is set when the rules settle it, in this
        order: a patient-specific question (clinical, with no names), a
        follow-up (the previous intent, names, question and period, updated
        by what the new turn says), the plain-word intents of
        :func:`rule_intent`, a tolerance look-up; otherwise None. A machine
        name that fits several on hand ("TrueBeam") gives a
        ``clarification`` instead of a guess.
    """
    found = mentions(question, context.machines)
    flags = {
        "clinical": bool(_CLINICAL.search(question) or _PERSON.search(question)),
        "small_talk": _is_small_talk(question),
        "forbidden": bool(_FORBIDDEN.search(question)),
    }
    if flags["clinical"]:
        return Request(intent="clinical", **flags)
    image_kind = image_request(question)
    if image_kind is not None:  # images to analyse: their machine, beam, date
        names = {k: v for k, v in found.items() if k in ("machine", "energy", "start")}
        return Request(intent="analysis", image_kind=image_kind, **flags, **names)
    extra = _data_slots(question, found, context.machines)
    follow = _follow_up(question, found, extra, context)
    if follow is not None:
        return follow.model_copy(update=flags)
    names = {k: v for k, v in found.items() if k in NAME_FIELDS}
    ambiguous = (ambiguous_machine(question.lower(), context.machines)
                 if "machine" not in names else [])
    ruled = rule_intent(question, names | ({"machine": "?"} if ambiguous else {}))
    if ruled is None and _is_family(question, names) and not (
            _is_tolerance_lookup(question, names) and not extra.get("ask")):
        ruled = "analysis"
    if ruled is not None:
        request = Request(intent=ruled, **flags, **extra).model_copy(update=names)
        if ambiguous and ruled in ("analysis", "fleet", "tolerance"):
            request = request.model_copy(update={"clarification": (
                "Which machine do you mean: " + " or ".join(ambiguous) + "?")})
        return request
    if _is_tolerance_lookup(question, names):
        # A named test asked with "tolerance", "limit", "how far"... is
        # a table look-up whatever the model would say: no LLM call.
        return Request(intent="tolerance", tolerance_lookup=True,
                       **flags).model_copy(update=names)
    return Request(**flags, **extra).model_copy(update=names)


def _data_slots(question: str, found: dict[str, str],
                machines: list[str]) -> dict[str, object]:
    """What is asked, the period, the comparison and every name listed."""
    low = question.lower()
    slots: dict[str, object] = {}
    ask = ask_in(low)
    if ask:
        slots["ask"] = ask
    pair = compared_periods(low)
    if pair:
        slots["compare_periods"] = list(pair)
        slots["ask"] = "comparison"
    period = None if pair else period_in(low)
    if period is not None:
        slots["period"] = period
        if period.kind == "last" and slots.get("ask") == "latest":
            del slots["ask"]  # "the latest 30 measurements" is a period
    elif "start" in found or "end" in found:
        slots["period"] = PeriodSpec(kind="dates", start=found.get("start"),
                                     end=found.get("end"))
    if "energy" not in found:
        if re.search(r"\bfff\b", low):
            slots["energy_kind"] = "FFF"
        elif found.get("beam"):
            slots["energy_kind"] = found["beam"]
    every_machine = machines_named(low, machines)
    if len(every_machine) > 1:
        slots["machines"] = every_machine
    energies = list(dict.fromkeys(
        e for m in QUESTION_ENERGY.finditer(low)
        if (e := canonical_energy(f"{m.group(1)} {m.group(2)}"))))
    if len(energies) > 1:
        slots["energies"] = energies
    return slots


def _follow_up(question: str, found: dict[str, str], extra: dict[str, object],
               context: RequestContext) -> Request | None:
    """The previous request updated by a short follow-up, or None.

    "and for 10X?", "which days were out?", "when did that start?", "and over
    the last three months?": a turn that opens like a follow-up or is short,
    after a request whose names it can inherit, and that names something
    new or asks something new of the same series.
    """
    previous = context.previous
    if not previous or previous.intent not in FOLLOW_UP_INTENTS:
        return None
    names_new_series = ("machine" in found and "test" in found) or _is_family(
        question, found) or len(extra.get("machines", ())) > 1
    short = bool(_FOLLOW_UP.match(question)) or (
        len(question.split()) <= 6 and not names_new_series)
    asks_more = previous.intent == "analysis" and bool(
        extra.get("ask") or extra.get("period") or extra.get("compare_periods"))
    if not short or not (found or asks_more):
        return None
    names = {k: getattr(previous, k) for k in NAME_FIELDS} | found
    before = context.previous_request
    kept: dict[str, object] = {}
    if before is not None and previous.intent == "analysis":
        kept = {"ask": before.ask, "period": before.period,
                "compare_periods": before.compare_periods,
                "energy_kind": before.energy_kind}
        if "start" in found or "end" in found:
            kept["period"] = None
        # "compare TB1 and TB2 6X output" then "and for 10 MV?": the same two
        # machines at the new energy (and the other way round).
        if before.machines and "machine" not in found:
            kept["machines"] = before.machines
        if before.energies and "energy" not in found:
            kept["energies"] = before.energies
        if "energy" in found:
            kept["energy_kind"] = None
    if "start" not in found and "end" not in found:
        names.pop("start", None)
        names.pop("end", None)
        if before is not None and before.period is not None \
                and before.period.kind == "dates":
            names["start"], names["end"] = before.period.start, before.period.end
    return Request(intent=previous.intent, follow_up=True,
                   **(kept | extra)).model_copy(update=names)


_FAMILY = re.compile(r"\b(all|every|each)\b(?!\s+(day|week|month|year|morning|"
                     r"time|quarter|shift))", re.IGNORECASE)
def _is_family(question: str, names: dict[str, str]) -> bool:
    """"all 6X outputs", "every machine's lasers": a test across machines.

    Not when a frequency or machine class is named ("each month on an IMRT
    machine" is a protocol question)."""
    return "test" in names and bool(_FAMILY.search(question)) and not (
        {"frequency", "machine_class"} & set(names))


def _is_small_talk(question: str) -> bool:
    """A greeting or thanks of at most eight words ("hello", "thanks a lot")."""
    return bool(_SMALL_TALK.match(question)) and len(question.split()) <= 8


def _is_tolerance_lookup(question: str, found: dict[str, str]) -> bool:
    """A named test asked with the word tolerance, limit, how far, within...

    A frequency alone does not make a look-up ("What is the flatness field
    called in Daily QA 3 data?" is a protocol question).
    """
    return "test" in found and bool(_TOLERANCE_WORDS.search(question))


def rule_intent(question: str, found: dict[str, str]) -> str | None:
    """The intent when plain words settle it, else None (the LLM decides).

    Parameters
    ----------
    question : str
        The user's words.
    found : dict of str to str
        The names :func:`mentions` found in it.

    Returns
    -------
    str or None
        out_of_scope (a forbidden action), small_talk, data, fleet,
        tolerance or analysis; None when the words do not settle it.
    """
    if _FORBIDDEN.search(question):
        return "out_of_scope"
    if _is_small_talk(question):
        return "small_talk"
    if "machine" in found and ("test" in found or "energy" in found) and ask_in(
            question.lower()) not in (None, "verdict"):
        # "which measurements failed", "when will it reach tolerance?": about
        # the data, whatever the words "measurements" or "tolerance" say.
        return "analysis"
    if _DATA_WORDS.search(question):
        return "data"
    if _FLEET_WORDS.search(question) and "test" not in found \
            and "frequency" not in found:
        # "checked daily, and on which machines?" asks what a protocol says.
        return "fleet"
    if "machine" in found:
        if ("test" in found or "energy" in found) and ask_in(question.lower()) \
                not in (None, "verdict"):
            # "when will it reach tolerance?", "which days were out of
            # tolerance?": about the data, whatever the word tolerance says.
            return "analysis"
        if "test" in found or "energy" in found:
            # A named machine and series is a question about its data,
            # unless it asks what the tolerance is.
            return "tolerance" if _ASKS_TOLERANCE.search(question) else "analysis"
        if _ANALYSIS_WORDS.search(question) or _ANYTHING.search(question):
            # The whole machine: its series worst first.
            return "fleet"
    return None
