"""Extract first, answer or abstain, the stricter number check (issue 14).

The number check and the span choice are pure functions; the spans are
taken from the real index of the shipped corpus (``corpus_searcher``).
"""

from __future__ import annotations

import pytest

from agent.answers import NOT_FOUND, abstention
from agent.extraction import Lexicon, candidate_spans, extract, is_table_row, worded
from agent.verification import clauses, quantities, unbound_numbers

SYMMETRIC = ("Test: Jaw position indicators, symmetric; Frequency: monthly; "
             "Non-IMRT: 2 mm; IMRT: 2 mm; SRS/SBRT: 2 mm")
ASYMMETRIC = ("Test: Jaw position indicators, asymmetric; Frequency: monthly; "
              "Non-IMRT: 1 mm; IMRT: 1 mm; SRS/SBRT: 1 mm")


def test_a_unit_converted_number_is_caught():
    cited = {1: "Test: Isocenter walkout; Non-IMRT: 0.35 cm"}
    assert unbound_numbers("The walkout tolerance is 3.5 mm [1].", cited) == [
        "3.5 mm (cites [1])"]
    assert unbound_numbers("The walkout tolerance is 0.35 cm [1].", cited) == []
    # Unless the passage says so itself.
    cited = {1: "Walkout: 0.35 cm (3.5 mm)"}
    assert unbound_numbers("The walkout tolerance is 3.5 mm [1].", cited) == []


def test_a_number_from_the_wrong_row_is_caught():
    cited = {1: SYMMETRIC, 2: ASYMMETRIC}
    right = "Symmetric jaws 2 mm [1]; asymmetric jaws 1 mm [2]."
    swapped = "Symmetric jaws 1 mm [1]; asymmetric jaws 2 mm [2]."
    assert unbound_numbers(right, cited) == []
    assert unbound_numbers(swapped, cited) == ["1 mm (cites [1])",
                                               "2 mm (cites [2])"]
    # A passage not among those given, and a number citing nothing.
    assert unbound_numbers("Jaws 2 mm [3].", cited)[0].startswith("cites [3]")
    assert unbound_numbers("Jaws 2 mm.", cited) == ["2 mm (cites nothing)"]


def test_a_rule_number_is_not_a_count():
    """Nelson's trend rule is rule 3 and needs 6 points, not 3."""
    cited = {1: "Rule: Nelson 3; Signal when: 6 points in a row steadily "
                "increasing or steadily decreasing"}
    assert unbound_numbers("Nelson 3 needs 6 points in a row [1].", cited) == []
    assert unbound_numbers("The trend rule needs 3 points in a row [1].",
                           cited) == ["3 point (cites [1])"]


def test_quantities_bind_units_and_pairs():
    assert quantities("2% / 2 mm; 3%/2 mm; 1 deg") == [
        ("2", "%", ""), ("2", "mm", ""), ("3", "%", ""), ("2", "mm", ""),
        ("1", "deg", "")]
    assert quantities("1.0 degrees") == [("1", "deg", "")]
    assert clauses("a 2 mm [1], b 1 mm [2][3].") == [("a 2 mm", {1}),
                                                     (", b 1 mm", {2, 3})]


def test_spans_are_rows_or_sentences():
    assert is_table_row(SYMMETRIC)
    assert candidate_spans(SYMMETRIC) == [SYMMETRIC]
    prose = ("The Winston-Lutz test checks how well the radiation isocenter "
             "agrees with the mechanical isocenter. As TG-198 describes it:\n"
             "- Place a small ball bearing (BB) at the mechanical isocenter, "
             "using the room lasers to position it.\n- Irradiate and image the "
             "BB at several gantry, collimator and couch angles.\n- Report the "
             "displacement of the radiation isocenter from the BB, at most 1 mm "
             "on an SRS/SBRT machine.")
    spans = candidate_spans(prose)
    # A sentence opening a list keeps its first item.
    assert "As TG-198 describes it: Place a small ball bearing (BB) at the " \
        "mechanical isocenter, using the room lasers to position it." in spans


@pytest.fixture(scope="module")
def lexicon(corpus_searcher):
    return Lexicon.of(corpus_searcher)


def _found(searcher, lexicon, question):
    passages = [p.contract() for p in searcher.search(question)]
    return extract(question, passages, lexicon), passages


@pytest.mark.parametrize(("question", "values"), [
    ("Monthly jaw readout tolerances, symmetric and asymmetric settings?",
     ["2 mm", "1 mm"]),
    ("What tolerance does TG-142 give for electron beam energy constancy at "
     "the monthly check?", ["2% / 2 mm"]),
    ("What gamma criteria does TG-218 recommend?",
     ["3%/2 mm", "global", "absolute dose", "10%"]),
    ("What are the three action levels in TG-142?",
     ["inspection", "scheduled", "immediate"]),
    ("daily room laser tolerance on an IMRT machine?", ["1.5 mm"]),
    # Two things asked, in one passage's list: each part gets its span.
    ("TG-218 action limit: what beta and what target T for gamma passing rates?",
     ["beta = 6", "T = 100%"]),
    # "rising or falling" is how the primer's "increasing or decreasing" is asked.
    ("Which Nelson rule catches a trend, and how many points in a row steadily "
     "rising or falling does it need?", ["6 points in a row"]),
    # A counted list of names asks for words, not a value.
    ("What four bounds does QATrack+ store for a test's tolerance?",
     ["action low", "tolerance low", "tolerance high", "action high"]),
])
def test_every_value_asked_for_is_extracted(corpus_searcher, lexicon, question,
                                            values):
    found, passages = _found(corpus_searcher, lexicon, question)
    assert not found.abstained
    shown = found.text()
    for value in values:
        assert value in shown, (value, shown)
    # Each span is quoted as written in the passage it cites (a list's
    # bullets and line breaks aside).
    def flat(text: str) -> str:
        return " ".join(text.replace("\n- ", " ").split())

    for span in found.spans:
        assert flat(span.text) in flat(passages[span.passage - 1]["text"])
        assert f"[{span.passage}]" in shown
    assert unbound_numbers(shown, found.cited()) == []


def test_passages_about_something_else_are_an_abstention(corpus_searcher,
                                                          lexicon):
    """A proton question with TG-142 daily passages at hand (as a rewritten
    query finds them) is abstained, and no passage is quoted."""
    passages = [p.contract() for p in corpus_searcher.search(
        "TG-142 daily output tolerance")]
    assert passages
    found = extract("What is the daily range tolerance for a pencil-beam "
                    "scanning proton system?", passages, lexicon)
    assert found.abstained and found.text() == ""
    assert "proton" in found.missing
    reply = abstention(found.nearby)
    assert reply.startswith(NOT_FOUND) and "Not an answer" in reply
    assert "[" not in reply and '"' not in reply


def test_the_model_sentence_gets_a_marker(corpus_searcher, lexicon):
    found, _ = _found(corpus_searcher, lexicon,
                      "daily room laser tolerance on an IMRT machine?")
    n = found.spans[0].passage
    assert worded("The IMRT daily laser tolerance is 1.5 mm.", found).endswith(
        f"[{n}].") or len(found.spans) > 1
    assert worded("NONE", found) == ""


def test_every_shipped_tolerance_row_has_a_passage_stating_it(corpus_searcher):
    """A table answer is always cited: to the corpus row holding the table
    row's numbers, from its report's own document, else to the row itself."""
    from agent.qa.tolerances import ToleranceTables
    from agent.row_passages import passages_for_rows, row_passage
    from agent.verification import numbers_in

    kw = corpus_searcher.keywords()
    tables = ToleranceTables.load(corpus_searcher.settings.tolerance_dir)
    expected = {"tg142-t1-laser": ("tg142-daily.md", "Laser localization"),
                "mppg9a-daily-isocentricity": ("mppg9a-srs-sbrt.md",
                                               "Isocentricity"),
                "tg142-t3-table-angle": ("tg142-annual.md", "Table angle"),
                "tg142-t2-jaw-asymmetric": ("tg142-monthly.md", "asymmetric")}
    unstated = []
    for row in tables.find():
        record = {**row.model_dump(), "source": f"{row.document}, {row.table}"}
        i = row_passage(record, kw.texts, kw.metas)
        if i is None:
            unstated.append(row.id)
            continue
        values = [v for v in row.limits.values() if isinstance(v, int | float)]
        assert {f"{v:g}" for v in values} <= numbers_in(kw.texts[i]), row.id
        if row.id in expected:
            source, name = expected.pop(row.id)
            assert kw.metas[i]["source"] == source
            assert kw.texts[i].startswith("Test: ") and name in kw.texts[i]
    assert not expected
    # TG-218's universal limits are prose in the corpus: the row cites itself.
    assert unstated == ["tg218-gamma-pass-rate"]
    gamma = tables.find(test="gamma_pass_rate")[0]
    record = {**gamma.model_dump(), "source": f"{gamma.document}, {gamma.table}"}
    [own] = passages_for_rows(corpus_searcher, [record], [])
    assert own["source"] == "tolerance table"
    assert "95%" in own["text"] and "90%" in own["text"]
