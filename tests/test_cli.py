"""The qa-agent command as a user runs it: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import PROJECT_ROOT

QA_AGENT = [sys.executable, "-m", "agent.cli"]


def run(args, data_dir: Path, **kwargs):
    env = {**os.environ, "QA_AGENT_DATA_DIR": str(data_dir)}
    env.pop("QA_AGENT_DATABASE_URL", None)
    return subprocess.run([*QA_AGENT, *args], capture_output=True, text=True,
                          env=env, cwd=PROJECT_ROOT, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def demo_json(demo_fleet, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("cli")
    out = run(["analyze", "--data", str(demo_fleet["data"]), "--machine",
               "truebeam 2", "--test", "Output", "--energy", "10 MV", "--json"],
              data_dir)
    return out


def test_analyze_json_follows_the_contract(demo_json):
    assert demo_json.returncode == 0, demo_json.stderr
    doc = json.loads(demo_json.stdout)  # stdout is exactly one JSON document
    assert set(doc) == {"series", "errors"}
    assert doc["errors"] == []
    (series,) = doc["series"]
    assert (series["machine"], series["test"], series["energy"]) == (
        "TrueBeam2", "output", "10X")
    assert series["unit"] == "%" and series["n"] == 512
    assert series["status"] == "watch"
    assert series["tolerance"]["limit"] == 3.0
    assert "MPPG 9.a" in series["tolerance"]["source"]
    assert series["drift"] == {**series["drift"], "detected": True, "direction": 1,
                               "onset": "2025-09-15"}
    assert isinstance(series["spc"]["center"], float)
    assert all(set(s) == {"rule", "date"} for s in series["spc"]["signals"])


def test_bad_rows_listed_rest_analysed(tmp_path):
    csv = tmp_path / "qa.csv"
    rows = ["date,machine,test,energy,value,unit"]
    rows += [f"2024-01-{d:02d},TB1,output,6X,{0.1 * (d % 3):.1f},%"
             for d in range(1, 29)]
    rows.insert(5, "2024-01-05,TB1,output,6X,n/a,%")
    csv.write_text("\n".join(rows) + "\n")
    out = run(["analyze", "--data", str(csv), "--json"], tmp_path)
    assert out.returncode == 0
    doc = json.loads(out.stdout)
    assert doc["errors"] == [{"file": str(csv), "line": 6, "column": "value",
                              "reason": "value 'n/a' is not a number; write a "
                              "number such as 0.5"}]
    assert doc["series"][0]["n"] == 28


def test_unusable_input_exits_2_with_message_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("when,what\n1,2\n")
    out = run(["analyze", "--data", str(bad), "--json"], tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert str(bad) in out.stderr and "date" in out.stderr
    assert json.loads(out.stdout)["series"] == []
    missing = run(["analyze", "--data", str(tmp_path / "nope.csv")], tmp_path)
    assert missing.returncode == 2 and "file not found" in missing.stderr


def test_unknown_names_exit_2_and_list_what_is_on_hand(demo_fleet, tmp_path):
    out = run(["analyze", "--data", str(demo_fleet["data"]), "-m", "Elekta"],
              tmp_path)
    assert out.returncode == 2
    assert "TrueBeam1" in out.stderr and "Traceback" not in out.stderr
    out = run(["analyze", "--data", str(demo_fleet["data"]), "-t", "colour"],
              tmp_path)
    assert out.returncode == 2 and "known tests" in out.stderr


def test_import_then_analyze_and_fleet_from_store(demo_fleet, tmp_path):
    first = run(["import", str(demo_fleet["data"]), "--json"], tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["added"] == 35269 and report["events_added"] == 1
    again = run(["import", str(demo_fleet["data"])], tmp_path)
    assert "already imported" in again.stdout
    fleet = run(["fleet", "--json"], tmp_path)
    doc = json.loads(fleet.stdout)
    assert len(doc["series"]) == 87
    statuses = [s["status"] for s in doc["series"]]
    assert statuses == sorted(statuses, key={"action": 0, "watch": 1,
                                             "ok": 2}.__getitem__)
    detected = {(s["machine"], s["test"], s["energy"]) for s in doc["series"]
                if s["drift"]["detected"]}
    assert detected == {("TrueBeam2", "output", "10X"),
                        ("TrueBeam2", "symmetry_crossplane", "6X"),
                        ("Clinac3", "energy", "15X"), ("TrueBeam1", "output", "6E")}
    table = run(["fleet"], tmp_path)
    assert "87 series" in table.stdout
    dated = run(["analyze", "-m", "Clinac3", "-t", "laser", "--start",
                 "2025-01-01", "--end", "2025-06-30", "--json"], tmp_path)
    (laser,) = json.loads(dated.stdout)["series"]
    assert laser["n"] < 140


def test_demo_data_command_and_app_refusing_an_open_binding(tmp_path):
    out = run(["demo-data", "--out", str(tmp_path / "d")], tmp_path)
    assert out.returncode == 0
    truth = json.loads((tmp_path / "d" / "demo_fleet_truth.json").read_text())
    assert len(truth["series"]) == 87
    # python app.py and qa-agent serve refuse a non-loopback address without
    # authentication, before any slow set-up (the app itself is served in
    # tests/test_browser.py and tests/test_load.py).
    env = {**os.environ, "QA_AGENT_DATA_DIR": str(tmp_path / "app"),
           "QA_AGENT_UI_HOST": "0.0.0.0"}
    env.pop("QA_AGENT_UI_AUTH", None)
    for command in ([sys.executable, "app.py"],
                    [sys.executable, "-m", "agent.cli", "serve"]):
        app = subprocess.run(command, capture_output=True, text=True, env=env,
                             cwd=PROJECT_ROOT, timeout=120)
        assert app.returncode == 1, app.stderr
        assert "0.0.0.0" in app.stderr and "ui_auth" in app.stderr.lower()
        assert "Traceback" not in app.stderr
    assert not (tmp_path / "app" / "qa.sqlite").exists()


def test_malformed_date_option_exits_2_naming_the_option(demo_fleet, tmp_path):
    out = run(["analyze", "--data", str(demo_fleet["data"]), "--baseline-start",
               "2025-13-01"], tmp_path)
    assert out.returncode == 2
    assert "--baseline-start '2025-13-01' is not a date" in out.stderr
    assert "Traceback" not in out.stderr
