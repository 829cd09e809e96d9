"""Cutting a parsed document into passages along headings and tables.

Each table row becomes its own passage with every cell paired with its column
header ("Test: Jaw position indicators; Frequency: monthly; IMRT: 2 mm"), so a
tolerance never loses its test name or frequency. Prose under one heading is
gathered into passages of at most ``max_words`` words, cut at paragraph (or,
for a very long paragraph, sentence) boundaries. Every passage keeps its
section path ("Monthly mechanical checks > Jaws") and page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.retrieval.documents import Block, ParsedDocument
from agent.vocabulary import HEADING_FREQUENCY_WORDS

_FREQUENCY_WORDS = HEADING_FREQUENCY_WORDS


@dataclass(frozen=True)
class Passage:
    """A retrievable passage.

    ``text`` is what a citation shows; ``context`` (title and section path)
    is prepended for embedding and keyword search.
    """

    text: str
    section: str
    page: int | None
    kind: str  # "text" or "table_row"
    frequency: str  # one of FREQUENCIES or ""

    def indexed_text(self, title: str) -> str:
        """The text embedded and keyword-indexed: title, section, passage."""
        head = " > ".join(p for p in (title, self.section) if p)
        return f"{head}\n{self.text}" if head else self.text


def frequency_in(text: str) -> str:
    """The QA frequency a heading or cell names ('' when none or several)."""
    found = {_FREQUENCY_WORDS[w] for w in re.findall(r"[a-z]+", text.lower())
             if w in _FREQUENCY_WORDS}
    return found.pop() if len(found) == 1 else ""


def render_row(header: list[str], row: list[str]) -> str:
    """A table row with each cell named by its column header."""
    parts = []
    for i, cell in enumerate(row):
        if not cell:
            continue
        name = header[i] if i < len(header) and header[i] else f"Column {i + 1}"
        parts.append(f"{name}: {cell}")
    return "; ".join(parts)


def _split_long(text: str, max_words: int) -> list[str]:
    words = text.split()
    if len(words) <= max_words:
        return [text]
    sentences = re.split(r"(?<=[.!?])\s+", text)
    pieces: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        size = len(" ".join(current).split()) + len(sentence.split())
        if current and size > max_words:
            pieces.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        pieces.append(" ".join(current))
    # A single sentence longer than max_words is cut by words.
    out: list[str] = []
    for piece in pieces:
        w = piece.split()
        out.extend(" ".join(w[i:i + max_words]) for i in range(0, len(w), max_words))
    return out


def split_document(doc: ParsedDocument, max_words: int = 200) -> list[Passage]:
    """Passages of a document in reading order.

    Parameters
    ----------
    doc : ParsedDocument
        The blocks of one file.
    max_words : int
        Largest prose passage, in words (table rows are never merged).

    Returns
    -------
    list of Passage
    """
    # why long: one reading-order walk over the blocks with its running section path;
    # the state would otherwise be threaded through helpers.
    passages: list[Passage] = []
    path: list[tuple[int, str]] = []  # (level, heading) from the top
    buffer: list[Block] = []

    def section() -> str:
        # The document title (the single top heading) is not repeated.
        names = [h for lvl, h in path if not (lvl == 1 and h == doc.title)]
        return " > ".join(names)

    def section_frequency() -> str:
        for _, heading in reversed(path):
            freq = frequency_in(heading)
            if freq:
                return freq
        return frequency_in(doc.title)

    def flush() -> None:
        if not buffer:
            return
        group: list[Block] = []
        count = 0
        for block in buffer:
            n = len(block.text.split())
            if group and (count + n > max_words or block.page != group[0].page):
                _emit(group)
                group, count = [], 0
            group.append(block)
            count += n
        if group:
            _emit(group)
        buffer.clear()

    def _emit(group: list[Block]) -> None:
        text = "\n".join(b.text for b in group)
        for piece in _split_long(text, max_words) if len(group) == 1 else [text]:
            passages.append(Passage(piece, section(), group[0].page, "text",
                                    section_frequency()))

    for block in doc.blocks:
        if block.kind == "heading":
            flush()
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, block.text))
        elif block.kind == "table":
            flush()
            freq_col = next((i for i, h in enumerate(block.header)
                             if h.strip().lower() in ("frequency", "freq")), None)
            for row in block.rows:
                text = render_row(block.header, row)
                if not text:
                    continue
                freq = ""
                if freq_col is not None and freq_col < len(row):
                    freq = frequency_in(row[freq_col])
                passages.append(Passage(text, section(), block.page, "table_row",
                                        freq or section_frequency()))
        elif block.text:
            buffer.append(block)
    flush()
    return passages
