"""Daily QA 3 / Atlas trend exports and QATrack+ reports, as exported.

The files are built from the published layouts (tests/dqa3_layout.py from
QATrack+'s QCPump trend queries, tests/qatrack_layout.py from QATrack+'s
report code) and checked value for value and date for date against the truth
they were made from; then analysed through the engine. Nothing is mocked.
"""

from __future__ import annotations

import json
import math

import dqa3_layout as dqa3
import numpy as np
import pandas as pd
import pytest
import qatrack_layout as qat
from conftest import knowledge_settings
from sqlalchemy import text

from agent.engine import QAEngine
from agent.qa.importers import InputError, ReadOptions, read_measurements
from agent.qa.store import MeasurementStore

SYDNEY = ReadOptions(timezone="Australia/Sydney")


def _by_line_and_test(frame: pd.DataFrame) -> dict[tuple[int, str], pd.Series]:
    keyed = {}
    for _, row in frame.iterrows():
        key = (int(row["source_line"]), row["test"])
        assert key not in keyed, f"two {key[1]} measurements on line {key[0]}"
        keyed[key] = row
    return keyed


def _check_against_truth(frame: pd.DataFrame, records: list[dqa3.Record]) -> None:
    """Every record's every metric, value for value and date for date."""
    rows = _by_line_and_test(frame)
    assert len(rows) == len(records) * len(dqa3.METRIC_TESTS)
    for record in records:
        for metric, (value, base, diff) in record.metrics.items():
            row = rows[(record.line, dqa3.METRIC_TESTS[metric])]
            assert row["date"] == pd.Timestamp(record.when)
            assert (row["machine"], row["energy"]) == (record.machine, record.energy)
            in_cm = metric in {"xsize", "ysize", "xshift", "yshift"}
            # The difference as the file states it; cm become mm exactly.
            expected = float(diff) * 10 if in_cm else float(diff)
            assert row["value"] == pytest.approx(expected, abs=1e-12)
            assert row["unit"] == ("mm" if in_cm else "%")
            scale = 10 if in_cm else 1  # cm in the file, all in mm in the store
            assert row["raw_value"] == pytest.approx(float(value) * scale, abs=1e-12)
            assert row["baseline"] == pytest.approx(float(base) * scale, abs=1e-12)
            assert row["raw_unit"] is None
            extra = row["extra"]
            assert extra["temperature"] == record.temperature
            assert extra["pressure"] == record.pressure
            assert extra["device"] == record.device
            assert extra["room_name"] == record.room


# --- Daily QA 3: both database flavours ------------------------------------------


@pytest.mark.parametrize("flavour", ["fdb", "atlas"])
def test_trend_export_reads_value_for_value(tmp_path, flavour):
    records = dqa3.truth(days=10)
    path = dqa3.write_export(tmp_path / f"{flavour}.csv", records, flavour)
    result = read_measurements(path)
    assert result.format == "dailyqa3"
    assert result.errors == []
    assert result.rows_read == len(records) == 80
    assert set(result.frame["energy"]) == {"6X", "10X", "6FFF", "9E"}
    assert set(result.frame["machine"]) == {"TrueBeam1", "TrueBeam2"}
    _check_against_truth(result.frame, records)


@pytest.mark.parametrize("rename", [
    {"work_started": "work_completed"},
    {"machine_name": "dqa3_unit_name", "beam_energy": "beamenergy"},
    {"work_started": "Work Started", "machine_name": "Machine Name",
     "beam_energy": "Beam Energy", "beam_type": "BEAM_TYPE", "dose_diff": "Dose Diff",
     "axsym_baseline": "AxSym Baseline", "xsize_diff": "XSize Diff (cm)",
     "energy": "Energy", "energy_diff": "Energy Diff (%)"},
], ids=["work_completed", "dqa3_unit_name+beamenergy", "case-and-spacing"])
def test_other_spellings_of_the_columns_read_the_same(tmp_path, rename):
    records = dqa3.truth(days=3)
    path = dqa3.write_export(tmp_path / "renamed.csv", records, "fdb", rename)
    result = read_measurements(path)
    assert result.errors == []
    _check_against_truth(result.frame, records)


def test_the_energy_column_is_not_the_beam_energy(tmp_path):
    records = dqa3.truth(days=4)
    # Only the machine and date columns renamed to the older names, and the
    # energy-constancy column written before the beam energy.
    path = dqa3.write_export(tmp_path / "renamed.csv", records, "fdb",
                             {"machine_name": "Room", "work_started": "Date Time"},
                             reverse=True)
    frame = read_measurements(path).frame
    assert set(frame["energy"]) == {"6X", "10X", "6FFF", "9E"}
    energy = frame[frame["test"] == "energy"].set_index("source_line")["value"]
    for record in records:
        assert energy[record.line] == float(record.metrics["energy"][2])
    assert len(frame) == len(records) * len(dqa3.METRIC_TESTS)


def test_without_a_beam_energy_column_the_file_is_refused(tmp_path):
    path = dqa3.write_export(tmp_path / "no_beam.csv", dqa3.truth(days=1), "fdb",
                             drop=("beam_energy",))
    with pytest.raises(InputError, match="beam energy") as err:
        read_measurements(path)
    assert "energy-constancy" in str(err.value)


def test_a_wedged_beam_is_reported_not_filed_with_the_open_beam(tmp_path):
    records = dqa3.truth(days=1)
    records[1].wedge = ("EDW", "60")
    path = dqa3.write_export(tmp_path / "wedge.csv", records, "atlas")
    result = read_measurements(path)
    wedged = [e for e in result.errors if e.line == records[1].line]
    assert [e.column for e in wedged] == ["wedge_type"]
    assert "wedged beam (EDW 60" in wedged[0].reason
    assert records[1].line not in set(result.frame["source_line"])
    assert result.rows_rejected == 1


def test_a_trend_time_with_an_offset_lands_at_department_time(tmp_path):
    records = dqa3.truth(days=1)
    path = dqa3.write_export(tmp_path / "utc.csv", records, "fdb")
    first = records[0].when.strftime("%Y-%m-%d %H:%M:%S")
    assert first == "2025-03-03 07:05:00"  # Sydney, daylight saving (+11:00)
    path.write_text(path.read_text().replace(first, "2025-03-02T20:05:00Z"))
    frame = read_measurements(path, options=SYDNEY).frame
    line = frame[frame["source_line"] == records[0].line]
    assert set(line["date"]) == {pd.Timestamp("2025-03-03 07:05:00")}
    assert line["extra"].iloc[0]["time_as_written"] == "2025-03-02T20:05:00Z"


def test_trend_series_analyse_through_the_engine(tmp_path):
    records = dqa3.truth(days=12)
    path = dqa3.write_export(tmp_path / "fleet.csv", records, "fdb")
    settings = knowledge_settings(tmp_path / "data")
    for test, metric, scale in (("output", "dose", 1), ("field_size_x", "xsize", 10)):
        run = QAEngine(settings, data=path).analyse("TrueBeam2", test, "6 MV FFF")
        assert len(run.results) == 1
        r = run.results[0]
        assert (r.machine, r.test, r.energy, r.n) == ("TrueBeam2", test, "6FFF", 12)
        truth = [x for x in records if x.machine == "TrueBeam2" and x.energy == "6FFF"]
        assert list(r.chart.dates) == [np.datetime64(x.when, "s") for x in truth]
        np.testing.assert_allclose(
            r.chart.values, [float(x.metrics[metric][2]) * scale for x in truth])


def test_temperature_and_pressure_are_stored_as_json(tmp_path):
    records = dqa3.truth(days=1)
    path = dqa3.write_export(tmp_path / "store.csv", records, "atlas")
    store = MeasurementStore(f"sqlite:///{tmp_path / 'qa.sqlite'}")
    report = store.import_file(path)
    assert report.added == len(records) * len(dqa3.METRIC_TESTS)
    with store.engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT source_line, extra FROM measurement")).fetchall()
    by_line = {line: json.loads(extra) for line, extra in stored}
    for record in records:
        assert by_line[record.line]["temperature"] == record.temperature
        assert by_line[record.line]["pressure"] == record.pressure


# --- QATrack+ Test Instance Details reports ---------------------------------------


@pytest.fixture
def report(tmp_path):
    path = tmp_path / "test-instance-details.csv"
    return path, qat.write_report(path, qat.fleet(days=40))


def test_report_reads_as_written(report):
    path, instances = report
    result = read_measurements(path, options=SYDNEY)
    assert result.format == "qatrack"
    assert result.errors == []
    assert result.rows_read == len(instances) == 160
    rows = _by_line_and_test(result.frame)
    for i in instances:
        row = rows[(i.line, i.test)]
        assert row["date"] == pd.Timestamp(i.local)
        assert (row["machine"], row["energy"]) == ("TrueBeam 1", i.energy)
        assert row["value"] == float(f"{i.value:.4g}")
        assert row["unit"] == ("%" if i.test == "output" else "mm")
        # Reference and tolerance are what applied in QATrack+, kept beside the
        # value; the value is not re-read against the reference.
        assert math.isnan(row["raw_value"]) and math.isnan(row["baseline"])
        assert row["extra"]["reference"] == i.reference
        assert row["extra"]["tolerance"] == i.tolerance
        assert row["extra"]["test_name"] == i.test_name
        assert row["extra"]["site"] == "Main Campus"


def test_an_offset_time_lands_on_the_department_date(report):
    path, instances = report
    check = next(i for i in instances if i.written.endswith("+10:00"))
    assert check.written == "2024-05-07 07:19:00+10:00"
    for zone, expected in (("Australia/Sydney", "2024-05-07 07:19"),
                           ("UTC", "2024-05-06 21:19")):
        frame = read_measurements(path, options=ReadOptions(timezone=zone)).frame
        row = frame[(frame["source_line"] == check.line)].iloc[0]
        assert row["date"] == pd.Timestamp(expected)
    # Written in UTC as QATrack+ does, either side of daylight saving's end.
    frame = read_measurements(path, options=SYDNEY).frame
    six = frame[(frame["test"] == "output") & (frame["energy"] == "6X")]
    assert set(six["date"].dt.strftime("%H:%M")) == {"07:19"}
    assert list(six["date"].dt.date) == [i.local.date() for i in instances
                                         if i.test_name == "6 MV Output"]


def test_energies_from_test_names_are_separate_series_and_6mv_drifts(report,
                                                                     tmp_path):
    path, instances = report
    settings = knowledge_settings(tmp_path / "data").model_copy(
        update={"timezone": "Australia/Sydney"})
    run = QAEngine(settings, data=path).analyse("truebeam 1", "output")
    by_energy = {r.energy: r for r in run.results}
    assert set(by_energy) == {"6X", "10X", "6E"}
    for energy, r in by_energy.items():
        truth = [i for i in instances if i.test == "output" and i.energy == energy]
        assert (r.machine, r.test, r.n) == ("TrueBeam 1", "output", 40)
        assert list(r.chart.dates) == [np.datetime64(i.local, "s") for i in truth]
        np.testing.assert_allclose(r.chart.values,
                                   [float(f"{i.value:.4g}") for i in truth])
    assert by_energy["6X"].drift.detected and by_energy["6X"].drift.direction == 1
    assert not by_energy["10X"].drift.detected
    lasers = QAEngine(settings, data=path).analyse("TrueBeam 1", "laser").results
    assert [(r.test, r.energy, r.unit, r.n) for r in lasers] == [
        ("laser", "", "mm", 40)]


def _row(when, name, value, reference="0", skipped="False"):
    return [when, name, "TrueBeam 1", "Main Campus", value, reference,
            "Absolute(-3.000, -2.000, 2.000, 3.000)", skipped, "J. Smith", ""]


def test_unusable_rows_are_reported_with_line_and_column(tmp_path):
    path = tmp_path / "report.csv"
    placed = qat.write_report(path, qat.fleet(days=1), extra_rows=[
        _row("2024-03-29 20:30:00+00:00", "Output", "0.5"),
        _row("2024-03-29 20:31:00+00:00", "Warm-up Interlock", "0.5"),
        _row("2024-03-29 20:32:00+00:00", "10 MV Output", "Skipped", "0", "True"),
        _row("2024-03-29 20:33:00+00:00", "6 MV Output", "Yes"),
        _row("2024-03-29 20:34:00+00:00", "Daily QA3 Results: 6X: Dose (%)",
             "100.2"),
        _row("not a date", "6 MV Output", "0.1"),
    ])
    first = placed[-1].line + 1
    result = read_measurements(path, options=SYDNEY)
    found = {e.line: (e.column, e.reason) for e in result.errors}
    assert sorted(found) == list(range(first, first + 6))
    assert found[first][0] == "Test" and "names no beam energy" in found[first][1]
    assert found[first + 1][0] == "Test" and "not a known test" in found[first + 1][1]
    assert found[first + 2] == ("Value", "skipped in QATrack+: no value; "
                                "not imported")
    assert found[first + 3][0] == "Value" and "not a number" in found[first + 3][1]
    assert found[first + 4][0] == "Test" and "reading" in found[first + 4][1]
    assert found[first + 5][0] == "Work Completed"
    assert set(result.frame["source_line"]) == {i.line for i in placed}


def test_raw_readings_units_and_daily_qa3_test_names(tmp_path):
    path = tmp_path / "report.csv"
    qat.write_report(path, [], extra_rows=[
        _row("2024-05-06 21:19:00+00:00", "6 MV Output (cGy)", "100.5", "100"),
        _row("2024-05-06 21:20:00+00:00", "Laser Alignment (cm)", "0.12"),
        _row("2024-05-06 21:21:00+00:00", "Daily QA3 Results: 10X: Dose Diff (%)",
             "-0.4", "0"),
        _row("2024-05-06 21:22:00+00:00", "Daily QA3 Results: 10X: XSize Diff (cm)",
             "0.03", "0"),
        _row("2024-05-06 21:23:00+00:00", "6 MV FFF Output", "0.2"),
    ])
    result = read_measurements(path, options=SYDNEY)
    assert result.errors == []
    got = [(r.test, r.energy, r.value, r.unit) for r in result.frame.itertuples()]
    assert got == [("output", "6X", pytest.approx(0.5), "%"),
                   ("laser", "", pytest.approx(1.2, abs=1e-12), "mm"),
                   ("output", "10X", -0.4, "%"),
                   ("field_size_x", "10X", pytest.approx(0.3, abs=1e-12), "mm"),
                   ("output", "6FFF", 0.2, "%")]
    raw = result.frame.iloc[0]
    assert (raw["raw_value"], raw["raw_unit"], raw["baseline"]) == (100.5, "cGy",
                                                                    100.0)


def test_a_report_without_its_title_lines_reads_too(tmp_path, report):
    path, instances = report
    lines = path.read_text().splitlines()
    trimmed = tmp_path / "trimmed.csv"
    trimmed.write_text("\n".join(lines[13:]) + "\n")
    result = read_measurements(trimmed, options=SYDNEY)
    assert result.errors == [] and len(result.frame) == len(instances)
    assert set(result.frame["source_line"]) == {i.line - 13 for i in instances}


def test_an_unknown_time_zone_is_refused_with_what_to_do(report):
    path, _ = report
    with pytest.raises(InputError, match="IANA name"):
        read_measurements(path, options=ReadOptions(timezone="Sydney/Australia"))


def test_the_excel_report_reads_its_local_times(tmp_path):
    path = tmp_path / "test-instance-details.xlsx"
    instances = qat.write_workbook(path, qat.fleet(days=3))
    result = read_measurements(path, options=SYDNEY)
    assert result.errors == []
    rows = _by_line_and_test(result.frame)
    for i in instances:
        row = rows[(i.line, i.test)]
        assert row["date"] == pd.Timestamp(i.local)
        assert (row["energy"], row["value"]) == (i.energy, pytest.approx(i.value))
        assert "time_as_written" not in row["extra"]


def test_database_numbers_and_mismatched_beams(tmp_path):
    records = dqa3.truth(days=1)[:4]
    path = dqa3.write_export(tmp_path / "numbers.csv", records, "fdb")
    body = path.read_text().splitlines()
    # 6.00 from the database is 6; "9 MeV" with beam type Photon disagrees.
    body[1] = body[1].replace(",6,Photon,", ",6.00,Photon,")
    body[4] = body[4].replace(",9,Electron,", ",9 MeV,Photon,")
    path.write_text("\n".join(body) + "\n")
    result = read_measurements(path)
    energies = result.frame.groupby("source_line")["energy"].first().to_dict()
    assert energies == {2: "6X", 3: "10X", 4: "6FFF"}
    assert [(e.line, e.column) for e in result.errors] == [(5, "beam_energy")]


def test_a_file_with_its_own_machine_column_is_not_a_qatrack_report(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("Work Completed,Machine,Test,Energy,Value,Unit\n"
                    "2024-05-07 07:19,TrueBeam1,output,6X,0.4,%\n")
    result = read_measurements(path)
    assert result.format == "long"
    assert list(result.frame[["machine", "unit"]].iloc[0]) == ["TrueBeam1", "%"]
