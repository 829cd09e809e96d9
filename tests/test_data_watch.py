"""Watch folders for QA data: new exports are imported, reported and kept.

Real files in a real folder, the real engine and store (SQLite on disk).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from conftest import knowledge_settings

from agent.data_watch import DataWatch
from agent.engine import QAEngine

DAY1 = """date,machine,test,energy,value,unit
2025-03-03,TrueBeam1,output,6X,0.1,%
2025-03-04,TrueBeam1,output,6X,0.2,%
"""
DAY2 = """date,machine,test,energy,value,unit
2025-03-05,TrueBeam1,output,6X,0.3,%
2025-03-06,TrueBeam1,output,6X,oops,%
"""


def _old(path: Path, text: str) -> Path:
    """A file written a minute ago (settled: not still being written)."""
    path.write_text(text, encoding="utf-8")
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def test_new_files_are_imported_once_and_their_reports_kept(tmp_path):
    settings = knowledge_settings(tmp_path / "data")
    inbox = tmp_path / "exports"
    inbox.mkdir()
    engine = QAEngine(settings)
    watch = DataWatch(engine, [inbox])
    assert watch.scan() == []  # an empty folder: nothing arrives
    _old(inbox / "day1.csv", DAY1)
    (arrival,) = watch.scan()
    assert arrival.report.added == 2 and not arrival.error
    assert engine.data_on_hand()["machines"][0]["series"][0]["n"] == 2
    assert watch.scan() == []  # the same file again adds nothing, says nothing
    (inbox / "sub").mkdir()
    _old(inbox / "sub" / "day2.csv", DAY2)  # subfolders are watched too
    (second,) = watch.scan()
    assert second.report.added == 1
    assert [(e.line, e.column) for e in second.report.errors] == [(3, "value")]
    assert "1 rows rejected" in second.summary()
    # The engine's caches were dropped: the new day is on hand at once.
    assert engine.data_on_hand()["machines"][0]["series"][0]["n"] == 3
    logs = sorted((settings.data_dir / "imports").glob("*.json"))
    assert len(logs) == 2
    kept = json.loads(logs[-1].read_text())
    assert kept["added"] == 1 and kept["errors"][0]["line"] == 3


def test_a_file_being_written_waits_and_a_bad_file_is_reported(tmp_path):
    settings = knowledge_settings(tmp_path / "data")
    inbox = tmp_path / "exports"
    inbox.mkdir()
    watch = DataWatch(QAEngine(settings), [inbox], settle=30.0)
    (inbox / "fresh.csv").write_text(DAY1, encoding="utf-8")  # just written
    assert watch.scan() == []
    _old(inbox / "junk.csv", "a,b\n1,2\n")
    (bad,) = watch.scan()
    assert bad.report is None and "junk.csv" in bad.summary()
    assert "not imported" in bad.summary()
    os.utime(inbox / "fresh.csv", (time.time() - 60, time.time() - 60))
    (fresh,) = watch.scan()
    assert fresh.report.added == 2


def test_the_app_imports_from_its_watched_folder_and_says_so(tmp_path):
    from agent.ui import data as data_tab
    from agent.ui.common import start_app

    inbox = tmp_path / "exports"
    inbox.mkdir()
    # No model is needed to import data: the backend points at a closed port
    # and the app starts without it (tests/test_ui.py checks that start).
    settings = knowledge_settings(tmp_path / "data", llm_backend="ollama",
                                  ollama_host="http://127.0.0.1:9",
                                  data_watch_dirs=[inbox])
    app = start_app(settings, warm=False, notify=None)
    assert data_tab.arrivals_markdown(app) is None
    _old(inbox / "day1.csv", DAY1)
    said = data_tab.arrivals_markdown(app)
    assert said.startswith("**New data from the watched folders**")
    assert "day1.csv" in said and "2 measurements added" in said
    assert data_tab.on_hand_rows(app)[0][:3] == ["TrueBeam1", 1, 2]


def test_watch_folders_from_the_environment():
    from agent.config import load_settings

    settings = load_settings({"QA_AGENT_DATA_WATCH_DIRS": "/srv/mpc:/srv/dqa3"})
    assert settings.data_watch_dirs == [Path("/srv/mpc"), Path("/srv/dqa3")]
