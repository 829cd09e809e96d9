"""Varian MPC TDS trees imported exactly as exported.

Every tree is built by ``tests/mpc_layout.py`` from the layout QATrack+'s
QCPump reads (qcpump/contrib/pumps/mpc), with the truth it was made from; the
imports go through ``QAEngine`` into the real store (SQLite and a real
PostgreSQL through the ``store_url`` fixture) and are checked value for value
and date for date.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import zipfile
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import mpc_layout as layout  # tests/ is on sys.path under pytest
import numpy as np
import pytest
from sqlalchemy import select

from agent.config import get_settings
from agent.engine import QAEngine
from agent.qa.importers import InputError, read_measurements
from agent.qa.importers.mpc import check_folder, read_mpc
from agent.qa.schema import measurement_table
from agent.qa.tolerances import (
    Machine,
    ToleranceFileError,
    ToleranceTables,
)
from agent.vocabulary import TESTS, canonical_energy, canonical_test

ROOT = Path(__file__).resolve().parents[1]
MACHINES = {"1234": "TrueBeam7", "5678": "Halcyon2"}
REGISTRY = """machines:
  - name: TrueBeam7
    model: Varian TrueBeam
    machine_class: IMRT
    serial: "1234"
  - name: Halcyon2
    model: Varian Halcyon
    machine_class: IMRT
    serial: 5678
"""
TRUEBEAM = ["6X", "10X", "6FFF", "10FFF", "6E", "9E"]


def fleet_checks(days: int = 14, start: date = date(2024, 1, 1),
                 seed: int = 7) -> list[layout.Check]:
    """Two serials: a TrueBeam (NDS-WKS) with photon, FFF and electron beams and a
    Halcyon (HAL-TRT, 6FFF); an older-version session (``-Beam``/``-Geometry``
    folders), an HDTSE beam, a file in Windows-1252 and one with a BOM, and
    two checks of one beam in the same second."""
    rng = random.Random(seed)
    checks = []
    for day in layout.working_days(start, days):
        checks += layout.session(rng, "NDS-WKS", "1234", day, TRUEBEAM)
        checks += layout.session(rng, "HAL-TRT", "5678", day, ["6FFF"])
    old = datetime(2023, 12, 29, 20, 42, 27)
    checks += [
        layout.Check("NDS-WKS", "1234", old, 0, "6x-Geometry", "6X",
                     layout.geometry_rows(rng)),
        layout.Check("NDS-WKS", "1234", old, 1, "10x-Beam", "10X",
                     layout.rows_of(rng, layout.BEAM, 0.3)),
        layout.Check("NDS-WKS", "1234", old, 4, "6eHDTSE-Beam", "6HDTSE",
                     layout.rows_of(rng, layout.BEAM, 0.3)),
        # Same second and beam number as the day's geometry check, same beam.
        layout.Check("NDS-WKS", "1234", checks[0].when, 0, "BeamCheckTemplate6x",
                     "6X", layout.rows_of(rng, layout.BEAM, 0.3)),
    ]
    checks[1].encoding = "cp1252"  # the degree sign as Windows writes it
    checks[2].encoding = "utf-8-sig"
    return checks


def truth(checks: list[layout.Check], leaves: bool = False) -> dict:
    """(machine, test, energy) -> [(date, value)] in the store's order."""
    out = defaultdict(list)
    for c in sorted(checks, key=lambda c: (c.when, c.beam_no, c.folder)):
        for test, unit, value in c.expected(leaves):
            out[(MACHINES[c.serial], test, c.energy)].append((c.when, unit, value))
    return out


@pytest.fixture
def mpc_env(tmp_path, store_url, monkeypatch):
    """Settings (as ``qa-agent`` reads them) whose registry knows both serials."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "machines.yaml").write_text(REGISTRY, encoding="utf-8")
    monkeypatch.setenv("QA_AGENT_DATA_DIR", str(data))
    monkeypatch.setenv("QA_AGENT_DATABASE_URL", store_url)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    checks = fleet_checks()
    root = tmp_path_factory.mktemp("mpc")
    tds = layout.write_tree(root, checks)
    return {"checks": checks, "tds": tds,
            "zip": layout.write_zip(root / "tds.zip", tds)}


def stored(engine: QAEngine) -> dict:
    return {s.key: s for s in engine.store.load_series()}


def assert_matches_truth(engine: QAEngine, checks: list[layout.Check]) -> None:
    series, want = stored(engine), truth(checks)
    assert set(series) == set(want)
    for key, points in want.items():
        s = series[key]
        assert [str(d) for d in s.dates] == [p[0].isoformat() for p in points], key
        np.testing.assert_allclose(s.values, [p[2] for p in points], atol=1e-12,
                                   err_msg=str(key))
        assert s.unit == points[0][1], key


# --- the folder names QCPump's tests give -------------------------------------

@pytest.mark.parametrize("name,serial,when,beam,energy", [
    ("NDS-WKS-SN1234-2020-11-06-09-59-21-0009-GeometryCheckTemplate6xMVkV",
     "1234", datetime(2020, 11, 6, 9, 59, 21), 9, "6X"),
    ("NDS-WKS-SN1234-2020-11-06-09-59-21-0007-BeamCheckTemplate16e",
     "1234", datetime(2020, 11, 6, 9, 59, 21), 7, "16E"),
    ("NDS-WKS-SN1234-2020-11-06-09-59-21-0000-BeamCheckTemplate6xFFF",
     "1234", datetime(2020, 11, 6, 9, 59, 21), 0, "6FFF"),
    ("NDS-WKS-SN1234-2020-10-01-11-26-55-0010-GeometryCheckTemplate6xMVkVEnhancedCouch",
     "1234", datetime(2020, 10, 1, 11, 26, 55), 10, "6X"),
    ("NDS-WKS-SN7890-2020-10-02-09-08-58-0009-BeamCheckTemplate6eHDTSE",
     "7890", datetime(2020, 10, 2, 9, 8, 58), 9, "6HDTSE"),
    ("NDS-WKS-SN5432-2021-11-29-20-14-03-0014-BeamCheckTemplate2.5x",
     "5432", datetime(2021, 11, 29, 20, 14, 3), 14, "2.5X"),
    ("HAL-TRT-SN1234-2023-10-20-10-20-30-0000-GeometryCheckTemplate6xFFFMVkV",
     "1234", datetime(2023, 10, 20, 10, 20, 30), 0, "6FFF"),
    ("NDS-WKS-SN4321-2015-12-03-15-45-31-0005-6eHDTSE-Beam",
     "4321", datetime(2015, 12, 3, 15, 45, 31), 5, "6HDTSE"),
    ("NDS-WKS-SN4321-2019-02-12-20-42-27-0000-6xFFF-Beam",
     "4321", datetime(2019, 2, 12, 20, 42, 27), 0, "6FFF"),
    ("NDS-WKS-SN4321-2019-02-12-20-42-28-0009-6x-Geometry",
     "4321", datetime(2019, 2, 12, 20, 42, 28), 9, "6X"),
])
def test_check_folder_names_of_the_published_layout(name, serial, when, beam,
                                                    energy):
    found = check_folder(name)
    assert (found.serial, found.date, found.beam_no, found.energy) == (
        serial, when, beam, energy)
    assert canonical_energy(found.energy) == found.energy  # analysable as named


@pytest.mark.parametrize("name", [
    "MPCChecks", "NDS-WKS-SN1234-2020-13-06-09-59-21-0009-GeometryCheckTemplate6x",
    "NDS-WKS-SN1234-2020-11-06-09-59-21-9-BeamCheckTemplate6x",
    "NDS-WKS-SN1234-2020-11-06-09-59-21-0009-Logs"])
def test_other_names_are_not_check_folders(name):
    assert check_folder(name) is None


def test_vocabulary_has_the_mpc_tests_apart_from_the_generic_ones():
    for test in ("mpc_output_change", "mpc_jaw_x1", "mpc_couch_roll",
                 "mpc_mlc_backlash_b", "mpc_gantry_relative"):
        assert test in TESTS and TESTS[test][0]
    assert canonical_test("BeamOutputChange") == "mpc_output_change"
    assert canonical_test("MPC output change") == "mpc_output_change"
    assert canonical_test("output") == "output"  # never merged
    assert canonical_test("mpc_mlc_leaf_a12") == "mpc_mlc_leaf_a12"
    assert TESTS["mpc_mlc_backlash_leaf_b7"][1] == "mm"
    assert "mpc_mlc_leaf_a12" not in list(TESTS)  # known by pattern, not listed


def test_registry_serials(tmp_path):
    assert Machine(name="A", serial=5678).serial == "5678"
    tables = ToleranceTables([], [Machine(name="A", serial="SN1234")])
    assert tables.machine_for_serial("1234") == "A"
    assert tables.machine_for_serial("9999") is None
    with pytest.raises(ToleranceFileError, match="both A and B"):
        ToleranceTables([], [Machine(name="A", serial="1"),
                             Machine(name="B", serial="1")])
    shipped = ToleranceTables.load(ROOT / "knowledge" / "tolerances")
    assert {m.name for m in shipped.machines.values()} >= {"TrueBeam1", "Clinac3"}


# --- a whole tree, through the engine, into the real store ----------------------

@pytest.mark.parametrize("form", ["tds", "zip"])
def test_tree_imports_value_for_value_and_date_for_date(fleet, mpc_env, form):
    engine = QAEngine(mpc_env)
    checks = fleet["checks"]
    assert len(checks) >= 100 and len({c.serial for c in checks}) == 2
    report = engine.import_file(fleet[form])
    assert report.format == "mpc" and not report.errors, report.errors[:3]
    assert report.checks == report.checks_new == len(checks)
    assert report.rows_read == sum(len(c.rows) for c in checks)
    assert report.added == sum(len(c.expected()) for c in checks)
    assert_matches_truth(engine, checks)
    assert engine.store.counts()["import_log"] == len(checks)


def test_threshold_and_evaluation_kept_beside_the_value(fleet, mpc_env):
    engine = QAEngine(mpc_env)
    engine.import_file(fleet["tds"])
    geometry = fleet["checks"][0]
    m = measurement_table.c
    with engine.store.engine.connect() as conn:
        extras = [json.loads(e) for (e,) in conn.execute(select(m.extra))]
    by_folder = {(e["folder"], e["quantity"]): e for e in extras}
    row = geometry.rows[3]  # BeamGroup/BeamOutputChange of the geometry check
    extra = by_folder[(geometry.folder, f"{row.name} [{row.unit}]")]
    assert extra == {"source": "MPC", "quantity": f"{row.name} [%]",
                     "threshold": 2.0, "evaluation": row.line().rsplit(",")[-1],
                     "template": "GeometryCheckTemplate6xMVkV",
                     "folder": geometry.folder}
    summary = [e for e in extras if e["folder"] == geometry.folder
               and e["quantity"].startswith("largest |CollimationGroup/MLCBacklash")]
    assert len(summary) == 2 and {e["leaves"] for e in summary} == {60}


def test_reimport_adds_nothing_and_a_later_tree_only_its_new_checks(
        tmp_path, mpc_env):
    engine = QAEngine(mpc_env)
    checks = fleet_checks(days=3)
    tds = layout.write_tree(tmp_path, checks)
    engine.import_file(tds)
    before = engine.store.counts()
    again = engine.import_file(tds)
    assert again.already_imported and again.added == 0 and again.checks_new == 0
    assert engine.store.counts() == before
    later = fleet_checks(days=2, start=date(2024, 2, 1), seed=8)[:-4]
    layout.write_tree(tmp_path, later)
    zipped = layout.write_zip(tmp_path / "later.zip", tds)
    grown = engine.import_file(zipped)
    assert grown.checks_new == len(later) and grown.checks == len(checks + later)
    assert grown.added == sum(len(c.expected()) for c in later)
    assert grown.duplicates == 0 and not grown.conflicts
    assert_matches_truth(engine, checks + later)


def test_unknown_serial_is_reported_never_guessed(tmp_path, mpc_env):
    rng = random.Random(3)
    known = layout.session(rng, "NDS-WKS", "1234", date(2024, 3, 4), ["6X", "10X"])
    stranger = layout.session(rng, "NDS-WKS", "9999", date(2024, 3, 4), ["6X"])
    tds = layout.write_tree(tmp_path, known + stranger)
    engine = QAEngine(mpc_env)
    report = engine.import_file(tds)
    unknown = [e for e in report.errors if "9999" in e.reason]
    assert len(unknown) == len(stranger)
    for error, check in zip(unknown, stranger, strict=True):
        assert error.file == str(tds / "9999" / "MPCChecks" / check.folder
                                 / "Results.csv")
        assert check.folder in error.reason and "machines.yaml" in error.reason
        assert 'serial: "9999"' in error.reason
    assert engine.store.machines() == ["TrueBeam7"]
    assert report.checks == len(known)
    # Once the serial is registered, the same tree brings the stranger in.
    registry = Path(mpc_env.data_dir) / "machines.yaml"
    registry.write_text(REGISTRY + '  - name: Clinac9\n    serial: "9999"\n')
    get_settings.cache_clear()
    later = QAEngine(get_settings()).import_file(tds)
    assert later.checks_new == len(stranger) and not later.errors
    assert "Clinac9" in engine.store.machines()


def test_folders_that_are_not_check_folders_are_reported_as_skipped(tmp_path):
    rng = random.Random(4)
    checks = layout.session(rng, "NDS-WKS", "1234", date(2024, 3, 5), ["6X"])
    tds = layout.write_tree(tmp_path, checks)
    (tds / "1234" / "MPCChecks" / "Logs").mkdir()
    (tds / "1234" / "MPCChecks" / "Logs" / "mpc.log").write_text("x")
    (tds / "notes").mkdir()
    (tds / "notes" / "Results.csv").write_text(layout.HEADER + "\n")
    empty = tds / "1234" / "MPCChecks" / checks[0].folder.replace("-0000-", "-0005-")
    empty.mkdir()
    result = read_mpc(tds, registry=MACHINES)
    skipped = {e.file: e.reason for e in result.errors}
    assert set(skipped) == {str(tds / "1234" / "MPCChecks" / "Logs"),
                            str(tds / "notes"), str(empty)}
    assert "holds no check folder" in skipped[str(tds / "1234/MPCChecks/Logs")]
    assert "holds a Results.csv" in skipped[str(tds / "notes")]
    assert "without a Results.csv" in skipped[str(empty)]
    assert all(e.line is None and "skipped" in e.reason for e in result.errors)


def test_a_relative_path_reads_the_same_tree(tmp_path, monkeypatch):
    checks = fleet_checks(days=2)
    tds = layout.write_tree(tmp_path, checks)
    absolute = read_mpc(tds, registry=MACHINES)
    monkeypatch.chdir(tmp_path)
    relative = read_mpc("TDS", registry=MACHINES)
    assert [c.file for c in relative.checks] == [
        str(Path(c.file).relative_to(tmp_path)) for c in absolute.checks]
    assert relative.frame.drop(columns="extra").equals(
        absolute.frame.drop(columns="extra"))
    monkeypatch.chdir(tds / "1234" / "MPCChecks" / checks[0].folder)
    (here,) = read_mpc(".", registry=MACHINES).checks
    (same,) = [c for c in absolute.checks if checks[0].folder in c.file]
    assert here.sha256 == same.sha256  # the same check, whatever the path


def test_corrupt_results_reported_with_file_line_and_column(tmp_path):
    when = datetime(2024, 4, 2, 7, 10, 0)
    folders = {n: f"NDS-WKS-SN1234-2024-04-02-07-10-00-000{i}-BeamCheckTemplate{e}"
               for i, (n, e) in enumerate([("nocol", "6x"), ("bad", "10x"),
                                           ("short", "6e"), ("odd", "9e")])}
    texts = {
        "nocol": "Name [Unit],Threshold,Evaluation Result\n"
                 "BeamGroup/BeamOutputChange [%],2,Pass\n",
        "bad": "Name [Unit],Value,Threshold,Evaluation Result\n"
               "BeamGroup/BeamOutputChange [%],0.12,2,Pass\n"
               "BeamGroup/BeamUniformityChange [%],abc,2,Pass\n"
               "BeamGroup/BeamCenterShift [mm],0.05,0.5,Pass\n",
        "short": "Name [Unit],Value,Threshold,Evaluation Result\n"
                 "BeamGroup/BeamOutputChange [%],-0.3,2,Pass\n"
                 "\n"
                 "BeamGroup/BeamCenterShift [mm]\n",
        "odd": "Name [Unit],Value,Threshold,Evaluation Result\n"
               "BeamGroup/BeamOutputChange [cGy],1.2,2,Pass\n"
               "BeamGroup/SomethingNew [mm],0.1,1,Pass\n"
               "BeamGroup/BeamOutputChange,0.2,2,Pass\n"
               "BeamGroup/BeamCenterShift [mm],0.07,,Pass\n",
    }
    files = {}
    for key, folder in folders.items():
        (tmp_path / folder).mkdir()
        files[key] = str(tmp_path / folder / "Results.csv")
        Path(files[key]).write_text(texts[key], encoding="utf-8")
    result = read_measurements(tmp_path, registry=MACHINES)
    got = {(e.file, e.line, e.column) for e in result.errors}
    assert got == {(files["nocol"], 1, "Value"), (files["bad"], 3, "Value"),
                   (files["short"], 4, "Value"), (files["odd"], 2, "Name [Unit]"),
                   (files["odd"], 3, "Name [Unit]"), (files["odd"], 4, "Name [Unit]")}
    reasons = {(e.file, e.line): e.reason for e in result.errors}
    assert "'abc' is not a number" in reasons[(files["bad"], 3)]
    assert "lacks the 'Value' column" in reasons[(files["nocol"], 1)]
    assert "'BeamGroup/SomethingNew' is not mapped" in reasons[(files["odd"], 3)]
    assert "has no [unit]" in reasons[(files["odd"], 4)]
    assert result.rows_read == 1 + 3 + 2 + 4 and result.rows_rejected == 5
    kept = {(r.test, r.energy, r.value, r.date) for r in result.frame.itertuples()}
    assert kept == {("mpc_output_change", "10X", 0.12, when),
                    ("mpc_beam_center_shift", "10X", 0.05, when),
                    ("mpc_output_change", "6E", -0.3, when),
                    ("mpc_beam_center_shift", "9E", 0.07, when)}
    blank = result.frame[result.frame["energy"] == "9E"]["extra"].iloc[0]
    assert blank["threshold"] is None and blank["evaluation"] == "Pass"


def test_one_check_folder_or_its_results_csv_and_mpcs_own_summary_wins(tmp_path):
    rng = random.Random(5)
    rows = layout.mlc_rows(rng, leaves=10)
    rows[0].value = 0.9  # MPC's MLCMaxOffsetA, above every leaf written
    check = layout.Check("NDS-WKS", "1234", datetime(2024, 5, 6, 7, 0, 1), 3,
                         "EnhancedMLCCheckTemplate6x", "6X", rows)
    tds = layout.write_tree(tmp_path, [check])
    folder = tds / "1234" / "MPCChecks" / check.folder
    for path in (folder, folder / "Results.csv"):
        result = read_measurements(path, registry=MACHINES)
        values = dict(zip(result.frame["test"], result.frame["value"], strict=True))
        assert values["mpc_mlc_max_offset_a"] == 0.9
        assert values == {t: v for t, _, v in check.expected()}
        extra = result.frame.set_index("test")["extra"]["mpc_mlc_max_offset_a"]
        assert extra["leaves"] == 10 and extra["worst_leaf_value"] < 0.9
    leaves = read_mpc(folder, registry=MACHINES, leaves=True)
    assert sorted(zip(leaves.frame["test"], leaves.frame["value"], strict=True)) == \
        sorted((t, v) for t, _, v in check.expected(leaves=True))


def test_zip_member_escaping_the_archive_is_refused(tmp_path, mpc_env):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("TDS/ok.txt", "x")
        archive.writestr("../evil/Results.csv", layout.HEADER)
    engine = QAEngine(mpc_env)
    with pytest.raises(InputError, match="outside the archive"):
        engine.import_file(bad)
    assert engine.store.counts()["measurement"] == 0
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable zip"):
        engine.import_file(broken)


def test_the_series_analyse_with_machine_test_energy_dates_and_values(
        fleet, mpc_env):
    engine = QAEngine(mpc_env)
    engine.import_file(fleet["zip"])
    run = engine.analyse("truebeam 7", "mpc_output_change", "6 MV")
    (result,) = run.results
    points = truth(fleet["checks"])[("TrueBeam7", "mpc_output_change", "6X")]
    assert (result.machine, result.test, result.energy, result.unit) == (
        "TrueBeam7", "mpc_output_change", "6X", "%")
    assert result.n == len(points)
    assert [str(d) for d in result.chart.dates] == [p[0].isoformat() for p in points]
    np.testing.assert_allclose(result.chart.values, [p[2] for p in points])
    assert result.first_date.startswith("2023-12-29")  # the older-version folder
    halcyon = engine.analyse("Halcyon2", "mpc_couch_roll", "6FFF").results[0]
    assert halcyon.n == len(truth(fleet["checks"])[("Halcyon2", "mpc_couch_roll",
                                                    "6FFF")])


def test_folder_time_is_the_linac_clock_whatever_the_time_zone(tmp_path, mpc_env,
                                                                monkeypatch):
    rng = random.Random(6)
    checks = layout.session(rng, "NDS-WKS", "1234", date(2024, 3, 31), ["6X"])
    tds = layout.write_tree(tmp_path, checks)
    monkeypatch.setenv("QA_AGENT_TIMEZONE", "Australia/Sydney")
    get_settings.cache_clear()
    QAEngine(get_settings()).import_file(tds)
    assert_matches_truth(QAEngine(get_settings()), checks)


def test_qa_agent_import_takes_a_folder_and_a_zip(fleet, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "machines.yaml").write_text(REGISTRY, encoding="utf-8")
    env = {**os.environ, "QA_AGENT_DATA_DIR": str(data)}
    env.pop("QA_AGENT_DATABASE_URL", None)
    cli = [str(Path(sys.executable).parent / "qa-agent"), "import"]
    first = subprocess.run([*cli, str(fleet["tds"]), "--json"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["added"] == sum(
        len(c.expected()) for c in fleet["checks"])
    again = subprocess.run([*cli, str(fleet["zip"])], env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0 and "already imported" in again.stdout
    bad = subprocess.run([*cli, str(tmp_path / "none")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_the_data_tab_accepts_a_zip(fleet):
    from agent.ui.common import DATA_SUFFIXES, check_upload

    assert check_upload(fleet["zip"], DATA_SUFFIXES, 50) == fleet["zip"]
