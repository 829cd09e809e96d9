"""Understanding a request by rule: no model, no index, no data (fast, pure)."""

from __future__ import annotations

import pytest

from agent.understanding import Request, RequestContext, Route, understand

MACHINES = ["TrueBeam1", "TrueBeam2", "Clinac3"]


def rules(question: str, previous: Route | None = None) -> Request:
    return understand(question, RequestContext(machines=MACHINES, previous=previous))


def test_a_drift_question_names_machine_test_and_energy():
    request = rules("Is the 10 MV output on truebeam 2 drifting?")
    assert request.intent == "analysis"
    assert request.names() == {"machine": "TrueBeam2", "test": "output",
                               "energy": "10X"}
    assert not (request.follow_up or request.clinical or request.small_talk
                or request.forbidden)
    assert request.route() == Route(intent="analysis", machine="TrueBeam2",
                                    test="output", energy="10X")


def test_a_tolerance_question_is_a_table_look_up():
    request = rules("What is the monthly tolerance for the jaw position indicators?")
    assert request.intent == "tolerance" and request.tolerance_lookup
    assert request.names() == {"test": "jaw", "frequency": "monthly"}


def test_a_follow_up_keeps_the_machine_and_test_and_takes_the_new_energy():
    first = rules("Is the 10 MV output on truebeam 2 drifting?").route()
    follow = rules("and for 6X?", previous=first)
    assert follow.follow_up and follow.intent == "analysis"
    assert follow.names() == {"machine": "TrueBeam2", "test": "output",
                              "energy": "6X"}


def test_a_tolerance_follow_up_adds_the_machine_class():
    first = rules("What is the monthly tolerance for the jaw position "
                  "indicators?").route()
    follow = rules("and for SRS?", previous=first)
    assert follow.follow_up and follow.intent == "tolerance"
    assert follow.names() == {"test": "jaw", "frequency": "monthly",
                              "machine_class": "SRS/SBRT"}


def test_no_follow_up_without_a_previous_turn_or_after_a_fleet_overview():
    alone = rules("and for 6X?")
    assert not alone.follow_up and alone.intent is None
    assert alone.names() == {"energy": "6X"}
    fleet = rules("Which machines need attention?").route()
    assert fleet.intent == "fleet"
    after_fleet = rules("and for 6X?", previous=fleet)
    assert not after_fleet.follow_up and after_fleet.intent is None


def test_a_new_question_after_an_analysis_is_not_a_follow_up():
    first = rules("Is the 10 MV output on truebeam 2 drifting?").route()
    request = rules("How are the EWMA control limits for linac QA computed?",
                    previous=first)
    assert not request.follow_up and request.intent is None
    assert request.names() == {}


@pytest.mark.parametrize(("question", "dates"), [
    ("since January 2025", {"start": "2025-01-01"}),
    ("up to 1 March 2025 on TB2 flatness", {"end": "2025-03-01"}),
    ("how was the output in 2024 on tb2?",
     {"start": "2024-01-01", "end": "2024-12-31"}),
    ("is the 6X output on TrueBeam1 stable since 2025-03-01?",
     {"start": "2025-03-01"}),
])
def test_written_and_iso_dates(question, dates):
    request = rules(question)
    assert {k: v for k, v in request.names().items() if k in ("start", "end")} \
        == dates


def test_since_january_alone_leaves_the_intent_to_the_model():
    request = rules("since January 2025")
    assert request.intent is None and request.start == "2025-01-01"


def test_the_test_named_first_is_the_subject():
    request = rules("ODI tolerance at isocentre")
    assert request.test == "odi" and request.intent == "tolerance"


def test_non_srs_is_not_srs_sbrt():
    assert rules("What is the daily laser tolerance for non-SRS machines?"
                 ).machine_class is None
    assert rules("What is the daily laser tolerance for SRS?"
                 ).machine_class == "SRS/SBRT"
    assert rules("monthly laser tolerance for non-IMRT machines"
                 ).machine_class == "non-IMRT"


@pytest.mark.parametrize("question", [
    "Daily laser tolerance for each machine class: non-IMRT, IMRT and SRS/SBRT?",
    "daily laser tolerance, IMRT vs SRS?",
    "laser tolerance per machine class",
])
def test_several_machine_classes_ask_for_every_class(question):
    request = rules(question)
    assert request.test == "laser" and request.machine_class is None


def test_photon_and_electron_named_together_filter_no_beam():
    assert rules("Annual photon beam quality and electron R50: the two "
                 "tolerances?").beam is None
    assert rules("electron output constancy tolerance?").beam == "electron"


def test_which_machines_with_a_frequency_asks_the_protocols_not_the_fleet():
    request = rules("Is the stereotactic interlock checked daily, and on which "
                    "machines?")
    assert request.intent != "fleet" and request.frequency == "daily"
    assert rules("Which machines need attention?").intent == "fleet"


def test_a_patient_question_is_clinical_and_keeps_no_names():
    request = rules("Should Mrs Smith be treated today?")
    assert request.clinical and request.intent == "clinical"
    assert request.names() == {}
    dose = rules("What dose for this patient on TrueBeam1 with 6X?")
    assert dose.intent == "clinical" and dose.names() == {}


def test_i_mr_chart_is_not_a_person():
    request = rules("How do I set up an I-MR chart?")
    assert not request.clinical and request.intent is None


@pytest.mark.parametrize("question", ["hello", "thank you very much", "Hi!"])
def test_small_talk(question):
    request = rules(question)
    assert request.small_talk and request.intent == "small_talk"


def test_a_long_greeting_is_not_small_talk():
    request = rules("hello, what is the daily laser tolerance for SRS?")
    assert not request.small_talk and request.intent == "tolerance"


def test_a_forbidden_action_is_out_of_scope_with_its_names():
    request = rules("Delete all the TrueBeam1 measurements")
    assert request.forbidden and request.intent == "out_of_scope"
    assert request.names() == {"machine": "TrueBeam1"}


@pytest.mark.parametrize(("question", "intent"), [
    ("Which machines need attention?", "fleet"),
    ("what data do we have?", "data"),
    ("anything wrong with Clinac3?", "fleet"),
    ("What is the 6X output tolerance on TrueBeam1?", "tolerance"),
])
def test_plain_word_intents(question, intent):
    assert rules(question).intent == intent


def test_a_request_the_rules_leave_open_has_no_route():
    request = rules("How are the EWMA control limits for linac QA computed?")
    assert request.intent is None
    with pytest.raises(ValueError, match="left"):
        request.route()
