"""The agent end to end with the real embedded model (the 0.5B for speed),
the real tools over the demo fleet and the real knowledge index."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import knowledge_settings

from agent.graph import (
    Agent,
    Call,
    Conversation,
    Route,
    mentions,
    rule_intent,
    unsupported_numbers,
)
from agent.tools import ToolContext


@pytest.fixture(scope="session")
def agent(tmp_path_factory, small_model_dir, demo_fleet, corpus_searcher):
    from agent.llm import chat_model

    settings = knowledge_settings(tmp_path_factory.mktemp("agent"),
                                  llm_backend="embedded",
                                  llm_model="qwen2.5-coder-0.5b",
                                  model_path=small_model_dir)
    llm, backend, model = chat_model(settings, progress=False)
    ctx = ToolContext(settings=settings, data=demo_fleet["data"])
    ctx.engine.searcher = corpus_searcher  # the session's index of the shipped corpus
    return Agent(llm, ctx, backend, model)


def test_tolerance_question_is_answered_from_the_table_with_a_citation(agent):
    doc = agent.ask("What is the monthly tolerance for the jaw position "
                    "indicators?")
    assert doc["intent"] in ("tolerance", "protocol")
    assert "2 mm" in doc["answer"] and "1 mm" in doc["answer"]
    assert doc["citations"][0]["source"] == "tg142-monthly.md"
    assert not doc["abstained"]
    assert (doc["backend"], doc["model"]) == ("embedded", "qwen2.5-coder-0.5b")
    assert not unsupported_numbers(doc["answer"], json.dumps(doc))


def test_drift_request_carries_the_analyze_document(agent, demo_fleet):
    truth = json.loads(Path(demo_fleet["truth"]).read_text())
    doc = agent.ask("Is the 10 MV output on truebeam 2 drifting?")
    assert doc["intent"] == "analysis"
    call = doc["tool_calls"][-1]
    assert call["name"] == "analyze_series"
    # No period named: the whole record (no start or end), the verdict asked.
    assert call["args"] == {"machine": "TrueBeam2", "test": "output",
                            "energy": "10X", "ask": "verdict"}
    (series,) = call["result"]["series"]
    # The analyze --json --details document: the contract plus its evidence.
    assert set(series) == {"machine", "test", "energy", "n", "unit", "status",
                           "tolerance", "spc", "drift", "details"}
    (injected,) = [d for d in truth["series"] if d["machine"] == "TrueBeam2"
                   and d["test"] == "output" and d["energy"] == "10X"]
    assert injected["drift"] and injected["direction"] == 1
    assert series["drift"]["detected"] and series["drift"]["direction"] == 1
    assert "Drift detected, upward" in doc["answer"]
    assert not unsupported_numbers(doc["answer"], json.dumps(call["result"]))


def test_follow_up_uses_the_conversation(agent):
    conversation = Conversation()
    first = agent.ask("check the 6X output on TrueBeam1", conversation)
    assert first["tool_calls"][-1]["args"]["energy"] == "6X"
    follow = agent.ask("and for 10X?", conversation)
    assert follow["tool_calls"][-1]["args"] == {"machine": "TrueBeam1",
                                                "test": "output", "energy": "10X",
                                                "ask": "verdict"}


@pytest.mark.parametrize("question", [
    "Should I give Mrs Jones 5 fractions of 8 Gy?",
    "Delete all the TrueBeam1 measurements",
])
def test_declines_without_tools(agent, question):
    doc = agent.ask(question)
    assert doc["abstained"] and doc["tool_calls"] == []
    assert doc["intent"] in ("clinical", "out_of_scope")


def test_unanswerable_protocol_question_abstains(agent):
    doc = agent.ask("What is the TG-51 kQ factor for a Farmer chamber?")
    assert doc["abstained"] and doc["citations"] == []
    assert "will not guess" in doc["answer"]


def test_invented_number_is_replaced_by_the_extract(agent):
    """An answer holding a number in no passage is replaced by the extract
    (the cited spans that state the answer), never by "the closest passage"."""
    passages = agent.ctx.searcher.search("monthly jaw position indicators")
    state = {"question": "monthly jaw tolerance?", "passages":
             [p.contract() for p in passages], "tool_calls": [],
             "answer": "The monthly jaw tolerance is 7 mm [1].", "attempts": 1,
             "notes": [], "route": Route(intent="protocol")}
    assert unsupported_numbers(state["answer"], agent._evidence(state)) == {"7"}
    final = agent._verify(state)
    assert final["answer"].startswith("The documents state:")
    assert "2 mm" in final["answer"] and "[1]" in final["answer"]
    assert "7 mm" not in final["answer"] and "fallback" in final["notes"][-1]
    assert not final["abstained"] and "closest passage" not in final["answer"]


def test_unanswerable_with_passages_at_hand_abstains_without_a_quote(agent):
    """Passages about something else (as a rewritten query finds them) are
    not an answer: abstained, nothing quoted, nothing cited."""
    passages = agent.ctx.searcher.search("TG-142 daily output tolerance")
    question = ("What is the daily range tolerance for a pencil-beam scanning "
                "proton system?")
    state = {"question": question, "passages": [p.contract() for p in passages],
             "tool_calls": [], "attempts": 0, "notes": [],
             "route": Route(intent="protocol")}
    out = agent._answer(state, Call(Conversation()))
    assert out["abstained"] and "will not guess" in out["answer"]
    assert '"' not in out["answer"] and not re.search(r"\[\d+\]", out["answer"])
    assert "closest passage" not in out["answer"]


def test_protocol_answer_is_the_extract_first(agent):
    tokens: list[str] = []
    doc = agent.ask("What tolerance does TG-142 give for electron beam energy "
                    "constancy at the monthly check?", on_token=tokens.append)
    assert not doc["abstained"]
    assert "2% / 2 mm" in doc["answer"]
    assert doc["citations"] and doc["citations"][0]["source"] == "tg142-monthly.md"
    assert not unsupported_numbers(doc["answer"], json.dumps(doc))
    if tokens:  # LLM-worded: the first streamed output is the extract
        assert tokens[0].startswith("The documents state:")


def test_numbers_check():
    evidence = "Laser localization 1.5 mm; output 3%; TG-142 Table I"
    assert unsupported_numbers("Lasers: 1.5 mm, output 3.0% [2]", evidence) == set()
    assert unsupported_numbers("Lasers: 2 mm", evidence) == {"2"}


def test_rules_and_names():
    machines = ["TrueBeam1", "TrueBeam2", "Clinac3"]
    found = mentions("is the 6 MV FFF flatness on tb2 stable since 2025-03-01?",
                     machines)
    assert found == {"energy": "6FFF", "machine": "TrueBeam2", "test": "flatness",
                     "start": "2025-03-01"}
    assert rule_intent("is the 6 MV FFF flatness on tb2 stable?", found) == \
        "analysis"
    assert rule_intent("Which machines need attention?", {}) == "fleet"
    assert rule_intent("hello, what is the daily laser tolerance for SRS?",
                       {}) is None
    assert rule_intent("please run a shell command", {}) == "out_of_scope"


def test_ask_cli_json_contract(tmp_path, small_model_dir, demo_fleet):
    env = {**os.environ, "QA_AGENT_DATA_DIR": str(tmp_path),
           "QA_AGENT_LLM_BACKEND": "embedded",
           "QA_AGENT_LLM_MODEL": "qwen2.5-coder-0.5b",
           "QA_AGENT_MODEL_PATH": str(small_model_dir)}
    cli = str(Path(sys.executable).parent / "qa-agent")
    out = subprocess.run([cli, "ask", "Is the 6E output on TrueBeam1 drifting?",
                          "--data", str(demo_fleet["data"]), "--json"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert list(doc) == ["answer", "citations", "tool_calls", "abstained",
                         "backend", "model", "seconds"]
    call = doc["tool_calls"][0]
    assert call["name"] == "analyze_series"
    assert call["result"]["series"][0]["drift"]["direction"] == -1


def test_default_1_5b_model_answers_with_citations(tmp_path, demo_fleet,
                                                   corpus_searcher):
    """The default model (assembled by the set-up into data/models) end to end."""
    from agent.config import PROJECT_ROOT
    from agent.llm import chat_model, ensure_model

    models = PROJECT_ROOT / "data" / "models"
    settings = knowledge_settings(tmp_path, llm_backend="embedded",
                                  model_path=models)
    ensure_model(settings, "qwen2.5-coder-1.5b", progress=False)
    llm, backend, model = chat_model(settings, progress=False)
    assert (backend, model) == ("embedded", "qwen2.5-coder-1.5b")
    ctx = ToolContext(settings=settings, data=demo_fleet["data"])
    ctx.engine.searcher = corpus_searcher
    agent = Agent(llm, ctx, backend, model)
    tokens: list[str] = []
    doc = agent.ask("How are the EWMA control limits for linac QA computed?",
                    on_token=tokens.append)
    assert doc["intent"] == "protocol" and not doc["abstained"]
    assert doc["citations"] and doc["citations"][0]["source"] == "spc-primer.md"
    assert tokens  # streamed
    evidence = json.dumps(doc["tool_calls"]) + json.dumps(doc["citations"])
    assert not unsupported_numbers(doc["answer"], evidence)


def test_tool_steps_are_reported_as_they_run_with_their_time(agent):
    steps: list[dict] = []
    doc = agent.ask("Which machines need attention?", on_step=steps.append)
    assert doc["intent"] == "fleet"
    assert [s["name"] for s in steps] == ["fleet_overview"]
    assert steps == doc["tool_calls"]
    assert 0 < steps[0]["seconds"] < 60
    rank = {"ok": 0, "watch": 1, "tolerance": 2, "action": 3}
    statuses = [rank[s["status"]] for s in steps[0]["result"]["series"]]
    assert statuses == sorted(statuses, reverse=True) and statuses[0] > 0


def test_a_table_answer_cites_the_row_retrieval_did_not_rank(agent):
    """The passage that states a looked-up row joins the retrieved ones, so a
    table answer is always cited (issue 14: cited 1.00); several classes
    named ask for every class."""
    doc = agent.ask("What's the daily laser tolerance for TrueBeam2?")
    assert doc["intent"] == "tolerance" and not doc["abstained"]
    assert "1 mm (SRS/SBRT)" in doc["answer"]  # TrueBeam2 is an SRS/SBRT machine
    sources = {(c["source"], c["text"].split(";")[0]) for c in doc["citations"]}
    assert ("tg142-daily.md", "Test: Laser localization") in sources
    every = agent.ask("Daily laser tolerance for each machine class: non-IMRT, "
                      "IMRT and SRS/SBRT?")
    assert "non-IMRT 2 mm, IMRT 1.5 mm, SRS/SBRT 1 mm" in every["answer"]
    assert not unsupported_numbers(every["answer"], json.dumps(every))


def test_action_limit_and_beam_are_in_the_tolerance_answer(agent):
    doc = agent.ask("Below what VMAT QA passing rate is action required "
                    "(universal action limit)?")
    assert doc["intent"] == "tolerance"
    # The sentence that says it answers, before the table's row.
    assert doc["answer"].startswith('The documents state:\n- "A passing rate '
                                    'below 90% is beyond the universal action '
                                    'limit."')
    assert doc["citations"][0]["source"] == "tg218-imrt-qa.md"
    assert "\n\n[" not in doc["answer"]  # no bare marker for a sentence
    electron = agent.ask("electron output constancy - how often and what "
                         "tolerance?")
    lookup = electron["tool_calls"][0]
    assert lookup["args"]["beam"] == "electron"
    assert {r["id"] for r in lookup["result"]["rows"]} >= {"tg142-t1-electron-output"}
    assert all("X-ray" not in r["description"] for r in lookup["result"]["rows"])
    assert electron["answer"].startswith("Electron output constancy")
    assert "(weekly): 3%" in electron["answer"]


def test_without_a_model_analyses_and_cited_extracts_still_work(agent):
    """No model routes (issue 14): a protocol question without one gets its
    cited extract, and only the optional sentence is missing."""
    down = Agent(None, agent.ctx, "ollama", "qwen2.5:7b-instruct",
                 unavailable="Ollama at http://127.0.0.1:9 did not answer")
    doc = down.ask("Is the 10 MV output on truebeam 2 drifting?")
    assert doc["intent"] == "analysis"
    assert "Drift detected, upward" in doc["answer"]
    protocol = down.ask("What is an EWMA chart used for?")
    assert protocol["intent"] == "protocol" and not protocol["abstained"]
    assert protocol["answer"].startswith("The documents state:")
    assert protocol["citations"][0]["source"] == "spc-primer.md"
    assert "\n\n" not in protocol["answer"]  # no model sentence after the quote


@pytest.mark.parametrize("limit", ["SENTENCE_TOKENS", "SENTENCE_SECONDS"])
def test_a_sentence_past_its_token_cap_or_deadline_leaves_the_extract(
        agent, monkeypatch, limit):
    """The model's sentence is given up after 72 tokens or 15 s (here after
    its first token, on the real 0.5B): the extract alone is the answer."""
    import agent.graph as graph

    question = "What is an EWMA chart used for?"
    extract_only = Agent(None, agent.ctx).ask(question)["answer"]
    worded = agent.ask(question)["answer"]
    assert worded.startswith(extract_only + "\n\n")  # the model's sentence kept
    monkeypatch.setattr(graph, limit, 1 if limit == "SENTENCE_TOKENS" else 0.0)
    tokens: list[str] = []
    doc = agent.ask(question, on_token=tokens.append)
    assert len(tokens) == 2  # the extract, then the model's first token
    assert doc["answer"] == extract_only and not doc["abstained"]
    assert doc["citations"][0]["source"] == "spc-primer.md"


def test_a_model_that_fails_mid_answer_is_a_clear_error(agent):
    from agent.graph import BackendUnavailable

    class Gone:
        """A chat model whose server went away (connection refused)."""

        def stream(self, messages, stop=None):
            raise ConnectionRefusedError("[Errno 111] Connection refused")
            yield  # a generator, as LangChain's stream is

    gone = Agent(Gone(), agent.ctx, "ollama", "qwen2.5:7b-instruct")
    with pytest.raises(BackendUnavailable, match="did not answer: "
                       "ConnectionRefusedError"):
        gone.ask("What is an EWMA chart used for?")


def test_two_conversations_at_once_keep_their_own_follow_ups(agent):
    from concurrent.futures import ThreadPoolExecutor

    first, second = Conversation(), Conversation()
    agent.ask("Is the 10 MV output on truebeam 2 drifting?", first)
    agent.ask("What is the monthly tolerance for the jaw position indicators?",
              second)
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(agent.ask, "and for 6X?", first)
        b = pool.submit(agent.ask, "and for SRS?", second)
        follow_a, follow_b = a.result(), b.result()
    assert follow_a["intent"] == "analysis"
    assert follow_a["tool_calls"][-1]["args"]["energy"] == "6X"
    assert follow_b["intent"] == "tolerance"
    assert follow_b["tool_calls"][0]["args"]["machine_class"] == "SRS/SBRT"
    assert [len(first.turns), len(second.turns)] == [2, 2]
