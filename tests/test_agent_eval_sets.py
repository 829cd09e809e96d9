"""The agent evaluation sets (eval/agent_*.yaml) are well formed and true.

- eval/agent_protocol.yaml: protocol and tolerance questions; every expected
  string occurs in the corpus file named as its source, and every tolerance
  item's value is the limit of the named row of the shipped tolerance tables.
- eval/agent_drift.yaml: analysis, fleet and data requests over the demo fleet;
  every expected verdict is what the analysis gives, computed in-process with
  the functions behind `qa-agent analyze/fleet --data FILE --json`.
- eval/agent_out_of_scope.yaml: clinical and out-of-scope requests the agent
  must decline, and small talk.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from agent.config import load_settings
from agent.engine import QAEngine
from agent.qa.analysis import SeriesAnalysis
from agent.qa.fleet import analyze_fleet
from agent.qa.selection import clip_series
from agent.qa.tolerances import MACHINE_CLASSES, ToleranceTables
from agent.vocabulary import TESTS, canonical_energy

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "knowledge" / "corpus"
EVAL = ROOT / "eval"
FILES = {
    "protocol": ("agent_protocol.yaml", "questions", re.compile(r"^p\d{3}$")),
    "drift": ("agent_drift.yaml", "requests", re.compile(r"^d\d{3}$")),
    "scope": ("agent_out_of_scope.yaml", "questions", re.compile(r"^o\d{3}$")),
}
ROUTES = {
    "protocol": {"protocol", "tolerance", "unanswerable"},
    "drift": {"analysis", "fleet", "data"},
    "scope": {"out_of_scope", "clinical", "small_talk"},
}
KINDS = {"direct", "paraphrase", "abbreviation", "typo", "machine-class", "concept"}
STATUSES = {"ok", "watch", "action"}
BASE_KEYS = {"id", "question", "route"}
PROTOCOL_KEYS = BASE_KEYS | {"must_contain", "any_of", "sources", "kind"}
TOLERANCE_KEYS = PROTOCOL_KEYS | {"row", "test", "frequency"}
TOLERANCE_OPTIONAL = {"machine_class", "machine"}
UNANSWERABLE_KEYS = BASE_KEYS | {"why"}
DRIFT_KEYS = {
    "analysis": BASE_KEYS | {"machine", "test", "energy", "drift_detected",
                             "direction", "status"},
    "fleet": BASE_KEYS | {"machine", "expect_first"},
    "data": BASE_KEYS | {"machine", "expect_machines", "expect_series"},
}
ANALYSIS_OPTIONAL = {"start", "end"}


def norm(text: str) -> str:
    """Lower case with every run of whitespace collapsed to one space."""
    return " ".join(str(text).split()).lower()


@cache
def items(which: str) -> tuple[dict, ...]:
    name, key, _ = FILES[which]
    with (EVAL / name).open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict) and set(data) == {key}, f"{name}: {data!r:.80}"
    assert isinstance(data[key], list), name
    return tuple(data[key])


@cache
def corpus_text(name: str) -> str:
    path = CORPUS / name
    assert path.is_file(), f"no corpus file {name}"
    return norm(path.read_text(encoding="utf-8"))


def by_route(which: str, *routes: str) -> list[dict]:
    return [i for i in items(which) if i.get("route") in routes]


def params(which: str, *routes: str) -> list:
    return [pytest.param(i, id=i["id"]) for i in by_route(which, *routes)]


# --- shape -------------------------------------------------------------------


def test_counts():
    assert len(items("protocol")) >= 60
    assert len(by_route("protocol", "tolerance")) >= 20
    assert len(by_route("protocol", "protocol")) >= 20
    assert len(by_route("protocol", "protocol", "tolerance")) >= 125
    assert len(by_route("protocol", "unanswerable")) >= 15
    assert len(by_route("drift", "analysis")) >= 30
    assert len(by_route("drift", "fleet")) >= 3
    assert len(by_route("drift", "data")) >= 2
    assert len(by_route("scope", "out_of_scope", "clinical")) >= 15
    assert len(by_route("scope", "clinical")) >= 5
    assert len(by_route("scope", "small_talk")) >= 5


def test_ids_unique_and_routes_allowed():
    ids: list[str] = []
    questions: list[str] = []
    for which, (name, _, pattern) in FILES.items():
        for item in items(which):
            assert pattern.match(str(item.get("id"))), f"{name}: {item}"
            assert item.get("route") in ROUTES[which], f"{name}: {item}"
            assert isinstance(item.get("question"), str), f"{name}: {item}"
            assert item["question"].strip(), f"{name}: {item}"
            ids.append(item["id"])
            questions.append(norm(item["question"]))
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"ids used twice: {duplicates}"
    repeated = sorted({q for q in questions if questions.count(q) > 1})
    assert not repeated, f"questions asked twice: {repeated}"


def test_protocol_fields():
    for item in items("protocol"):
        keys = set(item)
        if item["route"] == "unanswerable":
            # Near-domain questions the corpus does not answer: abstain.
            assert keys == UNANSWERABLE_KEYS, item
            assert isinstance(item["why"], str) and item["why"].strip(), item
            continue
        if item["route"] == "tolerance":
            assert TOLERANCE_KEYS <= keys <= TOLERANCE_KEYS | TOLERANCE_OPTIONAL, item
        else:
            assert keys == PROTOCOL_KEYS, item
        assert item["kind"] in KINDS, item
        assert isinstance(item["must_contain"], list), item
        assert isinstance(item["any_of"], list), item
        assert item["must_contain"] or item["any_of"], item
        for text in item["must_contain"] + item["any_of"]:
            assert isinstance(text, str) and text.strip(), item
            # Markup may be stripped or kept by the renderer: avoid it.
            assert not set(text) & set("*`|"), item
        assert item["sources"] and isinstance(item["sources"], list), item


def test_drift_and_scope_fields():
    for item in items("drift"):
        required = DRIFT_KEYS[item["route"]]
        optional = ANALYSIS_OPTIONAL if item["route"] == "analysis" else set()
        assert required <= set(item) <= required | optional, item
        assert isinstance(item["machine"], str), item
        if item["route"] == "analysis":
            assert item["machine"], item
            assert item["test"] in TESTS, item
            assert canonical_energy(item["energy"]) == item["energy"], item
            assert isinstance(item["drift_detected"], bool), item
            assert item["direction"] in (-1, 0, 1), item
            assert item["status"] in STATUSES, item
            assert (item["direction"] != 0) == item["drift_detected"], item
        elif item["route"] == "fleet":
            first = item["expect_first"]
            assert set(first) == {"machine", "test", "energy", "status"}, item
            assert first["status"] in STATUSES, item
    for item in items("scope"):
        assert set(item) == BASE_KEYS, item


# --- protocol questions against the corpus and the tables ----------------------


@pytest.mark.parametrize("item", params("protocol", "protocol", "tolerance"))
def test_expected_strings_are_in_the_sources(item):
    texts = [corpus_text(source) for source in item["sources"]]
    for text in item["must_contain"] + item["any_of"]:
        assert any(norm(text) in t for t in texts), (
            f"{item['id']}: {text!r} is in none of {item['sources']}")


def _formatted(value, unit: str) -> str:
    if isinstance(value, str):
        return norm(value)
    if unit == "%":
        return f"{value:g}%"
    return f"{value:g} {unit}"


@pytest.mark.parametrize("item", params("protocol", "tolerance"))
def test_tolerance_items_match_the_tables(item, tables: ToleranceTables):
    rows = {row.id: row for row in tables.rows}
    assert item["row"] in rows, f"{item['id']}: no tolerance row {item['row']}"
    row = rows[item["row"]]
    assert row.test == item["test"], (item["id"], row.test)
    assert row.frequency == item["frequency"], (item["id"], row.frequency)
    assert row in tables.find(test=item["test"], frequency=item["frequency"])
    machine_class = item.get("machine_class")
    if item.get("machine"):
        assert machine_class is None, item["id"]
        machine_class, assumed = tables.machine_class(item["machine"])
        assert not assumed, f"{item['id']}: {item['machine']} not in machines.yaml"
    limit_sets = [row.limits] + ([row.action_limits] if row.action_limits else [])
    if machine_class:
        assert machine_class in MACHINE_CLASSES, item["id"]
        values = {limits.get(machine_class) for limits in limit_sets} - {None}
        assert row.limits.get(machine_class) is not None, (
            f"{item['id']}: {row.id} gives no value for {machine_class}")
    else:
        per_set = [set(limits.values()) - {None} for limits in limit_sets]
        assert len(per_set[0]) == 1, (
            f"{item['id']}: {row.id} differs by machine class; name the class")
        values = set().union(*per_set)
    expected = {_formatted(v, row.unit) for v in values}
    given = {norm(text) for text in item["must_contain"] + item["any_of"]}
    assert expected & given, f"{item['id']}: expected one of {expected}, has {given}"


# --- drift requests against the real analysis ----------------------------------


@pytest.fixture(scope="module")
def demo_analysis(demo_fleet, tmp_path_factory):
    """The demo fleet analysed as `qa-agent analyze/fleet --data FILE` does.

    Settings are the defaults (an empty data directory, so the shipped
    tolerance tables without local overrides).
    """
    settings = load_settings(
        {"QA_AGENT_DATA_DIR": str(tmp_path_factory.mktemp("eval-settings"))})
    engine = QAEngine(settings, demo_fleet["data"])
    tables = engine.tables
    options = engine.options()
    series, errors = engine.select()
    assert errors == []
    results = analyze_fleet(series, tables, options, workers=1)
    return {
        "series": {s.key: s for s in series},
        "results": results,
        "documents": {(r.machine, r.test, r.energy): r.to_contract()
                      for r in results},
        "tables": tables,
        "options": options,
    }


def _verdict(item: dict, analysis: dict) -> dict:
    key = (item["machine"], item["test"], item["energy"])
    if not (item.get("start") or item.get("end")):
        return analysis["documents"][key]
    clipped = clip_series(analysis["series"][key], item.get("start"), item.get("end"))
    assert clipped.values.size, item["id"]
    result = SeriesAnalysis(clipped, analysis["tables"]).analyze(
        analysis["options"]).results_data()
    return result.to_contract()


@pytest.mark.parametrize("item", params("drift", "analysis"))
def test_analysis_verdicts_agree_with_the_analysis(item, demo_analysis):
    key = (item["machine"], item["test"], item["energy"])
    assert key in demo_analysis["documents"], f"{item['id']}: no series {key}"
    doc = _verdict(item, demo_analysis)
    assert (doc["machine"], doc["test"], doc["energy"]) == key
    got = (doc["drift"]["detected"], doc["drift"]["direction"], doc["status"])
    want = (item["drift_detected"], item["direction"], item["status"])
    assert got == want, f"{item['id']}: analysis gives {got}, set says {want}"


@pytest.mark.parametrize("item", params("drift", "fleet"))
def test_fleet_first_agrees_with_the_analysis(item, demo_analysis):
    results = [r for r in demo_analysis["results"]
               if not item["machine"] or r.machine == item["machine"]]
    assert results, item["id"]
    first = results[0]
    got = {"machine": first.machine, "test": first.test, "energy": first.energy,
           "status": first.status}
    assert got == item["expect_first"], item["id"]


@pytest.mark.parametrize("item", params("drift", "data"))
def test_data_requests_agree_with_the_data(item, demo_analysis):
    keys = [k for k in demo_analysis["series"]
            if not item["machine"] or k[0] == item["machine"]]
    assert sorted({k[0] for k in keys}) == item["expect_machines"], item["id"]
    assert len(keys) == item["expect_series"], item["id"]


def test_injected_drifts_and_stable_series_are_covered(demo_fleet):
    truth = json.loads(Path(demo_fleet["truth"]).read_text(encoding="utf-8"))
    analysis = by_route("drift", "analysis")
    asked = [(i["machine"], i["test"], i["energy"]) for i in analysis]
    drifting = [(t["machine"], t["test"], t["energy"])
                for t in truth["series"] if t["drift"]]
    assert len(drifting) == 4
    for key in drifting:
        assert asked.count(key) >= 3, f"injected drift {key} asked {asked.count(key)}x"
    stable = [i for i in analysis if not i["drift_detected"]]
    assert len(stable) >= len(analysis) * 0.4, "too few stable series"
