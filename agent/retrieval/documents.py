"""Reading documents into an ordered list of blocks (headings, text, tables).

Every format (Markdown, plain text, HTML, PDF text layer, DOCX) becomes the
same :class:`ParsedDocument`, so that one splitter (``chunking.py``) cuts them
all along headings and tables. PDF blocks carry their page number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import UserError

#: File types the knowledge base reads, by suffix.
SUPPORTED_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".html", ".htm",
                      ".pdf", ".docx"}


class DocumentError(UserError):
    """A document cannot be read; the message names the file and the reason."""


@dataclass
class Block:
    """One unit of a document in reading order.

    ``kind`` is ``heading`` (with ``level`` 1-6), ``text`` or ``table`` (with
    ``header`` and ``rows``). ``page`` is the 1-based page for PDFs, else None.
    """

    kind: str
    text: str = ""
    level: int = 0
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    page: int | None = None


@dataclass
class ParsedDocument:
    """A document as blocks, with its title and page count (1 when unpaged)."""

    path: Path
    title: str
    blocks: list[Block]
    pages: int = 1


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _markdown_inline(text: str) -> str:
    """Markdown inline markup reduced to its words (emphasis, code, links)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(\*\*|__|\*|`)", "", text)
    return _clean(text)


def read_markdown(path: Path, text: str) -> ParsedDocument:
    """Markdown through markdown-it (CommonMark with GFM tables)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    blocks: list[Block] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            blocks.append(Block("heading", _markdown_inline(tokens[i + 1].content),
                                level=int(tok.tag[1])))
            i += 3
            continue
        if tok.type == "table_open":
            header: list[str] = []
            rows: list[list[str]] = []
            row: list[str] = []
            in_head = False
            while tokens[i].type != "table_close":
                t = tokens[i]
                if t.type == "thead_open":
                    in_head = True
                elif t.type == "thead_close":
                    in_head = False
                elif t.type == "tr_open":
                    row = []
                elif t.type == "inline":
                    row.append(_markdown_inline(t.content))
                elif t.type == "tr_close":
                    if in_head:
                        header = row
                    else:
                        rows.append(row)
                i += 1
            blocks.append(Block("table", header=header, rows=rows))
            i += 1
            continue
        if tok.type in ("fence", "code_block"):
            blocks.append(Block("text", tok.content.strip()))
        elif tok.type == "inline" and tok.map is not None:
            # Paragraphs and list items (a list item's paragraph is inline too).
            content = _markdown_inline(tok.content)
            if content:
                bullet = tokens[i - 2].type == "list_item_open" if i >= 2 else False
                blocks.append(Block("text", ("- " if bullet else "") + content))
        i += 1
    return ParsedDocument(path, _title(blocks, path), blocks)


_NUMBERED_HEADING = re.compile(r"^(\d+(?:\.\d+){0,3})\.?\s+[A-Z][^.!?:;]{1,80}$")


def _is_plain_heading(line: str) -> int:
    """Heading level of a plain-text line (0 when it is not a heading).

    Numbered headings ("2.1 Monthly checks") take their depth from the number;
    short UPPER-CASE lines are level 1.
    """
    line = line.strip()
    match = _NUMBERED_HEADING.match(line)
    if match:
        return match.group(1).count(".") + 1
    letters = re.sub(r"[^A-Za-z]", "", line)
    if len(letters) >= 3 and line.isupper() and len(line) <= 80:
        return 1
    return 0


def _paragraph_blocks(text: str, page: int | None = None) -> list[Block]:
    """Plain text cut at blank lines; heading-like lines become headings."""
    blocks: list[Block] = []
    for para in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in para.splitlines() if ln.strip()]
        if not lines:
            continue
        level = _is_plain_heading(lines[0])
        if level:
            blocks.append(Block("heading", lines[0], level=level, page=page))
            lines = lines[1:]
        if lines:
            # Re-join hyphenated line breaks from PDF text layers.
            joined = re.sub(r"(\w)-\s+(\w)", r"\1-\2", " ".join(lines))
            blocks.append(Block("text", _clean(joined), page=page))
    return blocks


def read_plain_text(path: Path, text: str) -> ParsedDocument:
    """Plain text: paragraphs at blank lines, numbered or capitalised headings."""
    blocks = _paragraph_blocks(text)
    return ParsedDocument(path, _title(blocks, path), blocks)


def read_html(path: Path, text: str) -> ParsedDocument:
    """HTML through BeautifulSoup: headings, paragraphs, list items, tables."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for junk in soup(["script", "style", "nav", "header", "footer", "noscript"]):
        junk.decompose()
    blocks: list[Block] = []
    body = soup.body or soup
    for element in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li",
                                  "pre", "blockquote", "table", "dt", "dd"]):
        # Text inside a table or nested list is handled by its container.
        if element.name != "table" and element.find_parent("table"):
            continue
        if element.name in ("p", "li") and element.find_parent(["li", "blockquote"]):
            continue
        if element.name.startswith("h") and len(element.name) == 2:
            blocks.append(Block("heading", _clean(element.get_text(" ")),
                                level=int(element.name[1])))
        elif element.name == "table":
            rows = [[_clean(cell.get_text(" ")) for cell in tr.find_all(["th", "td"])]
                    for tr in element.find_all("tr")]
            rows = [r for r in rows if any(r)]
            if not rows:
                continue
            first = element.find("tr")
            has_header = first is not None and first.find("th") is not None
            header, body_rows = (rows[0], rows[1:]) if has_header else ([], rows)
            blocks.append(Block("table", header=header, rows=body_rows))
        else:
            content = _clean(element.get_text(" "))
            if content:
                prefix = "- " if element.name == "li" else ""
                blocks.append(Block("text", prefix + content))
    title_tag = soup.find("title")
    title = _clean(title_tag.get_text()) if title_tag else ""
    return ParsedDocument(path, title or _title(blocks, path), blocks)


def read_pdf(path: Path) -> ParsedDocument:
    """The PDF's text layer, page by page; a scanned PDF without text is an error."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise DocumentError(f"{path}: the PDF is encrypted; save an "
                                f"unprotected copy and ingest that")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise DocumentError(f"{path}: not a readable PDF ({exc})") from None
    blocks: list[Block] = []
    for number, page_text in enumerate(pages, start=1):
        blocks.extend(_paragraph_blocks(page_text, page=number))
    if not any(b.text for b in blocks):
        raise DocumentError(f"{path}: the PDF has no text layer (a scan?); run "
                            f"OCR on it first, then ingest the result")
    meta_title = ""
    try:
        meta_title = _clean(str(reader.metadata.title or "")) if reader.metadata else ""
    except (PdfReadError, ValueError, KeyError):
        meta_title = ""
    return ParsedDocument(path, meta_title or _title(blocks, path), blocks,
                          pages=len(pages))


def read_docx(path: Path) -> ParsedDocument:
    """DOCX through python-docx: paragraphs (Heading styles) and tables in order."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise DocumentError(f"{path}: not a readable DOCX file ({exc})") from None
    blocks: list[Block] = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            rows = [[_clean(cell.text) for cell in row.cells] for row in item.rows]
            rows = [_dedupe_merged(r) for r in rows if any(r)]
            if rows:
                blocks.append(Block("table", header=rows[0], rows=rows[1:]))
            continue
        text = _clean(item.text)
        if not text:
            continue
        style = (item.style.name if item.style is not None else "") or ""
        match = re.match(r"Heading (\d)", style)
        if style == "Title":
            blocks.append(Block("heading", text, level=1))
        elif match:
            blocks.append(Block("heading", text, level=int(match.group(1))))
        else:
            bullet = "List" in style
            blocks.append(Block("text", ("- " if bullet else "") + text))
    title = _clean(document.core_properties.title or "")
    return ParsedDocument(path, title or _title(blocks, path), blocks)


def _dedupe_merged(row: list[str]) -> list[str]:
    """python-docx repeats a horizontally merged cell; keep one copy."""
    out: list[str] = []
    for cell in row:
        if not out or cell != out[-1] or not cell:
            out.append(cell)
        else:
            out.append("")
    return out


def _title(blocks: list[Block], path: Path) -> str:
    """The first heading, unless numbered ("1 Scope" is a section, not a title)."""
    for block in blocks:
        if block.kind == "heading" and not block.text[:1].isdigit():
            return block.text
    return path.stem.replace("_", " ").replace("-", " ")


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DocumentError(f"{path}: not text in UTF-8 or Windows-1252; save it as "
                        f"UTF-8 and ingest again")


def load_document(path: Path) -> ParsedDocument:
    """Read one file into blocks, by its suffix.

    Raises
    ------
    DocumentError
        When the type is not supported or the file cannot be read; the message
        names the file, the reason and what to do.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"{path}: file type '{suffix or 'none'}' is not "
                            f"supported; use {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    try:
        if suffix == ".pdf":
            return read_pdf(path)
        if suffix == ".docx":
            return read_docx(path)
        text = _read_text(path)
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if suffix in (".md", ".markdown"):
        return read_markdown(path, text)
    if suffix in (".html", ".htm"):
        return read_html(path, text)
    return read_plain_text(path, text)
