"""One result, one set of phrases: the CLI, the chat, the Data tab and the PDF.

Each face words an analysis through ``agent.qa.presentation``; here the same
series goes through all four real paths (the installed ``qa-agent`` command,
``Agent.ask`` routed by rule, the Data tab's ``series_chart`` and the PDF read
back with pypdf) and each must carry the same sentences. A 5-point series,
too short for control limits, is answered everywhere with its values and
tolerance check instead of failing.

The agent here has no language model (``Agent(None, ...)``): analysis
requests are routed by rule and answered by code, so no model is involved in
these paths (README, "The agent"); nothing is mocked.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pypdf
import pytest
from conftest import knowledge_settings

from agent.engine import QAEngine, write_report
from agent.graph import Agent
from agent.qa import presentation
from agent.qa.result import SeriesResult
from agent.tools import ToolContext
from agent.ui import data as data_tab
from agent.ui.common import AppContext

ROOT = Path(__file__).resolve().parents[1]
SHORT_CSV = """date,machine,test,energy,value,unit
2025-03-03,TrueBeam9,output,6X,0.1,%
2025-03-04,TrueBeam9,output,6X,0.3,%
2025-03-05,TrueBeam9,output,6X,3.5,%
2025-03-06,TrueBeam9,output,6X,-0.2,%
2025-03-07,TrueBeam9,output,6X,0.4,%
"""


def _flat(text: str) -> str:
    """Whitespace made single spaces (the PDF wraps its paragraphs)."""
    return re.sub(r"\s+", " ", text)


def _faces(settings, data: Path, machine: str, test: str, energy: str,
           question: str, tmp_path: Path) -> dict[str, str]:
    """The text each face gives for one series."""
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "qa-agent"), "analyze", "--data",
         str(data), "-m", machine, "-t", test, "-e", energy],
        capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "QA_AGENT_DATA_DIR": str(settings.data_dir),
             "HF_HUB_OFFLINE": "1"})
    assert cli.returncode == 0, cli.stderr
    engine = QAEngine(settings, data)
    agent = Agent(None, ToolContext(engine=engine), "", "",
                  unavailable="no model in this test")
    chat = agent.ask(question)
    assert chat["intent"] == "analysis", chat
    app = AppContext(settings, agent, ToolContext(engine=engine))
    figure, tab = data_tab.series_chart(app, machine, test, energy)
    assert figure is not None
    pdf = write_report(settings, machine, out=tmp_path / "report.pdf", data=data)
    pages = "\n".join(p.extract_text() for p in pypdf.PdfReader(pdf).pages)
    return {"cli": cli.stdout, "chat": chat["answer"], "data tab": tab,
            "pdf": pages}


@pytest.fixture()
def settings(tmp_path):
    return knowledge_settings(tmp_path / "data")


def test_one_result_reads_the_same_in_every_face(settings, demo_fleet, tmp_path):
    run = QAEngine(settings, demo_fleet["data"]).analyse("TrueBeam2", "output",
                                                         "10X")
    r = run.results[0]
    # The demo fleet's injected 10X step (tests/test_analysis.py): known truth.
    assert presentation.drift_phrase(r).startswith(
        "Drift detected, upward since 2025-09-15.")
    shared = [presentation.drift_phrase(r), presentation.limits_phrase(r),
              presentation.tolerance_phrase(r)]
    assert shared[1].startswith(f"Control limits {r.spc.lcl:g} to {r.spc.ucl:g} %")
    faces = _faces(settings, demo_fleet["data"], "TrueBeam2", "output", "10X",
                   "Is the 10 MV output on TrueBeam2 drifting?", tmp_path)
    for face, text in faces.items():
        for phrase in shared:
            assert phrase in _flat(text), f"{face} lacks {phrase!r}"


def test_a_five_point_series_is_answered_everywhere(settings, tmp_path):
    csv = tmp_path / "short.csv"
    csv.write_text(SHORT_CSV)
    r = QAEngine(settings, csv).analyse("TrueBeam9").results[0]
    assert (r.n, r.spc, r.baseline_available, r.baseline_needed) == (5, None, 5, 8)
    too_few = ("Too few points for control limits (5 of 8 needed); tolerance "
               "checked only.")
    assert presentation.limits_phrase(r) == too_few
    # The 3.5% reading on 5 March is beyond TG-142's daily 3% output tolerance.
    assert r.out_of_tolerance == ["2025-03-05"]
    tolerance = presentation.tolerance_phrase(r)
    assert tolerance.startswith("Tolerance 3 % (") and tolerance.endswith(
        "out of tolerance on 2025-03-05.")
    faces = _faces(settings, csv, "TrueBeam9", "output", "6X",
                   "Is the 6X output on TrueBeam9 drifting?", tmp_path)
    for face, text in faces.items():
        flat = _flat(text)
        assert "TrueBeam9" in flat, face
        assert too_few in flat or (face == "pdf" and "too few points (5 of 8 "
                                   "needed)" in flat), f"{face}: {text}"
        assert tolerance in flat, f"{face} lacks the tolerance check"


def test_a_tool_result_reads_back_as_the_same_result(settings, demo_fleet):
    engine = QAEngine(settings, demo_fleet["data"])
    run = engine.analyse("TrueBeam2", "output", "10X")
    entry = run.document(details=True)["series"][0]
    back = SeriesResult.from_contract(entry)
    assert back.model_dump(exclude={"chart"}) == run.results[0].model_dump(
        exclude={"chart"})
    assert presentation.series_answer(back) == presentation.series_answer(
        run.results[0])
