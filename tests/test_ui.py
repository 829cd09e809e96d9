"""The app's functions without a browser: settings, import preview, chat
streaming, knowledge management, reports, and the protective defaults."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import knowledge_settings

import agent.ui  # noqa: F401 - sets GRADIO_ANALYTICS_ENABLED before gradio
from agent.config import ConfigError, check_ui_binding, load_settings, ui_credentials
from agent.graph import Agent, BackendUnavailable, Conversation
from agent.qa.store import MeasurementStore
from agent.tools import ToolContext
from agent.ui import chat, data, knowledge, reports
from agent.ui.common import AppContext, UploadError, refresh

BAD_CSV = """date,machine,test,energy,value,unit
2025-01-02,TrueBeam9,output,6X,0.4,%
2025-01-03,TrueBeam9,output,6X,abc,%
2025-01-04,TrueBeam9,output,6X,0.2,%
"""


# -- settings and binding ------------------------------------------------------
def test_ui_settings_come_from_the_environment(tmp_path):
    settings = load_settings({"QA_AGENT_DATA_DIR": str(tmp_path),
                              "QA_AGENT_UI_PORT": "7999",
                              "QA_AGENT_MAX_UPLOAD_MB": "5",
                              "QA_AGENT_LLM_CONCURRENCY": "2"})
    assert (settings.ui_host, settings.ui_port) == ("127.0.0.1", 7999)
    assert settings.max_upload_mb == 5 and settings.llm_concurrency == 2
    assert settings.ui_auth is None
    with pytest.raises(ConfigError):
        load_settings({"QA_AGENT_DATA_DIR": str(tmp_path),
                       "QA_AGENT_UI_PORT": "0"})


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "myhost"])
def test_binding_beyond_loopback_without_auth_is_refused(tmp_path, host):
    settings = load_settings({"QA_AGENT_DATA_DIR": str(tmp_path),
                              "QA_AGENT_UI_HOST": host})
    with pytest.raises(ConfigError, match="ui_auth"):
        check_ui_binding(settings)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]"])
def test_loopback_needs_no_auth(tmp_path, host):
    settings = load_settings({"QA_AGENT_DATA_DIR": str(tmp_path),
                              "QA_AGENT_UI_HOST": host})
    assert check_ui_binding(settings) == []


def test_auth_from_a_value_or_a_file(tmp_path):
    env = {"QA_AGENT_DATA_DIR": str(tmp_path), "QA_AGENT_UI_HOST": "0.0.0.0"}
    settings = load_settings({**env, "QA_AGENT_UI_AUTH": "physicist:s3cret:x"})
    assert check_ui_binding(settings) == [("physicist", "s3cret:x")]
    users = tmp_path / "users.txt"
    users.write_text("# who may sign in\nalice:one\n\nbob:two\n")
    settings = load_settings({**env, "QA_AGENT_UI_AUTH": str(users)})
    assert check_ui_binding(settings) == [("alice", "one"), ("bob", "two")]
    users.write_text("alice\n")
    with pytest.raises(ConfigError, match="line 1"):
        ui_credentials(load_settings({**env, "QA_AGENT_UI_AUTH": str(users)}))
    with pytest.raises(ConfigError):
        ui_credentials(load_settings({**env, "QA_AGENT_UI_AUTH": "nocolon"}))


def test_launch_refuses_an_open_bind_before_building_anything(tmp_path):
    from agent.ui import launch

    settings = load_settings({"QA_AGENT_DATA_DIR": str(tmp_path),
                              "QA_AGENT_UI_HOST": "0.0.0.0"})
    with pytest.raises(ConfigError):
        launch(settings, app=None)  # would start the LLM if it got that far


def test_analytics_are_off_before_gradio_is_imported():
    import os

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


# -- an app over the demo fleet, without a language model ----------------------
@pytest.fixture(scope="module")
def app(tmp_path_factory, demo_fleet) -> AppContext:
    settings = knowledge_settings(tmp_path_factory.mktemp("ui"))
    MeasurementStore(settings.resolved_database_url).import_file(demo_fleet["data"])
    ctx = ToolContext(settings=settings)
    agent = Agent(None, ctx, "embedded", "test-model",
                  unavailable="the test runs without a model")
    return AppContext(settings, agent, ToolContext(engine=ctx.engine), "embedded",
                      "test-model", "the test runs without a model")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_import_preview_reports_the_bad_row_and_stores_nothing_until_confirmed(
        app, tmp_path):
    store = app.store()
    before = store.counts()["measurement"]
    preview = data.preview_import(app, _write(tmp_path, "bad.csv", BAD_CSV))
    assert preview.error_rows() == [
        ["bad.csv", 3, "value", preview.result.errors[0].reason]]
    assert "not a number" in preview.result.errors[0].reason
    summary = preview.summary()
    assert "2 measurements accepted" in summary and "1 row rejected" in summary
    assert store.counts()["measurement"] == before  # nothing stored yet
    assert "TrueBeam9" not in {r[0] for r in data.on_hand_rows(app)}
    report = data.commit_import(app, preview)
    assert report.added == 2
    assert store.counts()["measurement"] == before + 2
    # The caches were dropped: the new machine is on hand at once.
    rows = {r[0]: r for r in data.on_hand_rows(app)}
    assert rows["TrueBeam9"] == ["TrueBeam9", 1, 2, "2025-01-02", "2025-01-04",
                                 "6X", "output"]


def test_uploads_of_the_wrong_type_or_size_are_refused(app, tmp_path):
    with pytest.raises(UploadError, match="not accepted"):
        data.preview_import(app, _write(tmp_path, "run.sh", "echo hi"))
    big = app.settings.model_copy(update={"max_upload_mb": 0.0001})
    small_app = AppContext(big, app.agent, app.data_ctx)
    with pytest.raises(UploadError, match="limit"):
        data.preview_import(small_app, _write(tmp_path, "big.csv", BAD_CSV * 20))
    with pytest.raises(ValueError):  # InputError: no usable column
        data.preview_import(app, _write(tmp_path, "junk.csv", "a,b\n1,2\n"))


def test_fleet_table_is_worst_first_and_a_row_opens_its_chart(app):
    rows = data.fleet_rows(app)
    order = {"action": 0, "watch": 1, "ok": 2}
    ranks = [order[r[3]] for r in rows]
    assert ranks == sorted(ranks) and len(rows) > 80
    machine, test, energy = rows[0][:3]
    figure, text = data.series_chart(app, machine, test, energy)
    assert figure is not None and len(figure.data) > 0
    assert "status" in text and machine in text


def _collect(app: AppContext, question: str, conversation=None) -> list:
    return list(chat.stream_answer(app, question, [], conversation or
                                   Conversation()))


def test_drift_request_streams_a_tool_step_then_the_verdict_and_a_plot(app):
    import gradio as gr

    turns = _collect(app, "Is the 10 MV output on truebeam 2 drifting?")
    assert turns[0].history == [{"role": "user", "content":
                                 "Is the 10 MV output on truebeam 2 drifting?"}]
    steps = [m for m in turns[-2].history if m.get("metadata")]
    assert steps and steps[0]["metadata"]["title"] == "Tool: analyze_series"
    assert steps[0]["metadata"]["status"] == "done"
    assert steps[0]["metadata"]["duration"] >= 0
    assert "TrueBeam2" in steps[0]["content"]
    final = turns[-1]
    assert final.done
    texts = [m["content"] for m in final.history if isinstance(m["content"], str)]
    assert any("Drift detected, upward" in t for t in texts)
    plots = [m["content"] for m in final.history if isinstance(m["content"], gr.Plot)]
    assert len(plots) == 1 and plots[0].label.endswith("TrueBeam2/output/10X")


def test_backend_down_says_so_and_extracts_and_analyses_still_work(app):
    """No model routes (issue 14): with the backend down a protocol question
    still gets its cited extract; only the optional model sentence is gone."""
    conversation = Conversation()
    turns = _collect(app, "How do I set up an I-MR control chart?", conversation)
    last = str(turns[-1].history[-1]["content"])
    assert "The documents state:" in last and "spc-primer.md" in last
    assert "Traceback" not in last
    assert "backend unavailable" in chat.header_markdown(app)
    turns = _collect(app, "Which machines need attention?", conversation)
    assert any("series analysed" in str(m["content"]) for m in turns[-1].history)


class _StreamingAgent:
    """Stands in for Agent: streams tokens, reports a step, cites a passage."""

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx
        self.llm = object()
        self.release = threading.Event()
        self.seen: list[Any] = []

    def ask(self, question, conversation, on_token=None, on_step=None):
        self.seen.append(conversation)
        on_step({"name": "search_protocols", "args": {"query": question},
                 "result": {"results": [{"source": "tg142-monthly.md",
                                         "section": "Mechanical", "page": 4,
                                         "text": "Jaw: 2 mm", "score": 0.9}]},
                 "seconds": 0.25})
        on_token("Jaws: ")
        self.release.wait(5)
        on_token("2 mm [1]")
        return {"answer": "Jaws: 2 mm [1]", "citations": [
            {"source": "tg142-monthly.md", "section": "Mechanical", "page": 4,
             "text": "Jaw: 2 mm"}], "tool_calls": [], "abstained": False,
            "backend": "embedded", "model": "m", "seconds": 1.0,
            "intent": "protocol"}


def test_tokens_stream_into_the_chat_before_the_answer_is_done(app):
    fake = _StreamingAgent(app.ctx)
    streaming = AppContext(app.settings, fake, app.data_ctx, "embedded", "m")
    conversation = Conversation()
    turns = chat.stream_answer(streaming, "jaw tolerance?", [], conversation)
    next(turns)  # the question
    partial = None
    for turn in turns:
        if turn.history[-1]["content"] == "Jaws: ":
            partial = turn
            break
    assert partial is not None and not partial.done
    step = partial.history[1]
    assert step["metadata"]["title"] == "Tool: search_protocols"
    assert "tg142-monthly.md (Mechanical)" in step["content"]
    fake.release.set()
    final = list(turns)[-1]
    assert final.done and final.citations[0]["page"] == 4
    assert "[1] tg142-monthly.md, Mechanical, p. 4" in final.history[-1]["content"]
    assert fake.seen == [conversation]  # this session's memory, not another's
    assert "p. 4" in chat.passage_markdown(final.citations[0], 1)
    assert chat.citation_choices(final.citations) == [
        ("[1] tg142-monthly.md, Mechanical, p. 4", 0)]


def test_unexpected_errors_are_one_line_not_a_traceback(app):
    class Broken(_StreamingAgent):
        def ask(self, *args, **kwargs):
            raise KeyError("boom")

    broken = AppContext(app.settings, Broken(app.ctx), app.data_ctx)
    last = list(chat.stream_answer(broken, "hi", [], Conversation()))[-1]
    text = last.history[-1]["content"]
    assert "Something went wrong" in text and "KeyError" in text
    assert "Traceback" not in text
    down = AppContext(app.settings, Broken(app.ctx), app.data_ctx)
    down.agent.ask = lambda *a, **k: (_ for _ in ()).throw(
        BackendUnavailable("Ollama at 127.0.0.1 does not answer"))
    text = list(chat.stream_answer(down, "q", [], Conversation()))[-1].history[-1][
        "content"]
    assert "not available" in text and "does not answer" in text


def test_the_app_builds_with_a_limited_queue_for_chat_answers(app):
    from agent.ui import build_app

    settings = app.settings.model_copy(update={"llm_concurrency": 2})
    blocks = build_app(settings, app)
    chat_events = [fn for fn in blocks.fns.values() if fn.name in ("respond",
                                                                   "example")]
    assert len(chat_events) == 3
    assert {fn.concurrency_limit for fn in chat_events} == {2}
    assert {fn.concurrency_id for fn in chat_events} == {"llm"}
    assert blocks.analytics_enabled is False


def test_theme_uses_no_web_fonts():
    import gradio as gr

    from agent.ui.app import theme

    chosen = theme()
    css = chosen._get_theme_css()
    assert "googleapis" not in css and "@import" not in css
    assert not [s for s in chosen._stylesheets if s]
    assert not [f for f in chosen.font + chosen.font_mono
                if isinstance(f, gr.themes.GoogleFont)]


def test_report_dates_are_checked_and_the_pdf_is_written(app):
    with pytest.raises(reports.ReportError, match="YYYY-MM-DD"):
        reports.make_report(app, "TrueBeam1", "01/02/2025")
    with pytest.raises(reports.ReportError, match="after"):
        reports.make_report(app, "TrueBeam1", "2025-06-01", "2025-01-01")
    with pytest.raises(reports.ReportError, match="machine"):
        reports.make_report(app, None)
    assert "TrueBeam1" in reports.machine_choices(app)
    pdf = reports.make_report(app, "TrueBeam1", "2025-10-01", "2025-12-31")
    assert pdf.is_file() and pdf.read_bytes().startswith(b"%PDF")
    assert pdf.parent == app.settings.data_dir / "reports"


# -- knowledge management ---------------------------------------------------------
@pytest.fixture(scope="module")
def knowledge_app(tmp_path_factory, embedder) -> AppContext:
    from agent.retrieval.index import KnowledgeIndex
    from agent.retrieval.search import HybridSearcher

    root = tmp_path_factory.mktemp("ui-knowledge")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "daily.md").write_text(
        "# Daily checks\n\n## Output\n\nThe daily output constancy tolerance is "
        "3% of the baseline for photon beams.\n")
    settings = knowledge_settings(root, knowledge_dir=root)
    index = KnowledgeIndex(settings, embedder=embedder)
    index.sync([corpus], progress=False)
    ctx = ToolContext(settings=settings)
    ctx.engine.searcher = HybridSearcher(index)
    agent = Agent(None, ctx, "", "")
    return AppContext(settings, agent, ToolContext(settings=settings))


def test_upload_search_and_remove_a_document(knowledge_app, tmp_path):
    app = knowledge_app
    doc = _write(tmp_path, "octavius.md",
                 "# Octavius warm-up\n\n## Phantom preparation\n\nBefore "
                 "patient-specific QA with the Octavius 4D phantom the detector "
                 "array is warmed up for 15 minutes and pre-irradiated with 5 Gy.\n")
    report, refused = knowledge.add_documents(
        app, [doc, _write(tmp_path, "tool.exe", "MZ")])
    assert [Path(p).name for p in report.added] == ["octavius.md"]
    assert len(refused) == 1 and "tool.exe" in refused[0]
    assert (app.settings.watch_dir / "octavius.md").is_file()
    rows = {r[0]: r for r in knowledge.document_rows(app)}
    assert rows["octavius.md"][2] == 1 and rows["octavius.md"][5] == "department"
    assert rows["daily.md"][5] == "shipped corpus"
    found = knowledge.search_markdown(app, "Octavius phantom warm-up minutes")
    assert "octavius.md, Phantom preparation" in found
    path = next(p for label, p in knowledge.document_choices(app)
                if label.startswith("octavius.md"))
    said = knowledge.remove_document(app, path)
    assert "Removed octavius.md" in said and ".removed" in said
    assert "octavius.md" not in {r[0] for r in knowledge.document_rows(app)}
    assert not (app.settings.watch_dir / "octavius.md").exists()
    assert "octavius" not in knowledge.search_markdown(
        app, "Octavius phantom warm-up minutes").lower()
    # A re-index does not bring the removed file back; the corpus stays.
    report = knowledge.reindex(app)
    assert not report.added and not report.errors
    assert {r[0] for r in knowledge.document_rows(app)} == {"daily.md"}


def test_refresh_drops_the_series_cache(app, tmp_path):
    before = {m["machine"] for m in app.engine.data_on_hand()["machines"]}
    # Stored behind the engine's back: the cached series do not show it yet.
    app.engine.store.import_file(_write(
        tmp_path, "behind.csv", "date,machine,test,energy,value,unit\n"
        "2025-01-02,TrueBeam8,output,6X,0.1,%\n"))
    assert {m["machine"] for m in app.engine.data_on_hand()["machines"]} == before
    refresh(app)
    after = {m["machine"] for m in app.engine.data_on_hand()["machines"]}
    assert after == before | {"TrueBeam8"}
    assert app.engine is app.ctx.engine is app.data_ctx.engine  # one engine


def test_app_starts_without_a_reachable_backend_and_says_why(tmp_path):
    from agent.ui import start_app

    settings = knowledge_settings(tmp_path, llm_backend="ollama",
                                  ollama_host="http://127.0.0.1:9")
    said: list[str] = []
    started = start_app(settings, warm=False, notify=said.append)
    assert started.agent.llm is None
    assert "does not answer" in started.backend_error
    assert said and "unavailable" in said[0]
    header = chat.header_markdown(started)
    assert "backend unavailable" in header and "127.0.0.1:9" in header


class _RecordingAgent:
    """Stands in for Agent behind a served app: records sessions and overlap."""

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx
        self.llm = object()
        self.calls: list[tuple[str, int]] = []
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def ask(self, question, conversation, on_token=None, on_step=None):
        import time

        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.calls.append((question, id(conversation)))
        time.sleep(0.3)
        on_token(f"echo {question}")
        conversation.turns.append(question)
        with self.lock:
            self.running -= 1
        return {"answer": f"echo {question} after {len(conversation.turns)} turn(s)",
                "citations": [], "tool_calls": [], "abstained": False,
                "backend": "", "model": "", "seconds": 0.3, "intent": "protocol"}


@pytest.mark.parametrize("limit", [1, 2])
def test_served_sessions_keep_their_own_conversation_and_queue_for_the_model(
        app, limit):
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    from agent.ui import launch

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = app.settings.model_copy(update={"ui_port": port,
                                               "llm_concurrency": limit})
    recorder = _RecordingAgent(app.ctx)
    served = AppContext(settings, recorder, app.data_ctx, "stub", "stub")
    blocks = launch(settings, served, prevent_thread_lock=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        alice, bob = (Client(url, verbose=False) for _ in range(2))

        def ask(client: Client, question: str) -> Any:
            return client.predict(question, [], api_name="/respond")

        with ThreadPoolExecutor(2) as pool:
            first = list(pool.map(ask, [alice, bob], ["a1", "b1"]))
        second = ask(alice, "a2")
    finally:
        blocks.close()
    sessions = dict(recorder.calls)
    assert sessions["a1"] == sessions["a2"] != sessions["b1"]
    assert recorder.most == limit  # at most llm_concurrency answers at once
    texts = [str(r) for r in (*first, second)]
    assert "echo a1 after 1 turn(s)" in texts[0]
    assert "echo b1 after 1 turn(s)" in texts[1]
    assert "echo a2 after 2 turn(s)" in texts[2]
