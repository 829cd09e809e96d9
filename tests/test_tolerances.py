"""Tolerance tables: the shipped YAML, look-ups and institutional overrides."""

from __future__ import annotations

import pytest

from agent.qa.tolerances import ToleranceFileError, ToleranceTables


@pytest.mark.parametrize(("machine", "test", "unit", "energy", "freq", "limit"), [
    # TG-142 Table I daily, per class (non-IMRT / IMRT / SRS-SBRT).
    ("Clinac3", "laser", "mm", "", "daily", 2.0),
    ("TrueBeam1", "laser", "mm", "", "daily", 1.5),
    ("TrueBeam2", "laser", "mm", "", "daily", 1.0),
    ("TrueBeam1", "output", "%", "6X", "daily", 3.0),
    ("TrueBeam1", "odi", "mm", "", "daily", 2.0),
    ("TrueBeam2", "field_size", "mm", "", "daily", 1.0),
    # Electron output is weekly 3 % in TG-142: the nearest frequency is used.
    ("TrueBeam1", "output", "%", "9E", "daily", 3.0),
    # Monthly Table II.
    ("TrueBeam1", "output", "%", "6X", "monthly", 2.0),
    ("TrueBeam1", "jaw", "mm", "", "monthly", 2.0),
    ("TrueBeam1", "gantry_angle", "deg", "", "monthly", 1.0),
    ("TrueBeam1", "crosshair", "mm", "", "monthly", 1.0),
    ("TrueBeam2", "couch", "deg", "", "monthly", 0.5),
    ("Clinac3", "couch", "mm", "", "monthly", 2.0),
    # Flatness has no daily row: profile constancy 1 %.
    ("TrueBeam1", "flatness", "%", "6X", "daily", 1.0),
])
def test_lookup_values(tables, machine, test, unit, energy, freq, limit):
    applied = tables.applicable(machine, test, unit, energy, freq)
    assert applied is not None
    assert applied.limit == limit
    assert applied.row.source


def test_levels(tables):
    applied = tables.applicable("TrueBeam1", "output", "%", "6X", "daily")
    assert [applied.level(v) for v in (0.0, 2.99, -3.0, 3.01, -3.5)] == [
        "ok", "ok", "ok", "action", "action"]
    gamma = tables.applicable("TrueBeam1", "gamma_pass_rate", "%", "", "daily")
    assert [gamma.level(v) for v in (99.0, 95.0, 94.9, 90.0, 89.9)] == [
        "ok", "ok", "inspection", "inspection", "action"]


def test_unknown_machine_assumes_default_class(tables):
    applied = tables.applicable("Elekta9", "laser", "mm", "", "daily")
    assert applied.class_assumed and applied.machine_class == "IMRT"
    assert applied.limit == 1.5


def test_unverified_rows_are_marked(tables):
    unverified = [r for r in tables.rows if not r.verified]
    assert unverified, "Table V/VI [R] rows must be present and marked"
    assert all("unverified" in r.source for r in unverified)


def test_every_row_has_a_source_and_all_classes(tables):
    assert len(tables.rows) >= 60
    for row in tables.rows:
        assert row.document and row.table, row.id
        assert set(row.limits) == {"non-IMRT", "IMRT", "SRS/SBRT"}, row.id


def _copy_shipped(tmp_path):
    import shutil

    from agent.config import PROJECT_ROOT

    shipped = tmp_path / "shipped"
    shutil.copytree(PROJECT_ROOT / "knowledge" / "tolerances", shipped)
    return shipped


def test_institutional_override_wins(tmp_path):
    shipped = _copy_shipped(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "institutional.yaml").write_text("""
document: "Our department"
rows:
  - id: dept-daily-output
    table: "QA procedure 4.2"
    frequency: daily
    description: "Daily output, department tolerance"
    test: output
    beam: photon
    unit: "%"
    kind: deviation
    limits: {non-IMRT: 2, IMRT: 2, SRS/SBRT: 2}
    inspection_limits: {non-IMRT: 1.5, IMRT: 1.5, SRS/SBRT: 1.5}
""")
    (data / "machines.yaml").write_text(
        "machines:\n  - name: Halcyon1\n    model: Varian Halcyon\n"
        "    machine_class: IMRT\n    energies: [6FFF]\n")
    tables = ToleranceTables.load(shipped, [data])
    applied = tables.applicable("Halcyon1", "output", "%", "6FFF", "daily")
    assert applied.row.id == "dept-daily-output" and applied.limit == 2.0
    assert not applied.class_assumed
    assert [applied.level(v) for v in (1.0, 1.6, 2.1)] == [
        "ok", "inspection", "action"]


def test_broken_override_names_file_and_row(tmp_path):
    shipped = _copy_shipped(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "institutional.yaml").write_text("""
rows:
  - id: bad-row
    frequency: hourly
    description: x
    unit: "%"
    limits: {IMRT: 1}
""")
    with pytest.raises(ToleranceFileError, match=r"institutional.yaml: row bad-row"):
        ToleranceTables.load(shipped, [data])
    (data / "institutional.yaml").write_text("rows: [unclosed\n")
    with pytest.raises(ToleranceFileError, match="not valid YAML"):
        ToleranceTables.load(shipped, [data])
