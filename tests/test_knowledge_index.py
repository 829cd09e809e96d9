"""The knowledge index: incremental ingestion, search, abstention, offline use
and Chroma server mode, all with the real embedding model and real Chroma."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, _free_port, knowledge_settings
from test_documents import make_docx, make_pdf

from agent.retrieval.index import KnowledgeIndex, KnowledgeIndexError
from agent.retrieval.search import HybridSearcher


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _procedure(name: str, tolerance: str) -> str:
    return (f"# {name} procedure\n\n## Daily checks\n\n"
            "| Test | Frequency | Tolerance |\n|---|---|---|\n"
            f"| Beam-on indicator lamp | daily | {tolerance} |\n\n"
            "The therapist records the result before the first patient.\n")


@pytest.fixture
def docs_index(tmp_path, embedder):
    settings = knowledge_settings(tmp_path / "data")
    return KnowledgeIndex(settings, embedder=embedder), tmp_path / "docs"


def test_incremental_reingestion(docs_index):
    index, docs = docs_index
    a = _write(docs / "a.md", _procedure("Alpha", "functional"))
    b = _write(docs / "b.md", _procedure("Bravo", "functional"))
    c = _write(docs / "sub" / "c.txt", "CATHODE\n\nThe cathode is inspected.\n")
    first = index.sync([docs], progress=False)
    assert sorted(first.added) == sorted(str(p.resolve()) for p in (a, b, c))
    assert first.chunks_added == 2 + 2 + 1 and index.count() == 5

    again = index.sync([docs], progress=False)
    assert (again.added, again.updated, again.removed) == ([], [], [])
    assert len(again.unchanged) == 3 and again.chunks_added == 0

    b.write_text(_procedure("Bravo", "working") + "\nA second paragraph.\n\n"
                 "## Weekly checks\n\nThe weekly test is documented here.\n")
    c.unlink()
    third = index.sync([docs], progress=False)
    assert third.updated == [str(b.resolve())]
    assert third.removed == [str(c.resolve())]
    assert len(third.unchanged) == 1
    # Row, the two paragraphs of "Daily checks" as one passage, "Weekly checks".
    assert third.chunks_added == 3 and third.chunks_removed == 2 + 1
    assert index.count() == 2 + 3
    files = index.files()
    assert sorted(Path(p).name for p in files) == ["a.md", "b.md"]
    assert files[str(b.resolve())].chunks == 3

    searcher = HybridSearcher(index)
    texts = [t for t, m in zip(searcher.keywords().texts, searcher.keywords().metas,
                               strict=True) if m["source"] == "b.md"]
    assert "Test: Beam-on indicator lamp; Frequency: daily; Tolerance: working" \
        in texts
    assert not any("functional" in t for t in texts)

    assert index.remove(a) == 2
    assert index.count() == 3 and list(index.files()) == [str(b.resolve())]


def test_unreadable_file_is_reported_and_the_rest_goes_on(docs_index):
    index, docs = docs_index
    good = _write(docs / "good.md", _procedure("Good", "functional"))
    (docs / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    (docs / "empty.md").write_text("\n\n")
    (docs / "ignored.xlsx").write_bytes(b"not a document type")  # not picked up
    report = index.sync([docs], progress=False)
    assert report.added == [str(good.resolve())]
    reasons = dict(report.errors)
    assert set(reasons) == {str((docs / "bad.pdf").resolve()),
                            str((docs / "empty.md").resolve())}
    assert "not a readable PDF" in reasons[str((docs / "bad.pdf").resolve())]
    assert reasons[str((docs / "empty.md").resolve())] == "no text found in the file"


class _KilledAfter:
    """The real embedder, with the process 'killed' at its n-th call."""

    def __init__(self, embedder, calls: int) -> None:
        self.embedder, self.calls = embedder, calls

    def embed(self, texts):
        self.calls -= 1
        if self.calls < 0:
            raise KeyboardInterrupt
        return self.embedder.embed(texts)


def test_interrupted_ingestion_leaves_the_old_version_usable(tmp_path, embedder):
    settings = knowledge_settings(tmp_path / "data")
    rows = "".join(f"| Check {i} | monthly | {i % 7} mm |\n" for i in range(300))
    doc = _write(tmp_path / "docs" / "big.md",
                 "# Big\n\n## Monthly\n\n| Test | Frequency | Tolerance |\n"
                 f"|---|---|---|\n{rows}")
    KnowledgeIndex(settings, embedder=embedder).sync([doc], progress=False)
    doc.write_text(doc.read_text().replace("| Check 5 | monthly | 5 mm |",
                                           "| Check 5 | monthly | 9 mm |"))
    # 300 passages embed in two batches; the run dies during the second.
    killed = KnowledgeIndex(settings, embedder=_KilledAfter(embedder, 1))
    with pytest.raises(KeyboardInterrupt):
        killed.sync([doc], progress=False)
    index = KnowledgeIndex(settings, embedder=embedder)
    assert index.count() == 300 + 256  # the new version's first batch is stored
    searcher = HybridSearcher(index)
    kw = searcher.keywords()
    assert len(kw.ids) == 300  # ... but only the old version is visible
    assert "Test: Check 5; Frequency: monthly; Tolerance: 5 mm" in kw.texts
    report = index.sync([doc], progress=False)
    assert report.updated == [str(doc.resolve())] and index.count() == 300
    searcher.invalidate()
    assert "Test: Check 5; Frequency: monthly; Tolerance: 9 mm" in \
        searcher.keywords().texts


def test_jaw_question_gets_the_monthly_row_with_its_source(corpus_searcher):
    results = corpus_searcher.search(
        "what is the monthly tolerance for the jaw position indicators?")
    top = results[0]
    assert top.source == "tg142-monthly.md"
    assert top.section == "Monthly mechanical checks"
    assert top.text.startswith("Test: Jaw position indicators, ")
    assert "Frequency: monthly" in top.text and top.page is None
    assert 0.5 < top.score <= 1.0


@pytest.mark.parametrize(("query", "source", "fragment"), [
    ("ODI daily tolerance", "tg142-daily.md", "Distance indicator (ODI)"),
    ("light field vs radiation field, monthly", "tg142-monthly.md",
     "Light/radiation field coincidence"),
    ("jaw positon indicater", "tg142-monthly.md", "Jaw position indicators"),
    ("SRS machine 6 MV laser check each morning", "tg142-daily.md",
     "Laser localization"),
    ("TG218 action limit formula", "tg218-imrt-qa.md", "action limit"),
])
def test_domain_notation_and_typos(corpus_searcher, query, source, fragment):
    results = corpus_searcher.search(query, k=5)
    assert any(r.source == source and fragment.lower() in r.text.lower()
               for r in results), [(r.source, r.text[:60]) for r in results]


@pytest.mark.parametrize("query", [
    "What is the kQ factor of a Farmer chamber under TG-51?",
    "How often must the HDR Ir-192 source strength be verified?",
    "What is the daily range tolerance for a proton pencil beam?",
    "What is the capital of Australia?",
])
def test_nothing_relevant_found(corpus_searcher, query):
    assert corpus_searcher.search(query) == []


def test_filters_by_document_and_frequency(corpus_searcher):
    results = corpus_searcher.search("laser tolerance", k=10, frequency="daily")
    assert results and {r.frequency for r in results} == {"daily"}
    results = corpus_searcher.search("laser tolerance", k=10,
                                     document="mppg9a-srs-sbrt.md")
    assert results and {r.source for r in results} == {"mppg9a-srs-sbrt.md"}


def test_pdf_and_docx_are_searchable_with_page_numbers(tmp_path, embedder):
    settings = knowledge_settings(tmp_path / "data")
    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "imaging.pdf", [
        ["1 Scope", "This procedure covers the kV imaging panel of each linac."],
        ["2 Flat panel gain calibration",
         "The flat panel gain calibration is repeated every six months by the "
         "imaging physicist and recorded in the imaging log."]])
    make_docx(docs / "monthly.docx")
    index = KnowledgeIndex(settings, embedder=embedder)
    assert index.sync([docs], progress=False).chunks_added > 3
    searcher = HybridSearcher(index)
    hits = searcher.search("how often is the flat panel gain calibration done",
                           threshold=0.0)
    assert (hits[0].source, hits[0].page) == ("imaging.pdf", 2)
    assert hits[0].section == "2 Flat panel gain calibration"
    hits = searcher.search("jaw position indicator tolerance", threshold=0.0)
    assert hits[0].source == "monthly.docx"
    assert hits[0].text == ("Test: Jaw position indicator; Frequency: monthly; "
                            "Tolerance: 2 mm")


GUARD = r"""
import socket, sys
LOG = sys.argv.pop(1)
LOOPBACK = ("127.0.0.1", "::1", "localhost", "0.0.0.0")
def _check(host):
    if isinstance(host, (bytes, str)) and str(host) and not (
            str(host) in LOOPBACK or str(host).startswith("127.")):
        with open(LOG, "a") as log:
            log.write(f"{host}\n")
        raise OSError(f"network access to {host} blocked by the test")
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address[0])
    return _connect(self, address)
def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address[0])
    return _connect_ex(self, address)
def getaddrinfo(host, *args, **kwargs):
    _check(host)
    return _getaddrinfo(host, *args, **kwargs)
socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.getaddrinfo = getaddrinfo
from agent.cli import main
sys.argv = ["qa-agent"] + sys.argv[1:]
main()
"""


def test_no_network_during_ingestion_and_search(tmp_path):
    """Any connection attempt to a non-loopback host fails the test."""
    log = tmp_path / "attempts.log"
    log.touch()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "QA_AGENT_DATA_DIR": str(tmp_path / "data")}
    docs = tmp_path / "docs"
    _write(docs / "local.md", _procedure("Local", "functional"))
    run = [sys.executable, "-c", GUARD, str(log)]
    corpus = str(ROOT / "knowledge" / "corpus")
    ingest = subprocess.run([*run, "ingest", corpus, str(docs), "--no-progress",
                             "--json"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert ingest.returncode == 0, ingest.stderr
    # The shipped corpus (every file of it) and the one local document.
    shipped = len(list((ROOT / "knowledge" / "corpus").glob("*.md")))
    assert len(json.loads(ingest.stdout)["added"]) == shipped + 1
    search = subprocess.run([*run, "search", "beam-on indicator lamp", "--json"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert search.returncode == 0, search.stderr
    assert json.loads(search.stdout)["results"][0]["source"] == "local.md"
    assert log.read_text() == ""


@pytest.fixture
def chroma_server(tmp_path):
    """A real Chroma server (chroma run from the installed chromadb) on loopback."""
    chroma = Path(sys.executable).parent / "chroma"
    port = _free_port()
    proc = subprocess.Popen([str(chroma), "run", "--host", "127.0.0.1", "--port",
                             str(port), "--path", str(tmp_path / "server")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    while True:
        try:
            chromadb.HttpClient(host="127.0.0.1", port=port, settings=ChromaSettings(
                anonymized_telemetry=False)).heartbeat()
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"chroma run did not start: {proc.stderr.read()[:500]}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def test_chroma_server_mode(tmp_path, embedder, chroma_server):
    settings = knowledge_settings(tmp_path / "client", chroma_url=chroma_server)
    docs = tmp_path / "docs"
    _write(docs / "server.md", _procedure("Server", "functional"))
    index = KnowledgeIndex(settings, embedder=embedder)
    report = index.sync([docs, ROOT / "knowledge" / "corpus"], progress=False)
    shipped = len(list((ROOT / "knowledge" / "corpus").glob("*.md")))
    assert len(report.added) == shipped + 1 and not report.errors
    assert not settings.chroma_dir.exists()  # nothing stored on the client
    # A second client sees the same index on the server.
    other = KnowledgeIndex(knowledge_settings(tmp_path / "client2",
                                              chroma_url=chroma_server),
                           embedder=embedder)
    assert other.count() == index.count() > 200
    results = HybridSearcher(other).search("monthly jaw position indicators")
    assert results[0].source == "tg142-monthly.md"


def test_chroma_server_down_is_a_clear_error(tmp_path):
    settings = knowledge_settings(tmp_path, chroma_url=f"http://127.0.0.1:"
                                                       f"{_free_port()}")
    with pytest.raises(KnowledgeIndexError, match=r"does not answer.*chroma run"):
        KnowledgeIndex(settings)


def test_search_cli_json_contract(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "QA_AGENT_DATA_DIR": str(tmp_path / "data")}
    shutil.copytree(ROOT / "knowledge" / "corpus", tmp_path / "data" / "documents")
    cli = [str(Path(sys.executable).parent / "qa-agent")]
    out = subprocess.run([*cli, "search", "daily laser tolerance SRS", "-k", "3",
                          "--json"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    document = json.loads(out.stdout)
    assert list(document) == ["results"] and 1 <= len(document["results"]) <= 3
    for result in document["results"]:
        assert list(result) == ["source", "section", "page", "text", "score"]
        assert 0.0 <= result["score"] <= 1.0
    none = subprocess.run([*cli, "search", "best sourdough recipe", "--json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert json.loads(none.stdout) == {"results": []}
    bad = subprocess.run([*cli, "search", "laser", "--frequency", "hourly"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 2 and "--frequency 'hourly'" in bad.stderr
    assert "Traceback" not in bad.stderr
