"""The measurement store on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.exc import IntegrityError

from agent.qa.importers import InputError
from agent.qa.store import MeasurementStore

CSV = """date,machine,test,energy,value,unit,baseline,event
2024-01-02,TrueBeam1,output,6X,0.40,%,,
2024-01-02 08:00,TrueBeam1,output,6X,0.45,%,,
2024-01-03,TrueBeam1,output,6X,100.5,cGy,100,
2024-01-03,TrueBeam1,laser,,0.6,mm,,
2024-01-04,TrueBeam1,output,6X,oops,%,,
2024-01-05,TrueBeam1,,,,,,baseline_reset
2024-01-05,TrueBeam1,output,10X,-0.2,%,,
"""


def _write(tmp_path, text, name="qa.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_import_counts_and_values(store_url, tmp_path):
    store = MeasurementStore(store_url)
    report = store.import_file(_write(tmp_path, CSV))
    assert report.added == 5
    assert report.events_added == 1
    assert [(e.line, e.column) for e in report.errors] == [(6, "value")]
    assert store.counts() == {"series": 3, "measurement": 5, "event": 1,
                              "import_log": 1}
    series = {s.key: s for s in store.load_series()}
    out = series[("TrueBeam1", "output", "6X")]
    # Two readings on one day (at their own times) are both kept; the raw cGy reading
    # against its 100 cGy baseline became +0.5 %.
    np.testing.assert_allclose(out.values, [0.40, 0.45, 0.5])
    assert str(out.dates[0]) == "2024-01-02T00:00:00"
    assert [str(r)[:10] for r in out.resets] == ["2024-01-05"]


def test_same_file_twice_adds_nothing(store_url, tmp_path):
    store = MeasurementStore(store_url)
    path = _write(tmp_path, CSV)
    store.import_file(path)
    before = store.counts()
    again = store.import_file(path)
    assert again.already_imported and again.added == 0
    assert store.counts() == before


def test_overlapping_export_adds_only_new_rows_and_reports_conflicts(
    store_url, tmp_path
):
    store = MeasurementStore(store_url)
    store.import_file(_write(tmp_path, CSV))
    overlap = (
        "date,machine,test,energy,value,unit\n"
        "2024-01-02,TrueBeam1,output,6X,0.40,%\n"  # same as stored
        "2024-01-03,TrueBeam1,laser,,0.9,mm\n"  # differs from stored 0.6
        "2024-01-08,TrueBeam1,laser,,0.1,mm\n"  # new
    )
    report = store.import_file(_write(tmp_path, overlap, "second.csv"))
    assert (report.added, report.duplicates) == (1, 1)
    assert len(report.conflicts) == 1
    conflict = report.conflicts[0]
    assert conflict.line == 3 and "stored 0.6" in conflict.reason
    laser = {s.key: s for s in store.load_series()}[("TrueBeam1", "laser", "")]
    np.testing.assert_allclose(laser.values, [0.6, 0.1])  # stored value kept


def test_failed_import_leaves_store_unchanged(store_url, tmp_path, monkeypatch):
    store = MeasurementStore(store_url)
    store.import_file(_write(tmp_path, CSV))
    before = store.counts()
    # Make the insert fail half way, after the series and log rows were written:
    # the last record gets the key of the first one.
    import agent.qa.store as store_module

    original = store_module._records

    def duplicate_last(frame, import_id):
        records = original(frame, import_id)
        for key in ("series_id", "t", "seq"):
            records[-1][key] = records[0][key]
        return records

    monkeypatch.setattr(store_module, "_records", duplicate_last)
    new = ("date,machine,test,energy,value,unit\n"
           "2024-02-01,TrueBeam2,odi,,0.1,mm\n"
           "2024-02-02,TrueBeam2,odi,,0.2,mm\n")
    with pytest.raises(IntegrityError):
        store.import_file(_write(tmp_path, new, "new.csv"))
    assert store.counts() == before


def test_unusable_file_is_an_input_error_and_adds_nothing(store_url, tmp_path):
    store = MeasurementStore(store_url)
    bad = _write(tmp_path, "date,machine,test,value,unit\n2024-01-01,TB,zzz,1,%\n")
    with pytest.raises(InputError, match="no usable measurement"):
        store.import_file(bad)
    assert store.counts()["measurement"] == 0


def test_filters_and_date_range(store_url, tmp_path):
    store = MeasurementStore(store_url)
    store.import_file(_write(tmp_path, CSV))
    only = store.load_series(machine="TrueBeam1", test="output", energy="6X",
                             start="2024-01-03", end="2024-01-03")
    assert len(only) == 1
    np.testing.assert_allclose(only[0].values, [0.5])
    assert store.load_series(machine="Nobody") == []


def test_inventory_of_series_on_hand(store_url, tmp_path):
    store = MeasurementStore(store_url)
    store.import_file(_write(tmp_path, CSV))
    index = store.series_index()
    rows = {(r.machine, r.test, r.energy): (r.n, str(r.first.date()),
                                            str(r.last.date()))
            for r in index.itertuples()}
    assert rows == {
        ("TrueBeam1", "output", "6X"): (3, "2024-01-02", "2024-01-03"),
        ("TrueBeam1", "laser", ""): (1, "2024-01-03", "2024-01-03"),
        ("TrueBeam1", "output", "10X"): (1, "2024-01-05", "2024-01-05"),
    }


def test_a_store_from_before_the_extra_column_is_brought_up_to_date(store_url,
                                                                     tmp_path):
    from sqlalchemy import create_engine, inspect, text

    # The measurement table as the first release made it: no 'extra' column.
    old = create_engine(store_url)
    key = ("BIGSERIAL PRIMARY KEY" if old.dialect.name == "postgresql"
           else "INTEGER PRIMARY KEY")
    with old.begin() as conn:
        conn.execute(text(
            f"CREATE TABLE measurement (id {key}, series_id INTEGER "
            "NOT NULL, t BIGINT NOT NULL, seq INTEGER NOT NULL, value FLOAT NOT "
            "NULL, raw_value FLOAT, raw_unit VARCHAR(16), baseline FLOAT, "
            "import_id INTEGER, source_line INTEGER)"))
    old.dispose()
    store = MeasurementStore(store_url)
    columns = {c["name"] for c in inspect(store.engine).get_columns("measurement")}
    assert "extra" in columns
    assert store.import_file(_write(tmp_path, CSV)).added == 5
    with store.engine.connect() as conn:
        extras = conn.execute(text("SELECT extra FROM measurement")).scalars().all()
    assert extras == [None] * 5  # a long CSV says nothing beside its values
    MeasurementStore(store_url)  # opening again changes nothing
