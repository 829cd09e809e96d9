"""PDF QA reports, read back as a reviewer would: page images and page text.

One report of the demo fleet's TrueBeam2 for 2025 is written through the
command line; its pages are turned into text (pypdf) and images (pypdfium2)
and compared with the analysis engine run here, independently of the report.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pypdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from agent.config import PROJECT_ROOT, load_settings
from agent.engine import QAEngine, write_report
from agent.qa.analysis import DRIFT_H, SeriesAnalysis
from agent.qa.importers import read_measurements
from agent.qa.options import AnalysisOptions
from agent.qa.report import software_version, source_description
from agent.qa.result import worst_first
from agent.qa.selection import SelectionError
from agent.qa.store import MeasurementStore, SeriesData, series_from_frame

MACHINE = "TrueBeam2"
START, END = "2025-01-01", "2025-12-31"
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts" / "report"
MM = 72 / 25.4  # PDF points per millimetre
HEADING = re.compile(r"^\s*(\d+)\. (\S+ .+?): (OK|WATCH|ACTION)\s*$", re.M)


def run(args: list[str], data_dir: Path) -> subprocess.CompletedProcess:
    """``qa-agent ARGS`` in a fresh process with its own data directory."""
    env = {**os.environ, "QA_AGENT_DATA_DIR": str(data_dir)}
    env.pop("QA_AGENT_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "agent.cli", *args],
                          capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT, timeout=300)


@pytest.fixture(scope="module")
def cli_report(demo_fleet, tmp_path_factory):
    """The report written by ``qa-agent report --json`` (forgiving machine name)."""
    data_dir = tmp_path_factory.mktemp("report")
    out = run(["report", "--machine", "truebeam 2", "--start", START, "--end", END,
               "--data", str(demo_fleet["data"]), "--json"], data_dir)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return {"doc": json.loads(out.stdout), "data_dir": data_dir,
            "stderr": out.stderr}


@pytest.fixture(scope="module")
def expected(demo_fleet, cli_report):
    """The machine's series analysed here, straight from the file (worst first)."""
    settings = load_settings({"QA_AGENT_DATA_DIR": str(cli_report["data_dir"])})
    tables = QAEngine(settings).tables
    read = read_measurements(demo_fleet["data"])
    lo = np.datetime64(START, "s")
    hi = np.datetime64(END, "s") + np.timedelta64(1, "D")
    series = []
    for s in series_from_frame(read.frame, read.events):
        if s.machine != MACHINE:
            continue
        keep = (s.dates >= lo) & (s.dates < hi)
        series.append(SeriesData(s.machine, s.test, s.energy, s.unit,
                                 s.dates[keep], s.values[keep], s.resets))
    options = AnalysisOptions.from_settings(settings)
    return worst_first([SeriesAnalysis(s, tables).analyze(options)
                        .results_data() for s in series])


@pytest.fixture(scope="module")
def pdf_path(cli_report) -> Path:
    return Path(cli_report["doc"]["path"])


@pytest.fixture(scope="module")
def pages(pdf_path) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(pdf_path).pages]


@pytest.fixture(scope="module")
def sections(pages) -> dict[str, str]:
    """Text of each series section, by its label, from heading to heading."""
    text = "\n".join(pages)
    found = list(HEADING.finditer(text))
    stops = [m.start() for m in found[1:]] + [text.index("\nSources\n")]
    return {m.group(2): text[m.start():stop]
            for m, stop in zip(found, stops, strict=True)}


def test_cli_writes_the_default_path_and_reports_the_series(cli_report, expected,
                                                            pdf_path):
    doc = cli_report["doc"]
    assert set(doc) == {"path", "pages", "series"}
    assert pdf_path == (cli_report["data_dir"] / "reports"
                        / f"{MACHINE}_{START}_{END}.pdf")
    assert pdf_path.read_bytes()[:5] == b"%PDF-"
    # Same series, order and verdicts as the engine gives (the analyze contract).
    assert doc["series"] == json.loads(json.dumps(
        [r.to_contract() for r in expected]))
    assert len(expected) == 32
    with pdfium.PdfDocument(pdf_path) as rendered:
        assert doc["pages"] == len(rendered) == len(pypdf.PdfReader(pdf_path).pages)
    assert f"{doc['pages']} pages, 32 series of {MACHINE}" in cli_report["stderr"]


def test_title_page_names_machine_class_period_version_and_source(pages, expected,
                                                                  demo_fleet):
    first = pages[0]
    covered = (f"{min(r.first_date for r in expected)[:10]} to "
               f"{max(r.last_date for r in expected)[:10]}")
    assert covered == f"{START} to {END}"
    assert "Linac QA report" in first
    assert f"Machine {MACHINE}" in first
    assert "Machine class SRS/SBRT (machine registry)" in first
    assert f"Period covered {covered}" in first
    assert f"Software linac-qa-agent {software_version()}" in first
    assert str(demo_fleet["data"].resolve()) in first
    statuses = [r.status for r in expected]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in ("action", "watch", "ok")
                       if statuses.count(s))
    drifting = sum(r.drift.detected for r in expected)
    assert f"Series 32: {counts}; drift detected in {drifting}" in first
    assert drifting >= 1 and "watch" in statuses


def test_summary_table_lists_every_series_worst_first(pages, expected):
    lines = "\n".join(pages[:2]).splitlines()
    rows = [i for r in expected for i, line in enumerate(lines)
            if line.startswith(f"{r.test} {r.energy or '–'} {r.n} ")
            and r.status.upper() in line
            and ("yes" in line) == r.drift.detected]
    assert len(rows) == len(expected)
    assert rows == sorted(rows)  # worst first, as sort_worst_first orders them


def test_each_series_has_its_verdict_numbers_tolerance_and_signals(
        sections, expected, tables):
    assert list(sections) == [r.label for r in expected]
    machine_class, assumed = tables.machine_class(MACHINE)
    assert (machine_class, assumed) == ("SRS/SBRT", False)
    text = "\n".join(sections.values())
    assert text.count(f"{MACHINE} ") >= len(expected)
    for n, r in enumerate(expected, start=1):
        section = sections[r.label]
        assert section.lstrip().startswith(f"{n}. {r.label}: {r.status.upper()}")
        assert f"Verdict: {r.status.upper()} ({r.status_reason})" in section
        assert f"{r.n}, {r.first_date} to {r.last_date}" in section
        assert f"{r.spc.center:.4g} {r.unit}" in section
        assert f"{r.spc.lcl:.4g} to {r.spc.ucl:.4g} {r.unit}" in section
        if r.capability and r.capability.cpk is not None:
            assert f"Cpk {r.capability.cpk:.3g}" in section
        # The tolerance row that applied, with the value of the machine's class.
        row = next(x for x in tables.rows if x.id == r.tolerance.id)
        assert row.id in section
        assert f"±{row.limit(machine_class):g} {row.unit}" in section
        assert row.document.split()[-1] in section  # "TG-142", "(SRS-SBRT)"
        assert f"Signals ({len(r.signals)})" in section
        for sig in r.signals[-3:]:
            assert sig.date in section and sig.rule in section
    # Class-dependent values: MPPG 9.a's SRS/SBRT laser tolerance is 1 mm
    # (TG-142's IMRT column would give 1.5 mm).
    assert "±1 mm" in sections[f"{MACHINE} laser"]
    assert "±1.5 mm" not in sections[f"{MACHINE} laser"]
    assert "±3 %" in sections[f"{MACHINE} output 10X"]
    assert "drift since 2025-09-15" in sections[f"{MACHINE} output 10X"]


def test_sources_methods_and_sign_off_on_the_last_page(pages):
    text = "\n".join(pages)
    sources = text[text.index("\nSources\n"):]
    assert "AAPM TG-142" in sources and "AAPM MPPG 9.a (SRS-SBRT)" in sources
    assert "doi:10.1118/1.3190392" in sources  # the citation of the YAML file
    assert "mppg9a-daily-output" in sources
    assert "self-starting" in sources and f"h = {DRIFT_H:g}" in sources
    assert "Run rules (nelson)" in sources
    last = pages[-1]
    for words in ("Review and sign-off", "Reviewed by", "Signature", "Date",
                  "not clinical advice"):
        assert words in last


def test_every_page_has_its_page_number_footer(pages):
    total = len(pages)
    assert total > len(HEADING.findall("\n".join(pages))) // 2
    for number, text in enumerate(pages, start=1):
        assert f"page {number} of {total}" in text


def test_chart_images_are_drawn_and_large(pdf_path, pages, expected):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    scale = 1.5
    charts = 0
    with pdfium.PdfDocument(pdf_path) as doc:
        for i in range(len(doc)):
            page = doc[i]
            images = list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]))
            if i < 3:
                page.render(scale=scale).to_pil().save(ARTIFACTS / f"page{i + 1}.png")
            if not images:
                continue
            assert len(images) == len(HEADING.findall(pages[i]))
            height = page.get_size()[1]
            pixels = np.asarray(page.render(scale=scale).to_pil().convert("RGB"),
                                dtype=int)
            for image in images:
                left, bottom, right, top = image.get_bounds()
                assert (right - left) / MM > 170 and (top - bottom) / MM > 60
                region = pixels[int((height - top) * scale):
                                int((height - bottom) * scale),
                                int(left * scale):int(right * scale)]
                red, green, blue = region[..., 0], region[..., 1], region[..., 2]
                nonwhite = (region.min(axis=2) < 235).mean()
                data = ((blue > red + 50) & (red < 150) & (blue > 120)).mean()
                limits = ((red > green + 80) & (red > blue + 80)).mean()
                assert nonwhite > 0.05, (i, nonwhite)
                assert data > 0.001, (i, data)  # the measurements (blue)
                assert limits > 0.0005, (i, limits)  # tolerance lines (red)
                charts += 1
    assert charts == len(expected)


def test_unknown_machine_exits_2_with_a_message(demo_fleet, tmp_path):
    out = run(["report", "--machine", "Elekta", "--data", str(demo_fleet["data"]),
               "--json"], tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "Elekta" in out.stderr and "TrueBeam1" in out.stderr
    assert json.loads(out.stdout)["path"] is None
    assert not (tmp_path / "reports").exists()


def _small_csv(path: Path) -> Path:
    days = np.arange(np.datetime64("2024-03-01"), np.datetime64("2024-04-15"))
    rng = np.random.default_rng(7)
    rows = ["date,machine,test,energy,value,unit"]
    rows += [f"{d},TB 1,output,6 MV,{v:.2f},%"
             for d, v in zip(days, rng.normal(0, 0.3, days.size), strict=True)]
    rows += [f"{d},TB 1,laser,,{v:.2f},mm"
             for d, v in zip(days, rng.normal(0, 0.3, days.size), strict=True)]
    rows.insert(6, "2024-03-05,TB 1,output,6X,n/a,%")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_write_report_from_a_file_unregistered_machine_and_bad_rows(tmp_path):
    settings = load_settings({"QA_AGENT_DATA_DIR": str(tmp_path / "data")})
    csv = _small_csv(tmp_path / "small.csv")
    path = write_report(settings, "tb 1", "2024-03-10", None,
                        out=tmp_path / "out" / "tb1.pdf", data=csv)
    assert path == tmp_path / "out" / "tb1.pdf"
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(path).pages)
    assert "Machine class IMRT (not in the machine registry: default class assumed)" \
        in text
    assert "Period covered 2024-03-10 to 2024-04-14" in text
    assert "Period requested 2024-03-10 to last measurement" in text
    assert "TB 1 output 6X:" in text and "TB 1 laser:" in text
    assert "Rows not used (1)" in text and f"{csv}, line 7, column 'value'" in text
    with pytest.raises(SelectionError, match="data cover 2024-03-01 to 2024-04-14"):
        write_report(settings, "TB 1", "2025-01-01", "2025-02-01", data=csv)
    with pytest.raises(SelectionError, match="is after"):
        write_report(settings, "TB 1", "2024-04-01", "2024-03-01", data=csv)


def test_write_report_from_the_store_default_path(tmp_path):
    settings = load_settings({"QA_AGENT_DATA_DIR": str(tmp_path)})
    MeasurementStore(settings.resolved_database_url).import_file(
        _small_csv(tmp_path / "small.csv"))
    path = write_report(settings, "TB 1", end="2024-03-31")
    assert path == tmp_path / "reports" / "TB-1_2024-03-01_2024-03-31.pdf"
    first = pypdf.PdfReader(path).pages[0].extract_text()
    assert f"measurement store sqlite:///{tmp_path}/qa.sqlite" in first
    assert "Period covered 2024-03-01 to 2024-03-31" in first
    secret = settings.model_copy(update={
        "database_url": "postgresql+psycopg://qa:s3cret@127.0.0.1:5432/qa"})
    shown = source_description(secret, None)
    assert "s3cret" not in shown and "qa:***@127.0.0.1:5432/qa" in shown
