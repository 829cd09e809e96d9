"""The retrieval evaluation and calibration sets are well formed and answerable.

eval/retrieval.yaml is the held-out evaluation set; eval/retrieval_calibration.yaml
is used to fit the relevance threshold. A retrieved passage is a hit for a question
when it comes from one of the question's `sources` and contains every `expect`
string (case-insensitive, whitespace collapsed). Retrieval cuts every Markdown
table row into its own passage (cells paired with their column headers) and prose
into passages of whole paragraphs, so each `expect` list must be satisfied by one
table row, with each string inside one cell, or by one paragraph (a block of
consecutive non-blank lines that are not table rows) of a named source file.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "knowledge" / "corpus"
EVAL = ROOT / "eval" / "retrieval.yaml"
CALIBRATION = ROOT / "eval" / "retrieval_calibration.yaml"
KINDS = {"direct", "paraphrase", "abbreviation", "typo", "machine-class", "concept"}
ID_PATTERN = {
    "answerable": re.compile(r"^a\d{3}$"),
    "unanswerable": re.compile(r"^u\d{3}$"),
}


def norm(text: str) -> str:
    """Lower case with every run of whitespace collapsed to one space."""
    return " ".join(text.split()).lower()


def load(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), f"{path.name}: top level must be a mapping"
    assert set(data) == {"answerable", "unanswerable"}, f"{path.name}: {set(data)}"
    return data


def is_table_row(line: str) -> bool:
    return line.lstrip().startswith("|")


def is_separator(line: str) -> bool:
    return re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*", line.strip()) is not None


def split_cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return [norm(cell) for cell in inner.split("|")]


@cache
def units(name: str) -> tuple[tuple[str, ...], ...]:
    """Retrieval units of a corpus file: one tuple of cells per table row, one
    one-element tuple per paragraph. Table header and separator rows and
    headings are not units."""
    lines = (CORPUS / name).read_text(encoding="utf-8").splitlines()
    out: list[tuple[str, ...]] = []
    block: list[str] = []
    in_table_header = False

    def flush() -> None:
        if block:
            out.append((norm(" ".join(block)),))
            block.clear()

    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            flush()
            continue
        if is_table_row(line):
            flush()
            if is_separator(line):
                continue
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            in_table_header = is_separator(nxt)
            if not in_table_header:
                out.append(tuple(split_cells(line)))
            continue
        block.append(line)
    flush()
    return tuple(out)


def satisfied(expect: list[str], unit: tuple[str, ...]) -> bool:
    """Every expect string lies inside one cell (rows) or the paragraph."""
    return all(any(norm(e) in cell for cell in unit) for e in expect)


def entries():
    for path in (EVAL, CALIBRATION):
        data = load(path)
        for item in data["answerable"]:
            yield pytest.param(path.name, item, id=f"{path.stem}:{item['id']}")


def test_counts():
    data = load(EVAL)
    assert len(data["answerable"]) >= 80
    assert len(data["unanswerable"]) >= 15
    cal = load(CALIBRATION)
    assert len(cal["answerable"]) >= 30
    assert len(cal["unanswerable"]) >= 15


def test_fields_and_ids():
    ids: list[str] = []
    for path in (EVAL, CALIBRATION):
        data = load(path)
        for section, required in (
            ("answerable", {"id", "question", "sources", "expect", "kind"}),
            ("unanswerable", {"id", "question", "why"}),
        ):
            for item in data[section]:
                assert set(item) == required, f"{path.name}: {item}"
                assert ID_PATTERN[section].match(item["id"]), item["id"]
                assert isinstance(item["question"], str) and item["question"].strip()
                ids.append(item["id"])
                if section == "answerable":
                    assert item["kind"] in KINDS, item
                    assert item["sources"] and item["expect"], item
                    for e in item["expect"]:
                        assert isinstance(e, str) and e.strip(), item
                        # Markup may be stripped or kept by the renderer: avoid it.
                        assert not set(e) & set("*`|"), item
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"ids used twice: {duplicates}"


def test_no_shared_questions():
    eval_questions = set()
    cal_questions = set()
    for path, bucket in ((EVAL, eval_questions), (CALIBRATION, cal_questions)):
        data = load(path)
        for section in ("answerable", "unanswerable"):
            questions = [norm(item["question"]) for item in data[section]]
            bucket.update(questions)
    assert not eval_questions & cal_questions
    for path in (EVAL, CALIBRATION):
        data = load(path)
        questions = [norm(i["question"]) for s in data.values() for i in s]
        assert len(questions) == len(set(questions)), f"{path.name}: repeated"


def test_every_document_covered():
    names = {p.name for p in CORPUS.glob("*.md")}
    counts = dict.fromkeys(names, 0)
    for item in load(EVAL)["answerable"]:
        for source in item["sources"]:
            counts[source] = counts.get(source, 0) + 1
    thin = {name: n for name, n in counts.items() if n < 4}
    assert not thin, f"documents with fewer than 4 evaluation questions: {thin}"


@pytest.mark.parametrize(("file_name", "item"), list(entries()))
def test_expectation_satisfiable(file_name, item):
    for source in item["sources"]:
        assert (CORPUS / source).is_file(), f"{file_name} {item['id']}: {source}"
    assert any(
        satisfied(item["expect"], unit)
        for source in item["sources"]
        for unit in units(source)
    ), f"{file_name} {item['id']}: no single row or paragraph holds {item['expect']}"
