"""Document readers and passages, on real files of every format made here."""

from __future__ import annotations

from pathlib import Path

import docx
import pytest
from fpdf import FPDF

from agent.retrieval.chunking import render_row, split_document
from agent.retrieval.documents import DocumentError, load_document


def make_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A PDF with a real text layer, one list of paragraphs per page."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for paragraphs in pages:
        pdf.add_page()
        for para in paragraphs:
            pdf.multi_cell(0, 6, para)
            pdf.ln(6)
    pdf.output(str(path))
    return path


def make_docx(path: Path) -> Path:
    """A DOCX with a title, headings, prose and a tolerance table."""
    document = docx.Document()
    document.add_heading("Department linac QA procedure", level=0)
    document.add_heading("Monthly mechanical checks", level=1)
    document.add_paragraph("Physicists run these checks in the first week of "
                           "each month on every linac.")
    table = document.add_table(rows=3, cols=3)
    for cells, values in zip(table.rows, [("Test", "Frequency", "Tolerance"),
                                          ("Jaw position indicator", "monthly",
                                           "2 mm"),
                                          ("Laser alignment", "daily", "1.5 mm")],
                             strict=True):
        for cell, value in zip(cells.cells, values, strict=True):
            cell.text = value
    document.add_heading("Sign-off", level=1)
    document.add_paragraph("The senior physicist signs the monthly record.")
    document.save(str(path))
    return path


def test_markdown_table_rows_keep_their_headers(tmp_path):
    path = tmp_path / "proc.md"
    path.write_text(
        "# Site procedures\n\n## Monthly checks\n\n### Mechanical\n\n"
        "| Test | Frequency | Tolerance |\n|---|---|---|\n"
        "| Jaw position indicator | monthly | 2 mm |\n"
        "| **Crosshair** walkout | monthly | 1 mm |\n\n"
        "Record the results in the *monthly* log.\n")
    passages = split_document(load_document(path))
    rows = [p for p in passages if p.kind == "table_row"]
    assert [r.text for r in rows] == [
        "Test: Jaw position indicator; Frequency: monthly; Tolerance: 2 mm",
        "Test: Crosshair walkout; Frequency: monthly; Tolerance: 1 mm"]
    assert {r.section for r in rows} == {"Monthly checks > Mechanical"}
    assert {r.frequency for r in rows} == {"monthly"}
    prose = [p for p in passages if p.kind == "text"]
    assert prose[0].text == "Record the results in the monthly log."
    assert prose[0].page is None


def test_every_shipped_tolerance_row_is_one_passage_with_its_headers(
        corpus_searcher):
    kw = corpus_searcher.keywords()
    rows = [t for t, m in zip(kw.texts, kw.metas, strict=True)
            if m["kind"] == "table_row" and m["source"] == "tg142-monthly.md"]
    jaw = [t for t in rows if t.startswith("Test: Jaw position indicators, asym")]
    assert jaw == ["Test: Jaw position indicators, asymmetric; Frequency: monthly; "
                   "Non-IMRT: 1 mm; IMRT: 1 mm; SRS/SBRT: 1 mm; Notes: Asymmetric "
                   "(independent) jaw settings."]


def test_plain_text_numbered_headings(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("DAILY CHECKS\n\n1.1 Output\n\nThe morning output check uses "
                    "the array.\nIt takes two minutes.\n\n2 Lasers\n\nLasers are "
                    "checked with the cube.\n")
    doc = load_document(path)
    assert doc.title == "DAILY CHECKS"
    passages = split_document(doc)
    # The title is not repeated in each section path; "2" closes "1.1".
    assert [(p.section, p.text) for p in passages] == [
        ("1.1 Output", "The morning output check uses the array. It takes two "
         "minutes."),
        ("2 Lasers", "Lasers are checked with the cube.")]
    assert {p.frequency for p in passages} == {"daily"}


def test_html_headings_lists_and_table(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Imaging QA</title><script>var x=1;</script></head>"
        "<body><nav>Home | Menu</nav><h1>Imaging QA</h1><h2>CBCT</h2>"
        "<p>CBCT checks use the <b>Catphan</b> phantom.</p>"
        "<ul><li>HU constancy</li><li>Geometric distortion</li></ul>"
        "<table><tr><th>Test</th><th>Frequency</th><th>Tolerance</th></tr>"
        "<tr><td>Geometric distortion</td><td>monthly</td><td>2 mm</td></tr>"
        "</table></body></html>")
    doc = load_document(path)
    assert doc.title == "Imaging QA"
    passages = split_document(doc)
    texts = [p.text for p in passages]
    assert "CBCT checks use the Catphan phantom.\n- HU constancy\n- Geometric " \
           "distortion" in texts
    assert "Test: Geometric distortion; Frequency: monthly; Tolerance: 2 mm" in texts
    assert not any("var x" in t or "Menu" in t for t in texts)
    assert {p.section for p in passages} == {"CBCT"}


def test_pdf_two_pages_keep_page_numbers(tmp_path):
    path = make_pdf(tmp_path / "two.pdf", [
        ["1 Daily output", "The daily output constancy tolerance is 3 percent."],
        ["2 Lasers", "Laser localization is checked each morning within 2 mm."]])
    doc = load_document(path)
    assert doc.pages == 2
    passages = split_document(doc)
    by_page = {p.page: p for p in passages}
    assert set(by_page) == {1, 2}
    assert "3 percent" in by_page[1].text and by_page[1].section == "1 Daily output"
    assert "2 mm" in by_page[2].text and by_page[2].section == "2 Lasers"


def test_docx_with_table(tmp_path):
    doc = load_document(make_docx(tmp_path / "proc.docx"))
    assert doc.title == "Department linac QA procedure"
    passages = split_document(doc)
    rows = [p for p in passages if p.kind == "table_row"]
    assert [(r.text, r.section, r.frequency) for r in rows] == [
        ("Test: Jaw position indicator; Frequency: monthly; Tolerance: 2 mm",
         "Monthly mechanical checks", "monthly"),
        ("Test: Laser alignment; Frequency: daily; Tolerance: 1.5 mm",
         "Monthly mechanical checks", "daily")]
    assert any(p.text == "The senior physicist signs the monthly record."
               and p.section == "Sign-off" for p in passages)


def test_long_prose_is_cut_at_paragraphs_within_the_word_limit(tmp_path):
    paragraphs = [" ".join(f"word{i}x{j}" for j in range(60)) for i in range(5)]
    path = tmp_path / "long.md"
    path.write_text("# Long\n\n" + "\n\n".join(paragraphs) + "\n")
    passages = split_document(load_document(path), max_words=150)
    assert [len(p.text.split()) for p in passages] == [120, 120, 60]
    assert " ".join(p.text.replace("\n", " ") for p in passages) == " ".join(
        paragraphs)


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
    ("broken.docx", b"PK\x03\x04 not a zip", "not a readable DOCX"),
    ("table.xlsx", b"whatever", "file type '.xlsx' is not supported"),
    ("latin.txt", bytes([0x81, 0x8d, 0x8f, 0x90, 0x9d]), "not text in UTF-8"),
])
def test_unreadable_files_name_file_and_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DocumentError) as err:
        load_document(path)
    assert str(path) in str(err.value) and reason in str(err.value)


def test_pdf_without_text_layer_says_ocr(tmp_path):
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 50, 50)  # a drawing, no text: what a scan looks like
    path = tmp_path / "scan.pdf"
    pdf.output(str(path))
    with pytest.raises(DocumentError, match=r"no text layer.*OCR"):
        load_document(path)


def test_render_row_names_unlabelled_columns():
    assert render_row(["Test", ""], ["Output", "3%"]) == "Test: Output; Column 2: 3%"
