"""The names a question mentions, found by rule.

Machines ("truebeam 2", "TB2", "the Clinac" when only one is on hand; every
machine named, in order; a stem that fits several, "the TrueBeam", for a
clarifying question), tests (the longest alias, or a one-letter typo of a
test name: "ouput"), energies, frequencies, beam, machine class and written
dates. Used by :func:`agent.understanding.understand`.
"""

from __future__ import annotations

import difflib
import re

from agent.vocabulary import (
    END_WORDS,
    MONTHS,
    START_WORDS,
    TEST_ALIASES,
    TESTS,
    alias_patterns,
    beam_in,
    canonical_machine,
    energy_in,
    frequency_word_in,
    machine_class_in,
)

_WRITTEN_DATE = re.compile(
    r"\b(" + "|".join(START_WORDS + END_WORDS) + r")\s+"
    r"(?:(\d{1,2})(?:st|nd|rd|th)?\s+)?(" + "|".join(MONTHS) + r")\s+(20\d\d)\b")

#: Test names and aliases, longest first, as compiled patterns (built once).
_TEST_PATTERNS = alias_patterns()


def machines_named(low: str, machines: list[str]) -> list[str]:
    """Every known machine the words name, in order ("TB1 and TB2")."""
    tokens = re.findall(r"[a-z0-9]+", low)
    named: list[str] = []
    for size in (3, 2, 1):
        for i in range(len(tokens) - size + 1):
            name = canonical_machine(" ".join(tokens[i:i + size]), machines)
            if name in machines and name not in named:
                named.append(name)
    order = {m: low.replace(" ", "").find(m.lower()) for m in named}
    return sorted(named, key=lambda m: (order[m] < 0, order[m]))


def ambiguous_machine(low: str, machines: list[str]) -> list[str]:
    """The machines a word fits when it names the model but not which one.

    "TrueBeam" with TrueBeam1 and TrueBeam2 on hand; a word that fits one
    machine only is that machine (found by :func:`mentions`).
    """
    stems = _stems(machines)
    tokens = re.findall(r"[a-z]+", low)
    for size in (2, 1):
        for i in range(len(tokens) - size + 1):
            key = "".join(tokens[i:i + size])
            if len(stems.get(key, ())) > 1:
                return sorted(stems[key])
    return []


#: Single-word test names and aliases of five letters or more, for typos.
SINGLE_WORD_TESTS: dict[str, str] = {
    name: test for name, test in
    ({k: k for k in TESTS} | dict(TEST_ALIASES)).items()
    if len(name) >= 5 and re.fullmatch(r"[a-z]+", name)}


def misspelt_test(low: str) -> str | None:
    """The test a word misspells by one letter ("ouput", "flatnes"), or None.

    Only words of five letters or more, matched with difflib against the
    single-word test names and aliases (cutoff 0.85), so "energy" is never
    read into "enemy" and short words are left alone.
    """
    words = [w for w in re.findall(r"[a-z]+", low) if len(w) >= 5]
    for word in words:
        close = difflib.get_close_matches(word, SINGLE_WORD_TESTS, n=1,
                                          cutoff=0.85)
        if close:
            return SINGLE_WORD_TESTS[close[0]]
    return None


def mentions(question: str, machines: list[str]) -> dict[str, str]:
    """Machines, tests, energies and frequencies named in a question, by rule.

    More reliable than a small model for names: "truebeam 2", "TB2", "10 MV",
    "flatness", "lasers", "monthly".

    Parameters
    ----------
    question : str
        The user's words.
    machines : list of str
        The machine names on hand.

    Returns
    -------
    dict of str to str
        The names found: any of energy, machine, test, frequency, beam,
        machine_class, start and end (YYYY-MM-DD).
    """
    found: dict[str, str] = {}
    low = question.lower()
    # Energy: "6X", "6 MV", "10 MV FFF", "9 MeV", "6E".
    energy = energy_in(low)
    if energy:
        found["energy"] = energy
    machine = _machine_in(low, machines)
    if machine:
        found["machine"] = machine
    # Test: the longest alias or canonical name found in the question.
    # The test named first is the subject ("ODI tolerance at isocentre");
    # at one place the longest alias wins ("output factors" over "output").
    hits = [(m.start(), -len(m.group(0)), test) for pattern, test in _TEST_PATTERNS
            if (m := pattern.search(low))]
    if hits:
        found["test"] = min(hits)[2]
    elif typo := misspelt_test(low):
        found["test"] = typo
    frequency = frequency_word_in(low)
    if frequency:
        found["frequency"] = frequency
    beam = beam_in(low) if "energy" not in found else None
    if beam:
        found["beam"] = beam
    machine_class = machine_class_in(low)
    if machine_class:
        found["machine_class"] = machine_class
    dates = re.findall(r"\b(20\d\d-\d\d-\d\d)\b", question)
    if dates:
        found["start"] = dates[0]
        if len(dates) > 1:
            found["end"] = dates[1]
    else:
        found.update(_written_dates(low))
    return found


def _machine_in(low: str, machines: list[str]) -> str | None:
    """The known machine named by a window of one to three words, longest first."""
    tokens = re.findall(r"[a-z0-9]+", low)
    for size in (3, 2, 1):
        for i in range(len(tokens) - size + 1):
            candidate = " ".join(tokens[i:i + size])
            name = canonical_machine(candidate, machines)
            if name in machines:
                return name
    stems = _stems(machines)
    for token in tokens:
        if len(stems.get(token, ())) == 1:  # "the Clinac" with one Clinac on hand
            return stems[token][0]
    return None


def _stems(machines: list[str]) -> dict[str, list[str]]:
    """Machine names without their trailing number ("truebeam": TrueBeam1, 2)."""
    stems: dict[str, list[str]] = {}
    for m in machines:
        stem = re.sub(r"[\s_\-]*\d+$", "", m).lower().replace(" ", "")
        if len(stem) >= 4 and stem != m.lower():
            stems.setdefault(stem, []).append(m)
    return stems


def _written_dates(low: str) -> dict[str, str]:
    """"since January 2025" -> start 2025-01-01; "up to 1 March 2025" -> end."""
    found: dict[str, str] = {}
    for word, day, month, year in _WRITTEN_DATE.findall(low):
        date = f"{year}-{MONTHS[month]:02d}-{int(day or 1):02d}"
        key = "start" if word in START_WORDS else "end"
        found.setdefault(key, date)
    year = re.search(r"\b(?:in|during|over|for)\s+(20\d\d)\b(?!-)", low)
    if year and not found:
        found = {"start": f"{year.group(1)}-01-01", "end": f"{year.group(1)}-12-31"}
    return found


__all__ = ["SINGLE_WORD_TESTS", "ambiguous_machine", "machines_named", "mentions",
           "misspelt_test"]
