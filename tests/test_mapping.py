"""An export the readers do not know: a mapping is proposed, confirmed, kept.

A department's own export ("Datum;Gerät;Prüfung;Energie;Wert;Einheit", decimal
commas) goes through the real ``qa-agent import`` command: refused with a
proposed mapping, imported value for value with the mapping, the mapping saved
as a profile and used for the next export.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.qa.importers import InputError, ReadOptions, read_measurements
from agent.qa.importers.mapping import ColumnMapping, proposal_for

GERMAN = """Datum;Gerät;Prüfung;Energie;Wert;Einheit
2025-03-03;TrueBeam1;output;6X;0,1;%
2025-03-04;TrueBeam1;output;6X;0,25;%
2025-03-05;TrueBeam1;output;10X;-0,3;%
2025-03-06;TrueBeam1;laser;;0,5;mm
"""
TRUTH = [("2025-03-03", "output", "6X", 0.1, "%"),
         ("2025-03-04", "output", "6X", 0.25, "%"),
         ("2025-03-05", "output", "10X", -0.3, "%"),
         ("2025-03-06", "laser", "", 0.5, "mm")]
MAP = ["date=Datum", "machine=Gerät", "test=Prüfung", "energy=Energie",
       "value=Wert", "unit=Einheit"]


def _qa_agent(*args: str, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "qa-agent"), *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "QA_AGENT_DATA_DIR": str(data)})


def test_the_proposal_names_each_column_and_why(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(GERMAN, encoding="utf-8")
    proposal = proposal_for(path)
    assert proposal.complete
    assert proposal.mapping.columns == {"date": "Datum", "machine": "Gerät",
                                        "test": "Prüfung", "value": "Wert",
                                        "energy": "Energie", "unit": "Einheit"}
    assert "its cells are dates" in proposal.reasons["date"]
    with pytest.raises(InputError, match="Proposed column mapping"):
        read_measurements(path)


def test_import_with_the_mapping_value_for_value_then_by_profile(tmp_path):
    data = tmp_path / "data"
    path = tmp_path / "export.csv"
    path.write_text(GERMAN, encoding="utf-8")
    refused = _qa_agent("import", str(path), data=data)
    assert refused.returncode == 2 and "--map 'date=Datum'" in refused.stderr
    assert "Traceback" not in refused.stderr
    args = [a for pair in MAP for a in ("--map", pair)]
    done = _qa_agent("import", str(path), *args, "--save-profile", "physik",
                     "--json", data=data)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == 4
    assert (data / "mappings" / "physik.json").is_file()
    mapping = ColumnMapping.load(data / "mappings", "physik")
    result = read_measurements(path, options=ReadOptions(mapping=mapping))
    got = [(str(r.date)[:10], r.test, r.energy, r.value, r.unit)
           for r in result.frame.itertuples()]
    assert sorted(got) == sorted(TRUTH)
    # The next export, by profile: only its new day is added.
    later = tmp_path / "export2.csv"
    later.write_text(GERMAN + "2025-03-07;TrueBeam1;output;6X;0,05;%\n",
                     encoding="utf-8")
    again = _qa_agent("import", str(later), "--profile", "physik", "--json",
                      data=data)
    assert again.returncode == 0 and json.loads(again.stdout)["added"] == 1


def test_a_wrong_mapping_says_what_the_file_has(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(GERMAN, encoding="utf-8")
    wrong = ColumnMapping.parse(["date=Date", "machine=Gerät", "test=Prüfung",
                                 "value=Wert"])
    with pytest.raises(InputError, match="its columns: Datum"):
        read_measurements(path, options=ReadOptions(mapping=wrong))
    with pytest.raises(InputError, match="not a role"):
        ColumnMapping.parse(["when=Datum"])
    with pytest.raises(InputError, match="profile name"):
        ColumnMapping.load(tmp_path, "../etc/passwd")


def test_import_watch_picks_up_a_new_export(tmp_path):
    data, inbox = tmp_path / "data", tmp_path / "inbox"
    inbox.mkdir()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "qa-agent"), "import", str(inbox),
         "--watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "QA_AGENT_DATA_DIR": str(data),
             "QA_AGENT_WATCH_INTERVAL": "0.5"})
    try:
        export = inbox / "daily.csv"
        export.write_text("date,machine,test,energy,value,unit\n"
                          "2025-03-03,TrueBeam1,output,6X,0.1,%\n",
                          encoding="utf-8")
        past = time.time() - 60
        os.utime(export, (past, past))
        line = proc.stdout.readline()  # blocks until the scan reports
        assert "daily.csv" in line and "1 measurements added" in line
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_the_data_tab_proposes_the_mapping_and_imports_with_it(tmp_path):
    from conftest import knowledge_settings

    from agent.ui import data as data_tab
    from agent.ui.common import start_app

    settings = knowledge_settings(tmp_path / "data", llm_backend="ollama",
                                  ollama_host="http://127.0.0.1:9")
    app = start_app(settings, warm=False, notify=None)
    path = tmp_path / "export.csv"
    path.write_text(GERMAN, encoding="utf-8")
    with pytest.raises(InputError):
        data_tab.preview_import(app, path)
    proposal = data_tab.proposed_mapping(path)
    assert proposal.splitlines() == ["date=Datum", "machine=Gerät",
                                     "test=Prüfung", "value=Wert",
                                     "energy=Energie", "unit=Einheit"]
    preview = data_tab.preview_import(app, path, mapping=proposal)
    assert len(preview.result.frame) == 4 and not preview.result.errors
    assert data_tab.commit_import(app, preview).added == 4
    assert data_tab.on_hand_rows(app)[0][:3] == ["TrueBeam1", 3, 4]
