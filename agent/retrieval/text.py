"""Words for keyword search: tokens, the domain's notation and query rewriting.

The same :func:`tokenize` serves the index and the query, so "6 MV", "6MV"
and "6X" meet as one token. :func:`normalize_query` expands the domain's
abbreviations both ways ("ODI" <-> "optical distance indicator") and mends
typos against the indexed vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import Stemmer

from agent.vocabulary import FREQUENCY_SYNONYMS

_STEMMER = Stemmer.Stemmer("english")

STOPWORDS = frozenset("""
a an and are as at be but by for if in into is it no not of on or such that the
their then there these they this to was will with what which how when where who
whom why does do did doing should shall can could would may might must i we my
our me you your us much many any some about per from than have has had been being
its it's tell please give know need want get one""".split())

#: Words that say what kind of answer is wanted but not about what; a query
#: made only of these is not evidence that a passage answers it.
GENERIC = frozenset("""
tolerance tolerances tol tols limit limits value values test tests testing check checks
checked checking qa quality assurance linac linacs machine machines accelerator
accelerators recommended recommend recommendation required requirement allowed
acceptable often frequency frequent level levels criteria criterion number
correct right current standard protocol protocols mm cm deg degree degrees
percent measure measured measurement measurements report says say use used
soon look looking exactly really actually happen happens mean means kind thing
things way ok okay fine still also just whether anything something else come came
make made take takes taken go goes going keep keeps see seen find found out
over under less more slightly slight bit little lot""".split())

#: Spelling variants and plain words mapped to the words the protocols use.
_BRITISH = {"isocentre": "isocenter", "centre": "center", "centres": "centers",
            "centred": "centered", "localising": "localizing", "optimise":
            "optimize", "colour": "color", "metre": "meter", "litre": "liter",
            "programme": "program", "behaviour": "behavior", "analyse": "analyze",
            "centimetre": "cm", "centimetres": "cm",
            "centimeter": "cm", "centimeters": "cm", "millimetre": "mm",
            "millimetres": "mm", "millimeter": "mm", "millimeters": "mm",
            # Plain words for QA frequencies.
            **FREQUENCY_SYNONYMS}

# Beam notation: "6 MV", "6MV", "6 X", "6x" -> 6x; "6 MV FFF", "6FFF" -> 6fff;
# "9 MeV", "9E" -> 9e.
_FFF = re.compile(r"\b(\d{1,2})\s*(?:mv|x)?\s*[-_ ]?\s*fff\b", re.IGNORECASE)
_PHOTON = re.compile(r"\b(\d{1,2})\s*(?:mv|x)\b(?!-ray)", re.IGNORECASE)
_ELECTRON = re.compile(r"\b(\d{1,2})\s*(?:mev|e)\b", re.IGNORECASE)
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")

#: Groups of phrases that mean the same thing in linac QA; a query naming
#: one is expanded with the others (lower case, before tokenising).
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("odi", "optical distance indicator", "rangefinder"),
    ("light field", "light/radiation field coincidence"),
    ("crosshair", "cross-hair", "cross hair", "reticle"),
    ("mlc", "multileaf collimator"),
    ("cbct", "cone-beam ct", "cone beam ct"),
    ("epid", "electronic portal imaging device", "portal imager"),
    ("fff", "flattening filter free", "flattening-filter-free"),
    ("srs", "stereotactic radiosurgery"),
    ("sbrt", "stereotactic body radiation therapy"),
    ("western electric", "we rules"),
    ("arl", "average run length"),
    ("i-mr", "imr", "individuals and moving range", "xmr", "x-mr"),
    ("ucl", "upper control limit"),
    ("lcl", "lower control limit"),
    ("ewma", "exponentially weighted moving average"),
    ("cusum", "cumulative sum"),
    ("psqa", "patient-specific qa", "patient specific qa", "imrt qa"),
    ("dqa3", "daily qa 3", "daily qa3"),
    ("winston-lutz", "winston lutz", "wl test"),
    ("dta", "distance to agreement"),
    ("mu", "monitor unit"),
    ("lasers", "localizing lasers"),
    ("couch", "treatment couch"),
    ("interlock", "interlocks", "door interlock"),
    ("cpk", "process capability"),
    ("baseline reset", "rebaseline", "re-baseline", "new baseline"),
    ("mppg9a", "mppg 9.a", "practice guideline"),
    ("sym", "symmetry"),
    ("increasing", "rising", "going up"),
    ("decreasing", "falling", "going down"),
)


_REPORT = re.compile(r"\b(tg|task group|mppg)[- ]?(\d+)(\.?[a-z]\b)?",
                     re.IGNORECASE)


def canonical_notation(text: str) -> str:
    """Beams written one way (6x, 6fff, 9e), reports as one word (TG142, MPPG9a)."""
    text = _REPORT.sub(lambda m: ("TG" if m.group(1).lower() != "mppg" else "MPPG")
                       + m.group(2) + (m.group(3) or "").lstrip(".").lower(), text)
    text = _FFF.sub(lambda m: f" {m.group(1)}fff ", text)
    text = _PHOTON.sub(lambda m: f" {m.group(1)}x ", text)
    return _ELECTRON.sub(lambda m: f" {m.group(1)}e ", text)


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def words(text: str) -> list[str]:
    """Lower-case words and numbers of a text, beam notation made canonical."""
    text = canonical_notation(text.replace("’", "'")).lower()
    return [_BRITISH.get(w, w) for w in _TOKEN.findall(text)]


def tokenize(text: str) -> list[str]:
    """Stemmed keyword tokens without stop words (index and query alike)."""
    return [_stem(w) for w in words(text) if w not in STOPWORDS]


_NOT_TOPICAL = re.compile(r"^(\d+(\.\d+)?|\d+(x|fff|e))$")


def content_tokens(text: str) -> list[str]:
    """Tokens that say what a query is about.

    Stop words, generic words ("tolerance", "check"), numbers and beam
    energies are left out: a user's reading "+2.7 %" or "6X" is not a topic.
    """
    return [_stem(w) for w in words(text)
            if w not in STOPWORDS and w not in GENERIC and not _NOT_TOPICAL.match(w)]


@dataclass
class NormalizedQuery:
    """A query made ready for search.

    ``corrected`` is the user's query with notation made canonical and typos
    mended; ``text`` adds the synonyms; ``corrections`` lists the mended words.
    """

    original: str
    corrected: str
    text: str
    corrections: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _english() -> frozenset[str]:
    """English words (pyspellchecker's offline list): never "corrected"."""
    from spellchecker import SpellChecker

    return frozenset(SpellChecker().word_frequency.keys())


def _closest(word: str, vocabulary: frozenset[str]) -> str | None:
    from rapidfuzz import fuzz, process

    match = process.extractOne(word, vocabulary, scorer=fuzz.ratio, score_cutoff=80)
    return match[0] if match else None


def normalize_query(query: str, vocabulary: Iterable[str] = ()) -> NormalizedQuery:
    """Canonical notation, typo repair and synonym expansion of a query.

    Parameters
    ----------
    query : str
        What the user typed.
    vocabulary : iterable of str
        Lower-case words of the indexed passages; a query word of five letters
        or more that is not among them is replaced by the closest one (at
        least 80 % similar), e.g. "positon" -> "position". Real English
        words are left alone: "proton" must not become "photon".
    """
    vocab = vocabulary if isinstance(vocabulary, frozenset) else frozenset(vocabulary)
    # "WE rules" (Western Electric) must not become the stop word "we".
    text = re.sub(r"\bWE\b", "Western Electric", query)
    text = canonical_notation(text)
    corrections: dict[str, str] = {}
    if vocab:
        def mend(match: re.Match[str]) -> str:
            word = match.group(0)
            low = word.lower()
            if (len(low) < 5 or not low.isalpha() or low in vocab
                    or _BRITISH.get(low, low) in vocab or low in _english()):
                return word
            fixed = _closest(low, vocab)
            if fixed is None:
                return word
            corrections[low] = fixed
            return fixed
        text = re.sub(r"[A-Za-z]+", mend, text)
    low = text.lower()
    extra: list[str] = []
    for group in SYNONYMS:
        if any(re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", low) for p in group):
            extra.extend(p for p in group if p not in low)
    expanded = text if not extra else f"{text} ({'; '.join(extra)})"
    return NormalizedQuery(query, text.strip(), expanded.strip(), corrections)
