"""Requests about periods, events, comparisons and what exactly is asked.

Periods are settled against a synthetic series whose dates are known (every
day of 2025, a baseline reset on 2025-06-02), so every expected date below is
worked out by hand from the calendar. The agent runs without a language
model (``Agent(None, ...)``): data requests are understood by rule and
answered by code, which is what these tests are about.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import knowledge_settings

from agent.graph import Agent, Conversation
from agent.period_words import compared_periods, period_in
from agent.qa.comparison import compare_groups
from agent.qa.periods import resolve_period
from agent.qa.selection import SelectionError
from agent.qa.series import SeriesData
from agent.tools import ToolContext
from agent.understanding import RequestContext, understand

MACHINES = ["TrueBeam1", "TrueBeam2", "Clinac3"]


def _series(start: str = "2025-01-01", days: int = 365,
            resets: tuple[str, ...] = ("2025-06-02",)) -> SeriesData:
    dates = np.arange(np.datetime64(start), np.datetime64(start) + days
                      ).astype("datetime64[s]")
    return SeriesData(machine="TrueBeam1", test="output", energy="6X", unit="%",
                      dates=dates, values=np.zeros(dates.size),
                      resets=tuple(np.datetime64(r, "s") for r in resets))


def _dates(words: str, series: SeriesData | None = None) -> tuple:
    spec = period_in(words.lower())
    assert spec is not None, words
    period = resolve_period(spec, [series or _series()])
    return period.start, period.end


@pytest.mark.parametrize(("words", "start", "end"), [
    # absolute: the most recent span with data when no year is given
    ("over the spring", "2025-03-01", "2025-05-31"),
    ("in Q3", "2025-07-01", "2025-09-30"),
    ("third quarter of 2025", "2025-07-01", "2025-09-30"),
    ("the first half of 2025", "2025-01-01", "2025-06-30"),
    ("between 3 and 17 March", "2025-03-03", "2025-03-17"),
    ("from March to June 2025", "2025-03-01", "2025-06-30"),
    ("in March", "2025-03-01", "2025-03-31"),
    ("during 2025", "2025-01-01", "2025-12-31"),
    # the winter that holds the latest measurement (2025-12-31)
    ("over the winter", "2025-12-01", "2026-02-28"),
    ("over the winter of 2025", "2024-12-01", "2025-02-28"),
    # relative to the latest measurement (2025-12-31, a Wednesday)
    ("the last three months", "2025-10-01", "2025-12-31"),
    ("over the last six weeks", "2025-11-20", "2025-12-31"),
    ("the past 30 measurements", "2025-12-02", "2025-12-31"),
    ("the last 10 days", "2025-12-22", "2025-12-31"),
    ("this week", "2025-12-29", "2025-12-31"),
    ("last month", "2025-11-01", "2025-11-30"),
    # relative to the stored reset
    ("since the recalibration", "2025-06-02", None),
    ("since the last baseline reset", "2025-06-02", None),
    ("before the June recalibration", None, "2025-06-01"),
])
def test_periods_in_words_have_the_calendar_dates(words, start, end):
    assert _dates(words) == (start, end)


def test_a_period_without_data_is_said_not_widened():
    with pytest.raises(SelectionError, match=r"no measurements .* in 2019 .*"
                       r"its data runs from 2025-01-01 to 2025-12-31"):
        _dates("in 2019")


def test_an_event_that_is_not_recorded_is_said():
    with pytest.raises(SelectionError, match=r"no recalibration or baseline reset "
                       "in May is recorded .*recorded: 2025-06-02"):
        _dates("since the May recalibration")
    with pytest.raises(SelectionError, match="recorded: none"):
        _dates("since the recalibration", _series(resets=()))


def test_two_periods_to_compare():
    before, after = compared_periods("the output before and after the recalibration")
    assert (before.kind, after.kind) == ("before_event", "since_event")
    first, second = compared_periods("compare january with june")
    assert (first.index, second.index) == (1, 6)
    assert compared_periods("output in january") is None


def rules(question, previous=None, previous_request=None):
    return understand(question, RequestContext(
        machines=MACHINES, previous=previous, previous_request=previous_request))


@pytest.mark.parametrize(("question", "ask"), [
    ("Is the TB2 10X output drifting?", "verdict"),
    ("When did the TB2 10X output shift start?", "onset"),
    ("Which days was the TB2 10X output out of tolerance?", "out_of_tolerance"),
    ("When will the TB2 10X output reach tolerance?", "projection"),
    ("What are the control limits of the TB2 10X output?", "limits"),
    ("What is the Cpk of the TB2 10X output?", "capability"),
    ("What was the latest TB2 10X output value?", "latest"),
    ("How many measurements of the TB2 10X output do we have?", "count"),
    ("Compare the TB2 10X output in January with June", "comparison"),
])
def test_what_is_asked(question, ask):
    request = rules(question)
    assert request.intent == "analysis", request
    assert request.names() == {"machine": "TrueBeam2", "test": "output",
                               "energy": "10X"}
    assert request.ask == ask


def test_follow_ups_inherit_the_series_and_the_period():
    first = rules("Was the 6 MV output on TrueBeam 1 stable over the spring?")
    assert first.period.kind == "season" and first.ask == "verdict"
    out = rules("which days were out?", first.route(), first)
    assert out.follow_up and out.ask == "out_of_tolerance"
    assert out.names() == first.names() and out.period == first.period
    onset = rules("when did that start?", out.route(), out)
    assert onset.ask == "onset" and onset.period == first.period
    other = rules("and the 10X?", onset.route(), onset)
    assert other.energy == "10X" and other.ask == "onset"
    wider = rules("what about the last 30 measurements?", other.route(), other)
    assert wider.period.kind == "last" and wider.period.count == 30


def test_families_and_several_series():
    family = rules("How are all the 6X outputs doing?")
    assert family.intent == "analysis" and family.machine is None
    assert (family.test, family.energy) == ("output", "6X")
    lasers = rules("how is every machine's laser doing?")
    assert lasers.intent == "analysis" and lasers.names() == {"test": "laser"}
    both = rules("Is the 6X and 10X output on TrueBeam2 stable?")
    assert both.energies == ["6X", "10X"]
    machines = rules("compare TB1 and TB2 6X output")
    assert machines.ask == "comparison"
    assert machines.machines == ["TrueBeam1", "TrueBeam2"]


def test_an_ambiguous_machine_gets_a_question_not_a_guess():
    request = rules("Is the 6X output on the TrueBeam drifting?")
    assert request.clarification == "Which machine do you mean: TrueBeam1 or " \
        "TrueBeam2?"
    assert request.machine is None


def test_welch_interval_of_a_comparison():
    a, b = _series(days=4), _series(days=4)
    a.values[:] = [1, 2, 3, 4]
    b.values[:] = [3, 4, 5, 6]
    from agent.qa.analysis import SeriesAnalysis
    from agent.qa.tolerances import ToleranceTables

    tables = ToleranceTables.load(Path(__file__).parents[1] / "knowledge" /
                                  "tolerances")
    ra, rb = (SeriesAnalysis(s, tables).analyze().results_data() for s in (a, b))
    c = compare_groups(("a", a, ra), ("b", b, rb))
    # Equal variances (5/3 each), n = 4: se = sqrt(5/12 + 5/12) = 0.91287,
    # Welch df = 6, t(0.975, 6) = 2.44691: 2 +- 2.23371.
    assert c.difference == 2
    assert c.ci_low == pytest.approx(-0.2337, abs=1e-4)
    assert c.ci_high == pytest.approx(4.2337, abs=1e-4)
    assert [g.mean for g in c.groups] == [2.5, 4.5]
    assert c.groups[0].sd == pytest.approx(1.291, abs=1e-3)


# --- through the agent, on the demo fleet ----------------------------------------


@pytest.fixture(scope="module")
def agent(demo_fleet, tmp_path_factory):
    settings = knowledge_settings(tmp_path_factory.mktemp("requests"))
    return Agent(None, ToolContext(settings=settings, data=demo_fleet["data"]),
                 "", "", unavailable="no model in this test")


def _calls(doc, name):
    return [c for c in doc["tool_calls"] if c["name"] == name]


def test_the_period_is_analysed_and_said(agent):
    doc = agent.ask("the crossplane symmetry 6X trend on TrueBeam2 for the last "
                    "3 months")
    (run,) = _calls(doc, "analyze_series")
    # The demo data end on 2025-12-31: three months back from there.
    assert (run["args"]["start"], run["args"]["end"]) == ("2025-10-01", "2025-12-31")
    (series,) = run["result"]["series"]
    assert series["details"]["first_date"] >= "2025-10-01"
    assert "the last 3 months (2025-10-01 to 2025-12-31)" in doc["answer"]


def test_a_period_with_no_data_is_said(agent):
    doc = agent.ask("How was the TrueBeam1 6X output in 2019?")
    assert not _calls(doc, "analyze_series")
    assert doc["answer"].startswith("I could not run that: no measurements of "
                                    "TrueBeam1 6X output in 2019")
    assert "its data runs from 2024-01-01 to 2025-12-31" in doc["answer"]


def test_ambiguous_name_question_then_the_answer(agent):
    conversation = Conversation()
    doc = agent.ask("Is the 6X output on the TrueBeam drifting?", conversation)
    assert doc["answer"] == "Which machine do you mean: TrueBeam1 or TrueBeam2?"
    assert not doc["tool_calls"]
    doc = agent.ask("TrueBeam2", conversation)
    (run,) = _calls(doc, "analyze_series")
    assert (run["args"]["machine"], run["args"]["test"], run["args"]["energy"]) == (
        "TrueBeam2", "output", "6X")


def test_onset_and_out_of_tolerance_answers(agent):
    conversation = Conversation()
    doc = agent.ask("Has the TrueBeam2 10X output shifted?", conversation)
    (run,) = _calls(doc, "analyze_series")
    drift = run["result"]["series"][0]["drift"]
    assert drift["detected"] and drift["direction"] == 1
    doc = agent.ask("when did that start?", conversation)
    (run,) = _calls(doc, "analyze_series")
    details = run["result"]["series"][0]["details"]["drift"]
    assert run["args"]["ask"] == "onset"
    assert f"the shift began around {details['onset']} (CUSUM onset); first " \
        f"signal {details['signal_date']}" in doc["answer"]
    # The demo's step on 2025-09-15 (agent/qa/demo.py): the onset is near it.
    assert "2025-09-08" <= details["onset"] <= "2025-09-22"
    doc = agent.ask("Which days was the Clinac3 laser out of tolerance?")
    (run,) = _calls(doc, "analyze_series")
    series = run["result"]["series"][0]
    days = series["tolerance"]["out_of_tolerance"]
    values = series["details"]["out_of_tolerance_values"]
    assert days and len(days) == len(values)
    for day, value in zip(days, values, strict=True):
        assert f"{day} ({value:g} mm)" in doc["answer"]


def test_comparison_before_and_after_the_recalibration(agent):
    doc = agent.ask("Compare the TrueBeam1 6X output before and after the "
                    "recalibration")
    (run,) = _calls(doc, "compare_series")
    before, after = run["args"]["groups"]
    # The demo's recalibration (baseline reset) is on 2025-03-03.
    assert (before["start"], before["end"]) == (None, "2025-03-02")
    assert (after["start"], after["end"]) == ("2025-03-03", None)
    c = run["result"]["comparison"]
    assert c["groups"][0]["end"] <= "2025-03-02" <= c["groups"][1]["start"]
    assert "| n |" in doc["answer"] and "95% CI" in doc["answer"]
    assert f"{c['difference']:+g} %" in doc["answer"]


def test_projection_is_not_contradicted_by_days_already_out(agent):
    doc = agent.ask("When will the TrueBeam2 6X crossplane symmetry reach "
                    "tolerance?")
    (run,) = _calls(doc, "analyze_series")
    series = run["result"]["series"][0]
    crossing = series["drift"]["projected_crossing"]
    if series["details"]["latest_level"] != "ok":
        assert crossing is None and "No projection" in doc["answer"]
    else:
        assert crossing and f"around {crossing}" in doc["answer"]
        if series["tolerance"]["out_of_tolerance"]:
            assert "Earlier, " in doc["answer"]


def test_ask_json_args_carry_the_resolved_period(agent):
    doc = agent.ask("Was the 6 MV output on TrueBeam 1 stable over the spring?")
    (period,) = _calls(doc, "resolve_period")
    assert period["result"]["start"] == "2025-03-01"
    (run,) = _calls(doc, "analyze_series")
    assert (run["args"]["start"], run["args"]["end"]) == ("2025-03-01", "2025-05-31")
    assert "spring 2025 (2025-03-01 to 2025-05-31)" in doc["answer"]
