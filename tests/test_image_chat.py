"""Image QA through the agent and the chat: a WL zip uploaded, asked about,
analysed by pylinac, answered, charted and listed in the Data tab.

No LLM: the rules route an image request (``agent.image_requests``). The
Winston-Lutz set is made once for the module by pylinac's image generator
with the BB 0.5 mm left of the isocentre, on the small fast panel (0.39 mm
pixels at the isocentre), so the analysed distance is good to 0.1 mm.
"""

from __future__ import annotations

import shutil
import warnings
import zipfile
from pathlib import Path

import pytest

import agent.ui  # noqa: F401 - sets GRADIO_ANALYTICS_ENABLED before gradio
from agent.config import Settings
from agent.graph import Agent, Conversation
from agent.image_requests import image_kind_in, image_request
from agent.qa.imaging import synthetic
from agent.tools import ToolContext, chart_key
from agent.ui import chat, data
from agent.ui.common import AppContext
from agent.understanding import RequestContext, understand

warnings.filterwarnings("ignore", module="pylinac")
pytestmark = pytest.mark.filterwarnings("ignore")

OFFSET_MM = 0.5
POSITION_MM = 0.1
QUESTION = "analyse the Winston-Lutz images I uploaded for TrueBeam2"
MACHINES = ["TrueBeam1", "TrueBeam2", "VersaHD"]


@pytest.fixture(scope="module")
def wl_zip(tmp_path_factory) -> tuple[Path, dict]:
    """A zip of a generated WL set (BB 0.5 mm left), and its truth."""
    folder = tmp_path_factory.mktemp("wl-images")
    truth = synthetic.wl_set(folder / "set", left=OFFSET_MM, panel="small",
                             when="2025-03-04 07:30")
    archive = folder / "wl_truebeam2.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in truth["files"]:
            out.write(path, path.name)
    return archive, truth


@pytest.fixture(scope="module")
def asked(tmp_path_factory, wl_zip) -> dict:
    """The agent asked once about the uploaded zip (an empty store before)."""
    ctx = ToolContext(Settings(data_dir=tmp_path_factory.mktemp("image-chat")))
    agent = Agent(None, ctx, unavailable="the test runs without a model")
    conversation = Conversation(uploads=[wl_zip[0]])
    document = agent.ask(QUESTION, conversation)
    return {"ctx": ctx, "agent": agent, "document": document,
            "conversation": conversation}


# -- request understanding ------------------------------------------------------
@pytest.mark.parametrize(("question", "kind"), [
    (QUESTION, "wl"),
    ("WL for TrueBeam1 please", "wl"),
    ("check the isocentre images of TB1", "wl"),
    ("run the picket fence on these", "picketfence"),
    ("starshot for TB1", "starshot"),
    ("analyse this star shot for TrueBeam2", "starshot"),
    ("field analysis of the 6X EPID image for TrueBeam2", "field"),
    ("the flatness image I uploaded for VersaHD at 10X", "field"),
])
def test_image_requests_are_read_by_rule(question, kind):
    assert image_kind_in(question) == kind
    assert image_request(question) == kind
    request = understand(question, RequestContext(machines=MACHINES))
    assert request.intent == "analysis" and request.image_kind == kind


def test_an_image_request_carries_its_machine_beam_and_date():
    request = understand("field analysis of the 6X EPID image for TB1 dated "
                         "2025-03-04", RequestContext(machines=MACHINES))
    assert (request.machine, request.energy, request.start) == (
        "TrueBeam1", "6X", "2025-03-04")
    assert request.test is None  # the analysis names its own tests


@pytest.mark.parametrize("question", [
    "What annual Winston-Lutz tolerance applies to Clinac3?",
    "How often is the picket fence test done?",
    "Star shot for the MLC: how big can the radius be?",
    "Is the starshot on TB1 drifting?",
    "How is a Winston-Lutz test set up according to TG-198?",
    "What does MPPG 9.a say about the Winston-Lutz test for SRS?",
    "Is the 10 MV output on TrueBeam 2 drifting?",
    "If I import the same Winston-Lutz images twice, are they stored twice?",
])
def test_questions_about_a_test_are_not_image_requests(question):
    assert image_request(question) is None
    assert understand(question, RequestContext(machines=MACHINES)).image_kind is None


# -- the agent --------------------------------------------------------------------
def test_the_agent_analyses_the_uploaded_zip(asked, wl_zip):
    document = asked["document"]
    assert document["intent"] == "analysis"
    [step] = document["tool_calls"]
    assert step["name"] == "analyse_images" and step["args"]["kind"] == "wl"
    assert step["args"]["machine"] == "TrueBeam2"
    result = step["result"]
    truth = wl_zip[1]
    assert result["result"]["max_cax_bb_mm"] == pytest.approx(truth["max"],
                                                              abs=POSITION_MM)
    assert result["value"] == pytest.approx(OFFSET_MM, abs=POSITION_MM)
    assert result["result"]["median_cax_bb_mm"] == pytest.approx(
        truth["median"], abs=POSITION_MM)
    assert result["date"] == "2025-03-04T07:30:00"
    assert result["stored"]["added"] == len(result["result"]["metrics"]) >= 4
    figure = Path(result["figure"])
    assert figure.exists() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.parent == asked["ctx"].settings.data_dir / "images"
    key = chart_key("TrueBeam2", "wl_max_cax_bb", "")
    assert key in asked["ctx"].charts
    assert asked["ctx"].charts[key].n == 1
    answer = document["answer"]
    assert "Winston-Lutz" in answer and "Maximum 2D CAX->BB distance" in answer
    assert "(wl_max_cax_bb): " in answer and "within tolerance (±1 mm" in answer
    assert "Too few points for control limits" in answer  # one set so far


def test_the_same_images_again_add_nothing(asked, wl_zip, tmp_path):
    again = tmp_path / "renamed_upload.zip"
    shutil.copyfile(wl_zip[0], again)
    store = asked["ctx"].engine.store
    before = store.counts()
    document = asked["agent"].ask("run the WL on these for TrueBeam2",
                                  Conversation(uploads=[again]))
    [step] = document["tool_calls"]
    assert step["result"]["stored"]["already_imported"] is True
    assert store.counts() == before
    assert "Already stored" in document["answer"]


def test_without_uploads_the_agent_asks_for_the_images(asked):
    document = asked["agent"].ask("run the picket fence on these for TrueBeam2",
                                  Conversation())
    [step] = document["tool_calls"]
    assert step["name"] == "analyse_images" and step["args"]["files"] == []
    assert "upload the images first (DICOM files or a zip)" in document["answer"]


def test_images_that_are_not_dicom_are_refused_by_file(asked, tmp_path):
    bad = tmp_path / "notes.dcm"
    bad.write_text("not an image")
    document = asked["agent"].ask(QUESTION, Conversation(uploads=[bad]))
    assert "I could not run that" in document["answer"]
    assert "notes.dcm: not a DICOM file" in document["answer"]


# -- the chat and the Data tab ----------------------------------------------------
@pytest.fixture(scope="module")
def app(asked) -> AppContext:
    ctx = asked["ctx"]
    return AppContext(ctx.settings, asked["agent"], ToolContext(engine=ctx.engine))


def test_the_chat_shows_the_figure_and_the_control_chart(app, asked):
    import gradio as gr

    [step] = asked["document"]["tool_calls"]
    shown = chat.charts_of(app, step)
    assert isinstance(shown[0][1], Path) and shown[0][1].exists()
    # pylinac's PDF report of the set, offered for download
    pdf = shown[1][1]
    assert pdf.suffix == ".pdf" and pdf.read_bytes()[:5] == b"%PDF-"
    assert len(shown) == 3 and shown[2][0] == "TrueBeam2/wl_max_cax_bb"
    assert "wl_max_cax_bb" in chat.summarize_result(step["name"], step["result"])
    final = chat.finish([], asked["document"], shown)
    contents = [m["content"] for m in final.history]
    assert isinstance(contents[0], str) and "within tolerance" in contents[0]
    assert isinstance(contents[1], gr.Image) and isinstance(contents[2], gr.File)
    assert isinstance(contents[3], gr.Plot)


@pytest.mark.parametrize(("kind", "question", "make", "metric", "truth_key"), [
    ("picketfence", "run the picket fence on these for TrueBeam1",
     lambda path: synthetic.picket_fence(path, leaf_error_mm=0.8, picket=2),
     "picket_fence_max_error", "max_error"),
    ("starshot", "analyse this star shot for TrueBeam1",
     lambda path: synthetic.starshot(path, radius_mm=0.5),
     "starshot_wobble", "wobble_diameter"),
    ("field", "field analysis of the 6X EPID image for TrueBeam1",
     lambda path: synthetic.open_field(path, slope_x=0.04),
     "field_flatness_x", "flatness_x"),
])
def test_the_other_analyses_through_the_chat(tmp_path, kind, question, make,
                                             metric, truth_key):
    # Made without an acquisition date (``when`` None): the question gives it.
    truth = make(tmp_path / f"{kind}.dcm")
    ctx = ToolContext(Settings(data_dir=tmp_path / "data"))
    agent = Agent(None, ctx, unavailable="the test runs without a model")
    document = agent.ask(question + " dated 2025-03-04",
                         Conversation(uploads=[truth["file"]]))
    [step] = document["tool_calls"]
    assert step["name"] == "analyse_images" and step["args"]["kind"] == kind
    result = step["result"]
    assert "error" not in result, result
    allowed = {"picketfence": 0.1, "starshot": 0.15, "field": 0.05}[kind]
    assert result["metric"] == metric
    assert result["value"] == pytest.approx(truth[truth_key], abs=allowed)
    assert Path(result["figure"]).exists() and Path(result["pdf"]).exists()
    assert chart_key("TrueBeam1", metric, step["args"].get("energy") or "") \
        in ctx.charts
    assert f"({metric}): " in document["answer"]


def test_uploads_beside_the_question_box_go_into_the_conversation(app, wl_zip,
                                                                  tmp_path):
    conversation = Conversation()
    note = chat.take_uploads(app, [str(wl_zip[0])], conversation)
    assert conversation.uploads == [wl_zip[0]] and "1 file(s) ready" in note
    wrong = tmp_path / "plan.txt"
    wrong.write_text("x")
    assert "not accepted" in chat.take_uploads(app, [str(wrong)], conversation)
    assert conversation.uploads == []
    assert chat.take_uploads(app, None, conversation) == ""


def test_the_data_tab_lists_the_image_set_with_its_provenance(app, asked):
    [step] = asked["document"]["tool_calls"]
    rows = data.image_set_rows(app)
    assert len(rows) == 1  # the repeat added nothing
    machine, kind, when, images, measurements, digest, version = rows[0]
    assert (machine, kind, when, images) == ("TrueBeam2", "wl",
                                             "2025-03-04 07:30:00", 4)
    assert measurements == step["result"]["stored"]["added"]
    assert digest == step["result"]["result"]["images_sha256"][:12]
    assert version == step["result"]["result"]["pylinac_version"]
