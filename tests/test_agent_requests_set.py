"""The request evaluation set (eval/agent_requests.yaml) is well formed and true.

A physicist's requests over the demo fleet: periods in words, what is asked,
comparisons, families, clarifying questions, follow-ups and periods without
data (issue 13). The set's dates were settled by hand from the calendar and
the data; here every expectation is checked against the engine the agent uses
(``QAEngine(settings, demo_fleet.csv)``):

- analyze_series: each expected series has data in the expected period and
  ``QAEngine.analyse`` over that period gives the expected drift verdict;
- compare_series: each group is one series with data in its period;
- clarify: the candidates are the machines on hand whose names share a word
  of the question;
- no_data: the named series is on hand, but the period holds none of its
  measurements, or the event named is not recorded for it.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import yaml

from agent.config import load_settings
from agent.engine import QAEngine
from agent.qa.selection import SelectionError
from agent.vocabulary import MONTHS, TESTS, canonical_energy

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "eval"
SET = EVAL / "agent_requests.yaml"
ID = re.compile(r"^r\d{3}$")
MIN_PER_KIND = 8
MIN_NO_DATA = 4
MIN_TOTAL = 88
KINDS = ("period_absolute", "period_relative", "period_event", "onset",
         "out_of_tolerance", "projection", "compare_periods", "compare_series",
         "family", "clarify", "follow_up", "no_data")
ASKS = {"verdict", "onset", "out_of_tolerance", "projection", "limits",
        "capability", "latest", "count", "comparison"}
EXPECT_KEYS = {
    "analyze_series": {"tool", "series", "start", "end", "ask", "drift_detected"},
    "compare_series": {"tool", "series", "periods"},
    "clarify": {"tool", "candidates"},
    "no_data": {"tool", "series"},
}
NO_DATA_OPTIONAL = {"start", "end"}
#: The tool each kind's last turn must call (a follow-up may call either).
KIND_TOOLS = {"compare_periods": {"compare_series"},
              "compare_series": {"compare_series"},
              "clarify": {"clarify"}, "no_data": {"no_data"},
              "follow_up": {"analyze_series", "compare_series", "clarify"}}
#: The ask a kind is about (the others may ask anything).
KIND_ASKS = {"onset": "onset", "out_of_tolerance": "out_of_tolerance",
             "projection": "projection"}
EVENT_WORDS = re.compile(r"\b(re-?calibrat\w*|recal|baseline reset|reset|"
                         r"new baseline|re-?baseline)\b", re.IGNORECASE)
SLACK = timedelta(days=3)  # the scorer's tolerance on a period's dates


def norm(text: str) -> str:
    """Lower case with every run of whitespace collapsed to one space."""
    return " ".join(str(text).split()).lower()


@cache
def requests() -> tuple[dict, ...]:
    with SET.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict) and set(data) == {"requests"}, f"{data!r:.80}"
    assert isinstance(data["requests"], list)
    return tuple(data["requests"])


def params(*tools: str) -> list:
    return [pytest.param(r, id=r["id"]) for r in requests()
            if r.get("expect", {}).get("tool") in tools]


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _other_sets() -> tuple[set[str], set[str]]:
    """Ids and questions of the other eval/agent_*.yaml sets."""
    ids: set[str] = set()
    questions: set[str] = set()
    for path in sorted(EVAL.glob("agent_*.yaml")):
        if path == SET:
            continue
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        for entries in data.values():
            for entry in entries:
                ids.add(str(entry.get("id")))
                if entry.get("question"):
                    questions.add(norm(entry["question"]))
    return ids, questions


# --- the engine, once per session ----------------------------------------------


class Demo:
    """The demo fleet behind one engine, with its analyses cached."""

    def __init__(self, engine: QAEngine) -> None:
        self.engine = engine
        every, errors = engine.all_series()
        assert errors == []
        self.series = {s.key: s for s in every}
        self.machines = engine.machines()
        self._verdicts: dict[tuple, bool] = {}

    def dates(self, key: tuple[str, str, str], start: str | None,
              end: str | None) -> np.ndarray:
        """Dates of the series' measurements in the period (both included)."""
        dates = self.series[key].dates.astype("datetime64[D]")
        keep = np.ones(dates.size, dtype=bool)
        if start:
            keep &= dates >= np.datetime64(start)
        if end:
            keep &= dates <= np.datetime64(end)
        return dates[keep]

    def verdict(self, key: tuple[str, str, str], start: str | None,
                end: str | None) -> bool:
        """Drift detected in the series over the period, as the agent's engine
        analyses it."""
        ask = (*key, start, end)
        if ask not in self._verdicts:
            machine, test, energy = key
            run = self.engine.analyse(machine, test, energy or None, start, end)
            found = [r for r in run.results if (r.machine, r.test, r.energy) == key]
            assert len(found) == 1, f"{key} {start}..{end}: {run.results}"
            self._verdicts[ask] = bool(found[0].to_contract()["drift"]["detected"])
        return self._verdicts[ask]


@pytest.fixture(scope="session")
def demo(demo_fleet, tmp_path_factory) -> Demo:
    """The demo fleet as the agent reads it (settings with an empty data
    directory: the shipped tolerance tables without local overrides)."""
    settings = load_settings(
        {"QA_AGENT_DATA_DIR": str(tmp_path_factory.mktemp("requests-settings"))})
    return Demo(QAEngine(settings, Path(demo_fleet["data"])))


# --- shape -----------------------------------------------------------------------


def test_counts_per_kind():
    items = requests()
    assert len(items) >= MIN_TOTAL, len(items)
    kinds = [r.get("kind") for r in items]
    for kind in KINDS:
        least = MIN_NO_DATA if kind == "no_data" else MIN_PER_KIND
        assert kinds.count(kind) >= least, f"{kind}: {kinds.count(kind)}"


def test_ids_kinds_and_questions():
    other_ids, other_questions = _other_sets()
    ids = [r.get("id") for r in requests()]
    assert all(ID.match(str(i)) for i in ids), [i for i in ids if not ID.match(str(i))]
    assert len(set(ids)) == len(ids), sorted({i for i in ids if ids.count(i) > 1})
    assert not set(ids) & other_ids, sorted(set(ids) & other_ids)
    questions: list[str] = []
    for item in requests():
        assert set(item) == {"id", "kind", "turns", "expect"}, item
        assert item["kind"] in KINDS, item
        turns = item["turns"]
        assert isinstance(turns, list) and turns, item
        assert all(isinstance(t, str) and t.strip() for t in turns), item
        assert (len(turns) >= 2) == (item["kind"] == "follow_up"), item
        questions += [norm(t) for t in turns]
    repeated = sorted({q for q in questions if questions.count(q) > 1})
    assert not repeated, f"asked twice: {repeated}"
    assert not set(questions) & other_questions, sorted(
        set(questions) & other_questions)


def _check_series(item: dict, entry) -> tuple[str, str, str]:
    assert isinstance(entry, list) and len(entry) == 3, item["id"]
    machine, test, energy = entry
    assert isinstance(machine, str) and machine, item["id"]
    assert test in TESTS, (item["id"], test)
    assert isinstance(energy, str), item["id"]
    assert energy == "" or canonical_energy(energy) == energy, (item["id"], energy)
    return machine, test, energy


def _check_period(item: dict, start, end) -> None:
    for value in (start, end):
        assert value is None or (isinstance(value, str) and _day(value)), item["id"]
    if start and end:
        assert _day(start) <= _day(end), item["id"]


def test_expectations_are_well_formed():
    for item in requests():
        expect = item["expect"]
        assert isinstance(expect, dict), item["id"]
        tool = expect.get("tool")
        assert tool in EXPECT_KEYS, item["id"]
        assert tool in KIND_TOOLS.get(item["kind"], {"analyze_series"}), item["id"]
        keys = set(expect)
        if tool == "no_data":
            assert EXPECT_KEYS[tool] <= keys <= EXPECT_KEYS[tool] | NO_DATA_OPTIONAL
            assert ("start" in keys) == ("end" in keys), item["id"]
        else:
            assert keys == EXPECT_KEYS[tool], (item["id"], keys)
        if tool == "clarify":
            candidates = expect["candidates"]
            assert isinstance(candidates, list) and len(candidates) >= 2, item["id"]
            continue
        series = [_check_series(item, s) for s in expect["series"]]
        if tool == "analyze_series":
            assert series and len(set(series)) == len(series), item["id"]
            assert expect["ask"] in ASKS - {"comparison"}, item["id"]
            assert expect["ask"] == KIND_ASKS.get(item["kind"], expect["ask"]), item
            verdicts = expect["drift_detected"]
            assert isinstance(verdicts, list) and len(verdicts) == len(series)
            assert all(isinstance(v, bool) for v in verdicts), item["id"]
            assert (len(series) >= 2) == (item["kind"] == "family") or (
                item["kind"] == "follow_up"), item["id"]
            _check_period(item, expect["start"], expect["end"])
        elif tool == "compare_series":
            periods = expect["periods"]
            assert len(series) == 2 and len(periods) == 2, item["id"]
            for period in periods:
                assert isinstance(period, list) and len(period) == 2, item["id"]
                _check_period(item, *period)
            if item["kind"] == "compare_periods":
                assert series[0] == series[1] and periods[0] != periods[1], item
            if item["kind"] == "compare_series":
                assert series[0] != series[1], item["id"]
        else:  # no_data
            assert len(series) == 1, item["id"]
            _check_period(item, expect.get("start"), expect.get("end"))
        if item["kind"] == "period_relative":
            # Relative to the data: up to the latest measurement.
            assert expect["end"] is None, item["id"]


def test_the_set_covers_the_injected_drifts_and_stable_series(demo_fleet):
    truth = json.loads(Path(demo_fleet["truth"]).read_text(encoding="utf-8"))
    drifting = {(t["machine"], t["test"], t["energy"])
                for t in truth["series"] if t["drift"]}
    assert len(drifting) == 4
    verdicts = [(tuple(s), v) for r in requests()
                if r["expect"]["tool"] == "analyze_series"
                for s, v in zip(r["expect"]["series"], r["expect"]["drift_detected"],
                                strict=True)]
    for key in drifting:
        assert (key, True) in verdicts, f"injected drift {key} never expected"
    stable = [v for _, v in verdicts if not v]
    assert len(stable) >= 0.4 * len(verdicts), "too few stable series"
    assert len(stable) <= 0.8 * len(verdicts), "too few drifting series"


# --- expectations against the engine --------------------------------------------


@pytest.mark.parametrize("item", params("analyze_series"))
def test_analyses_have_data_and_the_engine_verdict(item, demo):
    expect = item["expect"]
    start, end = expect["start"], expect["end"]
    for entry, want in zip(expect["series"], expect["drift_detected"], strict=True):
        key = tuple(entry)
        assert key[0] in demo.machines, f"{item['id']}: no machine {key[0]}"
        assert key in demo.series, f"{item['id']}: no series {key}"
        assert demo.dates(key, start, end).size, (
            f"{item['id']}: {key} has no data {start}..{end}")
        got = demo.verdict(key, start, end)
        assert got == want, (f"{item['id']}: the engine gives drift_detected={got} "
                             f"for {key} {start}..{end}, the set says {want}")


@pytest.mark.parametrize("item", params("analyze_series"))
def test_periods_fit_the_data_and_the_events(item, demo):
    """Relative periods start inside the series; event periods meet a
    recorded reset of every series."""
    expect = item["expect"]
    start, end = _day(expect["start"]), _day(expect["end"])
    for entry in expect["series"]:
        series = demo.series[tuple(entry)]
        first = series.dates.min().astype("datetime64[D]").item()
        last = series.dates.max().astype("datetime64[D]").item()
        if item["kind"] == "period_relative":
            assert first < start <= last, item["id"]
        if item["kind"] != "period_event":
            continue
        resets = [r.astype("datetime64[D]").item() for r in series.resets]
        assert resets, f"{item['id']}: no event recorded for {entry}"
        assert (start and any(abs(start - r) <= SLACK for r in resets)) or (
            end and any(timedelta(0) < r - end <= SLACK + timedelta(days=1)
                        for r in resets)), (item["id"], resets)


@pytest.mark.parametrize("item", params("compare_series"))
def test_comparison_groups_have_data(item, demo):
    for entry, (start, end) in zip(item["expect"]["series"],
                                   item["expect"]["periods"], strict=True):
        key = tuple(entry)
        machine, test, energy = key
        chosen, _ = demo.engine.select(machine, test, energy or None, start, end)
        assert [s.key for s in chosen] == [key], (item["id"], [s.key for s in chosen])
        assert chosen[0].values.size >= 2, (item["id"], key, start, end)
        if item["kind"] == "compare_periods" and (start is None or end is None):
            # An open end of a period of one series is the recorded event.
            resets = demo.series[key].resets
            assert resets, f"{item['id']}: open period without an event"


def _names(machine: str, low: str) -> bool:
    """The text names the machine ("TrueBeam 1", "truebeam1", "TB1")."""
    word, number = re.fullmatch(r"(\D+?)\s*(\d*)", machine.lower()).groups()
    short = "".join(c for c in machine if c.isupper()).lower()
    return bool(number) and bool(re.search(
        rf"\b({re.escape(word)}|{re.escape(short)})\s*{number}\b", low))


@pytest.mark.parametrize("item", params("clarify"))
def test_clarify_candidates_share_a_word_of_the_question(item, demo):
    candidates = item["expect"]["candidates"]
    assert candidates == sorted(candidates), item["id"]
    assert set(candidates) <= set(demo.machines), item["id"]
    low = item["turns"][-1].lower()
    # No machine is named in full (that one would be meant).
    assert not any(_names(m, low) for m in demo.machines), item["id"]
    words = {w.removesuffix("'s") for w in re.findall(r"[a-z0-9']+", low)}
    shared = [sorted(m for m in demo.machines if w in m.lower())
              for w in words if len(w) >= 3]
    assert candidates in shared, (item["id"], shared)


@pytest.mark.parametrize("item", params("no_data"))
def test_no_data_requests_name_a_series_without_data(item, demo):
    expect = item["expect"]
    key = tuple(expect["series"][0])
    assert key in demo.series, f"{item['id']}: no series {key} at all"
    if "start" in expect:
        start, end = expect["start"], expect["end"]
        assert not demo.dates(key, start, end).size, (item["id"], start, end)
        machine, test, energy = key
        with pytest.raises(SelectionError):
            demo.engine.select(machine, test, energy or None, start, end)
        return
    low = item["turns"][-1]
    event = EVENT_WORDS.search(low)
    assert event, f"{item['id']}: neither a period nor an event"
    resets = [r.astype("datetime64[D]").item() for r in demo.series[key].resets]
    month = re.search(r"\b(" + "|".join(MONTHS) + r")\s+" + re.escape(event.group(0)),
                      low, re.IGNORECASE)
    if month:
        wanted = MONTHS[month.group(1).lower()]
        assert not [r for r in resets if r.month == wanted], (item["id"], resets)
    else:
        assert not resets, (item["id"], resets)
