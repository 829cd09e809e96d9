"""Extract first: the passage span that states a protocol answer, or none.

A protocol answer starts from what the documents say, found by code: the
table row (its cells, each named by its column) or the one or two sentences
of a passage that state what was asked, shown at once with their citation.
When no span covers the question's topic words, the question is not
answered by the documents and the agent abstains (issue 14: "answer or
abstain"), listing what the documents do cover nearby, marked as not an
answer.

A span covers a question when the rarity-weighted share of the question's
topic words (:func:`agent.retrieval.text.content_tokens`: no stop words, no
generic words such as "tolerance", no numbers) found in the span, its
section and its file name reaches :data:`MIN_COVERAGE`. Several spans are
kept when they cover the question as well as the best one (both jaw rows,
the four gamma settings) or cover a part of it the others leave open
("hidden-target and dosimetric"), so a question with several values gets
all of them. The question is abstained when no span covers it, when it
names a report no passage mentions (TG-119), or when it asks for a
tolerance or limit and the best span states no value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

from agent.retrieval.text import (
    SYNONYMS,
    content_tokens,
    normalize_query,
    tokenize,
)
from agent.verification import best_source

#: Share of the question's weighted topic words a span must cover to answer.
MIN_COVERAGE = 0.5
#: A further span is kept when it covers at least this share of the best.
KEEP_RATIO = 0.9
#: At most this many spans make one extract.
MAX_SPANS = 5
#: Passages this short are one span whatever their sentences.
SHORT_PASSAGE = 320

#: Weight of a machine-class word ("IMRT", "SRS") in a question's topic.
CLASS_WEIGHT = 0.3
_CLASSES = frozenset(tokenize("non-imrt imrt srs sbrt class classes"))
#: Report names, whose digits are no value ("MPPG 9.a lists its own checks").
_NAMES = re.compile(r"\b(TG|MPPG|NCRP|TRS|ICRU)[- ]?\d+(\.?[a-z]\b)?|\S+\.md\b", re.I)
_REPORT_NAME = re.compile(r"^(tg|mppg|ncrp|iaea|trs|icru)\d+[a-z]?$")

#: How a question is worded rather than what it is about ("how far off",
#: "how close must ... match", "each month"); left out of its topic.
PHRASING = frozenset(tokenize("""
far off each time times close closely match matches before after against
compare compared next part count counts pass passing stay well accurate accuracy
according apply applies applied set up relate relates relation vs versus all them
m s ll ve re d t read reads reading readings sure usually typically typical
normally allowed permitted maximum minimum big large small exceed exceeded
exceeds out within beyond keep kept ever every name names ask asks asked tell
list catch catches quick quickly fast soon
"""))

_ROW = re.compile(r"^[^:;\n]{1,60}: [^\n]*; [^:;\n]{1,60}: ")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])|\n+(?:\s*[-*]\s+)?")
_VALUE_QUESTION = re.compile(
    r"\b(tolerance|limit|how (far|much|many|close|accurate|often|long)|value|"
    r"criteria|criterion|threshold|percent|what (is|are) the|which)\b", re.I)
_HAS_VALUE = re.compile(r"\d|\bfunctional\b|\bNA\b|not covered|pass/fail|"
                        r"\bbaseline\b|not recorded|not listed", re.I)
#: A question whose answer is a tolerance or limit: a span without a value
#: does not answer it. Yes/no questions ("Does MPPG 9.a give ...") are not.
_LIMIT_QUESTION = re.compile(
    r"^(?!\s*(does|do|is|are|can|should|was|were)\b).*\b(tolerances?|limits?|"
    r"how (far|much|close|accurate)|criteria|threshold)\b", re.I | re.S)
#: A question for a counted list of names ("what four bounds", "the three
#: action levels") asks for words, not a value.
_NAMES_QUESTION = re.compile(r"\b(two|three|four|five|six|seven|eight)\s+\w+s\b",
                             re.I)


@dataclass(frozen=True)
class Span:
    """A piece of one passage that states (part of) an answer.

    Attributes
    ----------
    passage : int
        The passage's 1-based number, as cited ([1], [2]).
    text : str
        The span as written in the passage.
    source, section : str
        Where the passage comes from.
    page : int or None
        Its page, when the document has pages.
    coverage : float
        Weighted share of the question's topic words it covers (0-1).
    """

    passage: int
    text: str
    source: str
    section: str
    page: int | None
    coverage: float

    def line(self) -> str:
        """The span quoted with its place and citation marker."""
        place = ", ".join(p for p in (self.source, self.section) if p)
        if self.page is not None:
            place += f", p. {self.page}"
        text = " ".join(self.text.split())
        return f"\"{text}\" ({place}) [{self.passage}]"


@dataclass(frozen=True)
class Extract:
    """What the documents state about a question, or why it is abstained.

    Attributes
    ----------
    spans : tuple of Span
        The spans that state the answer, best first; empty when abstained.
    nearby : tuple of str
        When abstained: "file, section" of the passages retrieval found,
        which are not an answer.
    missing : tuple of str
        When abstained: the question's topic words no span covers.
    """

    spans: tuple[Span, ...] = ()
    nearby: tuple[str, ...] = ()
    missing: tuple[str, ...] = field(default_factory=tuple)

    @property
    def abstained(self) -> bool:
        """Whether no passage states what was asked."""
        return not self.spans

    def text(self) -> str:
        """The extract as shown first: one quoted, cited span per line."""
        if not self.spans:
            return ""
        lines = [s.line() for s in self.spans]
        return "The documents state:\n" + "\n".join(f"- {line}" for line in lines)

    def numbered(self) -> str:
        """The spans as the model sees them: ``[n] "text"``, one per line."""
        return "\n".join(f"[{s.passage}] \"{s.text}\"" for s in self.spans)

    def cited(self) -> dict[int, str]:
        """Each cited passage number with the text its numbers may come from."""
        out: dict[int, str] = {}
        for s in self.spans:
            out[s.passage] = (out.get(s.passage, "") + f"\n{s.source} {s.section} "
                              f"{s.text}").strip()
        return out


def is_table_row(text: str) -> bool:
    """Whether a passage is one table row ("Header: cell; Header: cell")."""
    return bool(_ROW.match(text.strip()))


def candidate_spans(text: str) -> list[str]:
    """The spans a passage offers: the whole row, else sentences and pairs.

    Parameters
    ----------
    text : str
        A passage's text.

    Returns
    -------
    list of str
        For a table row, the row; for prose, each sentence (a list item
        counts as one) and each two adjacent sentences.
    """
    text = text.strip()
    if is_table_row(text) or len(text) <= SHORT_PASSAGE:
        return [text]
    pieces: list[str] = []
    for piece in (p.strip(" -*\n") for p in _SENTENCE_END.split(text)):
        if not piece:
            continue
        if pieces and pieces[-1].endswith(":"):
            # A sentence that opens a list belongs with its first item.
            pieces[-1] += " " + piece
        else:
            pieces.append(piece)
    pairs = [f"{a} {b}" for a, b in pairwise(pieces)]
    return pieces + pairs


def _says(low: str, phrase: str) -> bool:
    """Whether a lower-case text holds a phrase; a short one as a whole word
    ("sym" is not in "asymmetric", "mu" not in "must")."""
    if len(phrase) >= 5:
        return phrase in low
    return re.search(rf"(?<![a-z]){re.escape(phrase)}(?![a-z])", low) is not None


def _expanded(text: str) -> set[str]:
    """Tokens of a text with the tokens of its phrases' synonyms."""
    tokens = set(tokenize(text))
    low = text.lower()
    for group in SYNONYMS:
        if any(_says(low, p) for p in group):
            for phrase in group:
                tokens.update(tokenize(phrase))
    return tokens


@dataclass
class Lexicon:
    """What the index knows: its words (typo repair) and token rarity.

    Attributes
    ----------
    vocabulary : frozenset of str
        Lower-case words of the indexed passages.
    idf : callable
        Token -> weight (rarer weighs more); default 1 for every token.
    """

    vocabulary: frozenset[str] = frozenset()
    idf: Callable[[str], float] = lambda _token: 1.0
    tokens: frozenset[str] = frozenset()

    @classmethod
    def of(cls, searcher: Any) -> Lexicon:
        """The lexicon of a :class:`agent.retrieval.search.HybridSearcher`."""
        if searcher is None:
            return cls()
        try:
            kw = searcher.keywords()
        except Exception:  # no index: equal weights, no typo repair
            return cls()
        return cls(kw.vocabulary, kw.idf, kw.token_vocab)


def topic_weights(question: str, lexicon: Lexicon) -> dict[str, float]:
    """The question's topic tokens (typos mended) and their weights."""
    corrected = normalize_query(question, lexicon.vocabulary).corrected
    topic = set(content_tokens(corrected)) - PHRASING
    # A name the index does not know with a digit in it is a machine
    # ("TrueBeam1", "Clinac3"), named for its class, not a topic.
    topic = {t for t in topic if t in lexicon.tokens or not lexicon.tokens
             or not any(c.isdigit() for c in t) or _REPORT_NAME.match(t)}
    # Machine classes qualify the question ("... on an IMRT machine"); every
    # tolerance row names them all, so they weigh little.
    return {t: lexicon.idf(t) * (CLASS_WEIGHT if t in _CLASSES else 1.0)
            for t in topic}


def unknown_reports(weights: dict[str, float], lexicon: Lexicon) -> list[str]:
    """Reports the question names that no indexed passage mentions (TG-119)."""
    if not lexicon.tokens:
        return []
    return sorted(t for t in weights
                  if _REPORT_NAME.match(t) and t not in lexicon.tokens)


def _matches(token: str, tokens: set[str]) -> bool:
    """A token in a set, or a stem variant of one ("storag" ~ "store")."""
    if token in tokens:
        return True
    if len(token) < 4 or token.isdigit():
        return False
    for other in tokens:
        n = min(len(token), len(other))
        if n >= 4 and other[:4] == token[:4]:
            common = len(_common_prefix(token, other))
            if common >= max(4, int(0.8 * n)):
                return True
    return False


def _common_prefix(a: str, b: str) -> str:
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return a[:i]


def _coverage(weights: dict[str, float], tokens: set[str]) -> float:
    total = sum(weights.values())
    if not total:
        return 0.0
    return sum(w for t, w in weights.items() if _matches(t, tokens)) / total


def _scored(question: str, passages: list[dict[str, Any]],
            weights: dict[str, float]) -> list[tuple[float, int, Span]]:
    """Every candidate span with its score, its coverage and its passage."""
    wants_value = bool(_VALUE_QUESTION.search(question))
    out = []
    for n, p in enumerate(passages, start=1):
        # "tg218-imrt-qa.md" names "IMRT QA" (PSQA) as well as TG-218.
        place = re.sub(r"[-_]|\.md\b", " ", str(p.get("source", "")))
        context = _expanded(f"{place} {p.get('source', '')}")
        heading = _expanded(str(p.get("section", "")))
        for order, text in enumerate(candidate_spans(p["text"])):
            own = _expanded(text) | heading
            cover = _coverage(weights, context | own)
            # The span's own words and its section's heading rank the spans
            # (the file name is shared by every passage of a document).
            score = 0.7 * cover + 0.3 * _coverage(weights, own)
            score += 0.05 if wants_value and _HAS_VALUE.search(text) else 0
            # A document's list of sources describes it; it rarely answers.
            score -= 0.1 if p.get("section") == "Sources" else 0
            # Shorter spans and better-ranked passages win ties.
            score -= 0.01 * (n - 1) + 0.002 * order + 0.0001 * len(text) / 100
            out.append((score, n, Span(n, text, str(p.get("source", "")),
                                       str(p.get("section", "")), p.get("page"),
                                       round(cover, 3))))
    out.sort(key=lambda x: -x[0])
    return out


def extract(question: str, passages: list[dict[str, Any]],
            lexicon: Lexicon | None = None) -> Extract:
    """The spans of the passages that state the answer, or an abstention.

    Parameters
    ----------
    question : str
        The user's words.
    passages : list of dict
        The retrieved passages (``source``, ``section``, ``page``, ``text``),
        numbered from 1 as they are cited.
    lexicon : Lexicon, optional
        The index's vocabulary and token weights (default: equal weights).

    Returns
    -------
    Extract
        Up to :data:`MAX_SPANS` spans covering the question as well as the
        best one (one per passage, none repeated), or an abstention that
        names the passages found nearby and the topic words left uncovered.
    """
    lexicon = lexicon or Lexicon()
    weights = topic_weights(question, lexicon)
    scored = _scored(question, passages, weights)
    nearby = tuple(dict.fromkeys(
        ", ".join(x for x in (p.get("source", ""), p.get("section", "")) if x)
        for p in passages))
    if (not scored or not weights or scored[0][2].coverage < MIN_COVERAGE
            or unknown_reports(weights, lexicon)):
        # No span covers the question, it names a report the documents do not
        # hold, or it asks for a value and the best span states none.
        covered: set[str] = set()
        if scored:
            best = scored[0][2]
            covered = _expanded(f"{best.source} {best.section} {best.text}")
        missing = tuple(sorted(t for t in weights if t not in covered))
        return Extract(nearby=nearby, missing=missing)
    spans = _kept(scored, weights)
    for span in _part_spans(question, passages, lexicon, weights):
        if len(spans) < MAX_SPANS and not any(_same(s.text, span.text)
                                              for s in spans):
            spans.append(span)
    if _LIMIT_QUESTION.search(question) and not _NAMES_QUESTION.search(
            question) and not any(
            _HAS_VALUE.search(_NAMES.sub(" ", s.text)) for s in spans):
        return Extract(nearby=nearby)  # asks for a limit, and none is stated
    return Extract(spans=tuple(sorted(spans, key=lambda s: s.passage)))


def _kept(scored: list[tuple[float, int, Span]], weights: dict[str, float]
          ) -> list[Span]:
    """The best span, and the others as good as it or covering a part of the
    question it leaves open ("hidden-target and dosimetric end-to-end
    tests"), one per passage."""
    best = scored[0][2]
    spans = [best]
    covered = _covered(weights, best)
    for _score, n, span in scored[1:]:
        if len(spans) >= MAX_SPANS:
            break
        adds = _covered(weights, span) - covered
        if span.coverage < MIN_COVERAGE or (
                span.coverage < KEEP_RATIO * best.coverage and not adds):
            continue
        if any(s.passage == n or _same(s.text, span.text) for s in spans):
            continue
        spans.append(span)
        covered |= adds
    return spans


#: Where a question asks a further thing ("...: what beta and what target T").
_PARTS = re.compile(r"\s*(?:[,;:]|\band\b)\s+(?=(?:what|which|how)\b)|\?\s+|"
                    r"\s+and\s+", re.I)


def question_parts(question: str) -> list[str]:
    """The parts of a question that asks several things, or [] for one thing.

    "Table-top sag and table angle: annual tolerances?" asks two values; each
    part is searched and extracted on its own as well (every value asked for).
    """
    parts = [p for p in _PARTS.split(question) if p and len(p.split()) >= 2]
    return parts if len(parts) > 1 else []


def _part_spans(question: str, passages: list[dict[str, Any]], lexicon: Lexicon,
                weights: dict[str, float]) -> list[Span]:
    """The best span of each part of a question that asks several things.

    "What beta and what target T?" has two values; the spans that cover the
    whole question best may state only one of them, so each part gets its
    own best span (its coverage then given for the whole question).
    """
    out = []
    for part in question_parts(question):
        part_weights = topic_weights(part, lexicon)
        # A part of one topic word ("light" of "light and radiation") is no
        # question of its own.
        scored = _scored(part, passages, part_weights) if len(part_weights) > 1 \
            else []
        if not scored or scored[0][2].coverage < MIN_COVERAGE:
            continue
        span = scored[0][2]
        tokens = _expanded(f"{span.source} {span.section} {span.text}")
        out.append(replace(span, coverage=round(_coverage(weights, tokens), 3)))
    return out


def _covered(weights: dict[str, float], span: Span) -> set[str]:
    """The question's topic words a span (its text and place) covers."""
    tokens = _expanded(f"{span.source} {span.section} {span.text}")
    return {t for t in weights if _matches(t, tokens)}


def _same(a: str, b: str) -> bool:
    """Whether two spans say the same (one contains the other)."""
    a, b = " ".join(a.lower().split()), " ".join(b.lower().split())
    return a in b or b in a



def worded(sentence: str, found: Extract) -> str:
    """The model's sentence made ready to check, or "" when it declined.

    A small model often forgets the citation marker: with one span, that
    span is the source; with several, the one sharing most numbers and
    words with the sentence (:func:`agent.verification.best_source`).

    Parameters
    ----------
    sentence : str
        What the model wrote.
    found : Extract
        The extract it worded.

    Returns
    -------
    str
        The sentence with a marker, or "" for an empty reply, "NONE" or a
        refusal.
    """
    text = sentence.strip()
    if not text or "NONE" in text or "do not answer" in text.lower():
        return ""
    if len(re.findall(r"[A-Za-z]{2,}", re.sub(r"\[\d+\]", " ", text))) < 3:
        return ""  # a bare marker or a value alone ("6 [1]") says nothing new
    if re.search(r"\[\d+\]", text) or not found.spans:
        return text
    n = best_source(text, [{"text": s.text} for s in found.spans])
    source = found.spans[(n or 1) - 1].passage
    return text.rstrip(".") + f" [{source}]."
