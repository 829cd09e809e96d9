"""The shipped corpus (knowledge/corpus/*.md) agrees with the tolerance YAML.

Real files, no mocks. Every row of the shipped tolerance tables
(knowledge/tolerances/*.yaml, without machines.yaml and institutional.yaml) is
mapped, by an explicit entry in ``CORPUS_ROWS`` below, to the Markdown table
row(s) of the corpus that state it. For each mapped line:

- the line names the test (its first cell is exactly the mapped test name) and
  the row's frequency (first frequency word of the second cell);
- each machine-class cell (Non-IMRT, IMRT, SRS/SBRT) states the YAML value in
  the YAML unit: the first quantity with that unit in the cell must equal the
  YAML limit ("2 mm", "1.0 deg", "< 1 mm", "at least 95%"); NA cells hold no
  number; functional cells say "functional" (or the mapped wording);
- rows with ``verified: false`` are marked "unverified ... check the original
  report" on that line, rows with ``verified: true`` are not.

A corpus line that repeats a mapped test name at the same frequency in another
document (the daily imaging rows, the annual MLC rows) is checked too, and
every row of every tolerance table in the corpus must be claimed by some YAML
row, so a changed number on either side fails a test that names the row id.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agent.qa.tolerances import MACHINE_CLASSES, ToleranceTables

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "knowledge" / "corpus"
TOLERANCES = ROOT / "knowledge" / "tolerances"
NOT_TOLERANCE_TABLES = ("machines.yaml", "institutional.yaml")

HEADER = ["Test", "Frequency", "Non-IMRT", "IMRT", "SRS/SBRT", "Notes"]
FREQUENCY_WORDS = ("daily", "weekly", "monthly", "annual")
NA_WORDS = ("NA", "not covered", "not recorded", "not listed")
QUANTITY = re.compile(
    r"(?P<cmp><=|>=|<|>|≤|≥)?\s*(?P<num>\d+(?:\.\d+)?)\s*"
    r"(?P<unit>%|mm|cm/s|cm|deg|MU)(?![A-Za-z0-9/])"
)

# YAML row id -> corpus lines stating its `limits`: (document, test name as
# written in the first cell). The first entry is the row's home document.
CORPUS_ROWS: dict[str, list[tuple[str, str]]] = {
    # TG-142 Table I, daily.
    "tg142-t1-xray-output": [
        ("tg142-daily.md", "X-ray (photon) output constancy, all energies"),
        ("daily-qa-devices.md", "X-ray output constancy (daily QA device)"),
    ],
    "tg142-t1-electron-output": [
        ("tg142-daily.md", "Electron output constancy"),
        ("daily-qa-devices.md", "Electron output constancy (daily QA device)"),
    ],
    "tg142-t1-laser": [("tg142-daily.md", "Laser localization")],
    "tg142-t1-odi": [("tg142-daily.md", "Distance indicator (ODI) at isocenter")],
    "tg142-t1-collimator-size": [
        ("tg142-daily.md", "Collimator size indicator (field size)")
    ],
    "tg142-t1-door-interlock": [
        ("tg142-daily.md", "Door interlock (beam off when the door opens)")
    ],
    "tg142-t1-door-closing-safety": [("tg142-daily.md", "Door closing safety")],
    "tg142-t1-audiovisual-monitors": [("tg142-daily.md", "Audiovisual monitors")],
    "tg142-t1-radiation-area-monitor": [
        ("tg142-daily.md", "Radiation area monitor (if used)")
    ],
    "tg142-t1-beam-on-indicator": [("tg142-daily.md", "Beam-on indicator")],
    "tg142-t1-stereotactic-interlocks": [
        ("tg142-daily.md", "Stereotactic interlocks (lockout)")
    ],
    # TG-142 Table II, monthly.
    "tg142-t2-xray-output": [("tg142-monthly.md", "X-ray (photon) output constancy")],
    "tg142-t2-electron-output": [("tg142-monthly.md", "Electron output constancy")],
    "tg142-t2-backup-monitor-chamber": [
        ("tg142-monthly.md", "Backup monitor chamber constancy")
    ],
    "tg142-t2-dose-rate-output": [
        ("tg142-monthly.md", "Typical dose rate output constancy")
    ],
    "tg142-t2-flatness": [
        ("tg142-monthly.md", "Flatness (photon and electron beam profile constancy)")
    ],
    "tg142-t2-symmetry-inplane": [
        (
            "tg142-monthly.md",
            "In-plane symmetry (photon and electron beam profile constancy)",
        )
    ],
    "tg142-t2-symmetry-crossplane": [
        (
            "tg142-monthly.md",
            "Cross-plane symmetry (photon and electron beam profile constancy)",
        )
    ],
    "tg142-t2-electron-energy": [
        ("tg142-monthly.md", "Electron beam energy constancy")
    ],
    "tg142-t2-electron-energy-mm": [
        ("tg142-monthly.md", "Electron beam energy constancy")
    ],
    "tg142-t2-light-radiation": [
        ("tg142-monthly.md", "Light/radiation field coincidence, symmetric fields")
    ],
    "tg142-t2-light-radiation-asymmetric": [
        ("tg142-monthly.md", "Light/radiation field coincidence, asymmetric fields")
    ],
    "tg142-t2-gantry-angle": [
        ("tg142-monthly.md", "Gantry angle indicators (cardinal angles)")
    ],
    "tg142-t2-collimator-angle": [
        ("tg142-monthly.md", "Collimator angle indicators (cardinal angles)")
    ],
    "tg142-t2-accessory-trays": [("tg142-monthly.md", "Accessory trays")],
    "tg142-t2-jaw": [("tg142-monthly.md", "Jaw position indicators, symmetric")],
    "tg142-t2-jaw-asymmetric": [
        ("tg142-monthly.md", "Jaw position indicators, asymmetric")
    ],
    "tg142-t2-crosshair": [("tg142-monthly.md", "Cross-hair centering (walkout)")],
    "tg142-t2-couch-mm": [
        ("tg142-monthly.md", "Treatment couch position indicators, translation")
    ],
    "tg142-t2-couch-deg": [
        ("tg142-monthly.md", "Treatment couch position indicators, rotation")
    ],
    "tg142-t2-wedge-placement": [("tg142-monthly.md", "Wedge placement accuracy")],
    "tg142-t2-localizing-lasers": [("tg142-monthly.md", "Localizing lasers")],
    "tg142-t2-wedge-tray-latching": [
        ("tg142-monthly.md", "Latching of wedges and trays")
    ],
    "tg142-t2-laser-guard-interlock": [("tg142-monthly.md", "Laser guard interlock")],
    "tg142-t2-gating-output": [
        ("tg142-monthly.md", "Respiratory gating: beam output constancy")
    ],
    # TG-142 Table III, annual.
    "tg142-t3-flatness": [("tg142-annual.md", "X-ray flatness change from baseline")],
    "tg142-t3-symmetry-inplane": [
        ("tg142-annual.md", "X-ray symmetry change from baseline (in-plane)")
    ],
    "tg142-t3-symmetry-crossplane": [
        ("tg142-annual.md", "X-ray symmetry change from baseline (cross-plane)")
    ],
    "tg142-t3-photon-output-calibration": [
        ("tg142-annual.md", "Reference dosimetry (TG-51), photon output calibration")
    ],
    "tg142-t3-electron-output-calibration": [
        (
            "tg142-annual.md",
            "Reference dosimetry (TG-51), electron output calibration",
        )
    ],
    "tg142-t3-photon-beam-quality": [
        ("tg142-annual.md", "Photon beam quality (PDD10 or TMR20,10)")
    ],
    "tg142-t3-electron-r50": [("tg142-annual.md", "Electron beam quality (R50)")],
    "tg142-t3-mu-linearity": [
        ("tg142-annual.md", "X-ray MU linearity (output constancy), 5 MU and above")
    ],
    "tg142-t3-mu-linearity-low-mu": [
        ("tg142-annual.md", "X-ray MU linearity (output constancy), 2-4 MU")
    ],
    "tg142-t3-output-vs-dose-rate": [
        ("tg142-annual.md", "X-ray output constancy vs dose rate")
    ],
    "tg142-t3-output-vs-gantry-angle": [
        ("tg142-annual.md", "X-ray output constancy vs gantry angle")
    ],
    "tg142-t3-radiation-mechanical-isocenter": [
        ("tg142-annual.md", "Coincidence of radiation and mechanical isocenter")
    ],
    "tg142-t3-collimator-rotation-isocenter": [
        ("tg142-annual.md", "Collimator rotation isocenter")
    ],
    "tg142-t3-gantry-rotation-isocenter": [
        ("tg142-annual.md", "Gantry rotation isocenter")
    ],
    "tg142-t3-couch-rotation-isocenter": [
        ("tg142-annual.md", "Couch rotation isocenter")
    ],
    "tg142-t3-output-factor-small": [
        (
            "tg142-annual.md",
            "Output factors, field-size dependence, fields smaller than 4x4 cm2",
        )
    ],
    "tg142-t3-output-factor": [
        (
            "tg142-annual.md",
            "Output factors, field-size dependence, fields 4x4 cm2 and larger",
        )
    ],
    "tg142-t3-wedge-transmission": [
        ("tg142-annual.md", "Physical wedge transmission factor constancy")
    ],
    "tg142-t3-table-sag": [("tg142-annual.md", "Table-top sag")],
    "tg142-t3-table-angle": [("tg142-annual.md", "Table angle")],
    "tg142-t3-table-travel": [("tg142-annual.md", "Table travel, maximum range")],
    "tg142-t3-srs-arc-mu": [
        ("tg142-annual.md", "SRS arc mode (0.5-10 MU/deg), MU setting vs delivered")
    ],
    "tg142-t3-srs-arc-deg": [
        (
            "tg142-annual.md",
            "SRS arc mode (0.5-10 MU/deg), gantry arc setting vs delivered",
        )
    ],
    # TG-142 Table V, MLC (the annual rows are repeated in tg142-annual.md).
    "tg142-t5-picket-fence": [
        ("tg142-mlc-imaging.md", "MLC qualitative test (picket fence)")
    ],
    "tg142-t5-mlc-setting-vs-radiation": [
        ("tg142-mlc-imaging.md", "MLC setting vs radiation field, two patterns")
    ],
    "tg142-t5-leaf-speed": [("tg142-mlc-imaging.md", "MLC leaf travel speed")],
    "tg142-t5-leaf-position-accuracy": [
        (
            "tg142-mlc-imaging.md",
            "MLC leaf position accuracy at the 4 cardinal gantry angles",
        )
    ],
    "tg142-t5-mlc-transmission": [
        ("tg142-mlc-imaging.md", "MLC transmission (leaf and interleaf)"),
        ("tg142-annual.md", "MLC transmission (leaf and interleaf)"),
    ],
    "tg142-t5-leaf-position-repeatability": [
        ("tg142-mlc-imaging.md", "MLC leaf position repeatability"),
        ("tg142-annual.md", "MLC leaf position repeatability"),
    ],
    "tg142-t5-mlc-spoke-shot": [
        ("tg142-mlc-imaging.md", "MLC spoke shot"),
        ("tg142-annual.md", "MLC spoke shot"),
    ],
    "tg142-t5-mlc-rms-error": [
        (
            "tg142-mlc-imaging.md",
            "Step-and-shoot / sliding window leaf position RMS error",
        ),
        ("tg142-annual.md", "Step-and-shoot / sliding window leaf position RMS error"),
    ],
    # TG-142 Table VI, imaging (the daily rows are repeated in tg142-daily.md).
    "tg142-t6-collision-interlocks": [
        (
            "tg142-mlc-imaging.md",
            "Imaging collision interlocks (planar kV, MV and CBCT)",
        ),
        ("tg142-daily.md", "Imaging collision interlocks (planar kV, MV and CBCT)"),
    ],
    "tg142-t6-planar-positioning": [
        ("tg142-mlc-imaging.md", "Imaging positioning/repositioning, planar kV and MV"),
        ("tg142-daily.md", "Imaging positioning/repositioning, planar kV and MV"),
    ],
    "tg142-t6-coordinate-coincidence": [
        (
            "tg142-mlc-imaging.md",
            "Imaging and treatment coordinate coincidence, single gantry angle "
            "(planar kV, MV and CBCT)",
        ),
        (
            "tg142-daily.md",
            "Imaging and treatment coordinate coincidence, single gantry angle "
            "(planar kV, MV and CBCT)",
        ),
    ],
    "tg142-t6-cbct-positioning": [
        ("tg142-mlc-imaging.md", "CBCT positioning/repositioning"),
        ("tg142-daily.md", "CBCT positioning/repositioning"),
    ],
    "tg142-t6-coincidence-cardinal-angles": [
        (
            "tg142-mlc-imaging.md",
            "Imaging and treatment coordinate coincidence at the 4 cardinal angles",
        )
    ],
    "tg142-t6-scaling": [("tg142-mlc-imaging.md", "Imaging scaling")],
    "tg142-t6-cbct-geometric-distortion": [
        ("tg142-mlc-imaging.md", "CBCT geometric distortion")
    ],
    "tg142-t6-spatial-resolution": [
        ("tg142-mlc-imaging.md", "Imaging spatial resolution")
    ],
    "tg142-t6-contrast": [("tg142-mlc-imaging.md", "Imaging contrast")],
    "tg142-t6-hu-constancy": [("tg142-mlc-imaging.md", "CBCT HU constancy")],
    "tg142-t6-uniformity": [("tg142-mlc-imaging.md", "Imaging uniformity")],
    "tg142-t6-noise": [("tg142-mlc-imaging.md", "Imaging noise")],
    # MPPG 9.a Table 1.
    "mppg9a-daily-output": [("mppg9a-srs-sbrt.md", "Output constancy")],
    "mppg9a-daily-lasers": [
        ("mppg9a-srs-sbrt.md", "Lasers (if used for SRS localization)")
    ],
    "mppg9a-daily-collimator-size": [
        ("mppg9a-srs-sbrt.md", "Collimator size indicator")
    ],
    "mppg9a-daily-isocentricity": [
        ("mppg9a-srs-sbrt.md", "Isocentricity (radiation vs mechanical isocenter)")
    ],
    "mppg9a-daily-igrt-positioning": [
        ("mppg9a-srs-sbrt.md", "IGRT positioning/repositioning")
    ],
    "mppg9a-monthly-couch-mm": [
        ("mppg9a-srs-sbrt.md", "Couch position indicators, translation")
    ],
    "mppg9a-monthly-couch-deg": [
        ("mppg9a-srs-sbrt.md", "Couch position indicators, rotation")
    ],
    "mppg9a-monthly-dose-rate-output": [
        ("mppg9a-srs-sbrt.md", "Output at the relevant dose rates")
    ],
    "mppg9a-annual-mu-linearity": [
        ("mppg9a-srs-sbrt.md", "MU linearity, 5 MU and above")
    ],
    "mppg9a-annual-radiation-mechanical-isocenter": [
        ("mppg9a-srs-sbrt.md", "Radiation vs mechanical isocenter, 3D")
    ],
    "mppg9a-annual-output-factor": [
        ("mppg9a-srs-sbrt.md", "Small-field output factors, fields larger than 1 cm")
    ],
    "mppg9a-annual-output-factor-1cm": [
        (
            "mppg9a-srs-sbrt.md",
            "Small-field output factors, fields of 1 cm or smaller",
        )
    ],
    "mppg9a-annual-hidden-target-e2e": [
        ("mppg9a-srs-sbrt.md", "Hidden-target end-to-end test")
    ],
    "mppg9a-annual-dosimetric-e2e": [
        ("mppg9a-srs-sbrt.md", "Dosimetric end-to-end test")
    ],
    # Image QA through pylinac: the image tests' rows (TG-142, MPPG 9.a).
    "tg142-t3-wl-radiation-mechanical-isocenter": [
        ("image-qa-pylinac.md", "Winston-Lutz largest CAX-to-BB distance "
         "(wl_max_cax_bb)")
    ],
    "tg142-t3-wl-gantry-rotation-isocenter": [
        ("image-qa-pylinac.md", "Winston-Lutz gantry isocentre diameter "
         "(wl_gantry_iso_size)")
    ],
    "tg142-t3-wl-collimator-rotation-isocenter": [
        ("image-qa-pylinac.md", "Winston-Lutz collimator isocentre diameter "
         "(wl_collimator_iso_size)")
    ],
    "tg142-t3-wl-couch-rotation-isocenter": [
        ("image-qa-pylinac.md", "Winston-Lutz couch isocentre diameter "
         "(wl_couch_iso_size)")
    ],
    "tg142-t3-starshot-rotation-isocenter": [
        ("image-qa-pylinac.md",
         "Starshot wobble circle diameter (starshot_wobble)")
    ],
    "tg142-t5-picket-fence-leaf-position": [
        ("image-qa-pylinac.md",
         "Picket fence largest leaf error (picket_fence_max_error)")
    ],
    "mppg9a-daily-wl-isocentricity": [
        ("image-qa-pylinac.md",
         "Daily Winston-Lutz largest CAX-to-BB distance (isocentricity)")
    ],
    # TG-218 universal limits: the tolerance limit here, the action limit below.
    "tg218-gamma-pass-rate": [
        ("tg218-imrt-qa.md", "IMRT/VMAT gamma passing rate, tolerance limit")
    ],
}

# YAML row id -> corpus lines stating its `action_limits`.
ACTION_ROWS: dict[str, list[tuple[str, str]]] = {
    "tg218-gamma-pass-rate": [
        ("tg218-imrt-qa.md", "IMRT/VMAT gamma passing rate, action limit")
    ],
}

# YAML row id -> corpus lines stating its `inspection_limits` (none shipped).
INSPECTION_ROWS: dict[str, list[tuple[str, str]]] = {}

LIMIT_SETS = (
    ("limits", CORPUS_ROWS),
    ("action_limits", ACTION_ROWS),
    ("inspection_limits", INSPECTION_ROWS),
)

# Functional rows whose cells state the check in other words than "functional".
FUNCTIONAL_WORDING = {
    "tg142-t5-leaf-speed": "loss above 0.5 cm/s",
    "tg142-t6-spatial-resolution": "baseline",
    "tg142-t6-contrast": "baseline",
    "tg142-t6-hu-constancy": "baseline",
    "tg142-t6-uniformity": "baseline",
    "tg142-t6-noise": "baseline",
}


# --------------------------------------------------------------------------
# Reading the real files
# --------------------------------------------------------------------------


def _yaml_rows() -> list[dict]:
    rows = []
    for path in sorted(TOLERANCES.glob("*.yaml")):
        if path.name in NOT_TOLERANCE_TABLES:
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for raw in data.get("rows") or []:
            rows.append({**raw, "_file": path.name})
    return rows


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _tolerance_lines() -> list[dict]:
    """Every body row of every tolerance table in the corpus."""
    found = []
    for path in sorted(CORPUS.glob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        in_table = False
        for number, line in enumerate(lines, start=1):
            if not line.startswith("|"):
                in_table = False
                continue
            cells = _cells(line)
            if cells == HEADER:
                in_table = True
                continue
            if not in_table or set(line.replace("|", "").strip()) <= {"-", " "}:
                continue
            found.append(
                {"doc": path.name, "line": number, "text": line, "cells": cells}
            )
    return found


YAML_ROWS = _yaml_rows()
YAML_BY_ID = {row["id"]: row for row in YAML_ROWS}
TABLE_LINES = _tolerance_lines()
DOCS = sorted(CORPUS.glob("*.md"))


def _frequency(cell: str) -> str | None:
    """The first frequency word in a Frequency cell."""
    hits = [
        (match.start(), word)
        for word in FREQUENCY_WORDS
        if (match := re.search(rf"\b{word}\b", cell, re.IGNORECASE))
    ]
    return min(hits)[1] if hits else None


def _lines_for(row: dict, targets: list[tuple[str, str]]) -> list[dict]:
    """All corpus table lines naming one of the target tests at the row's
    frequency; asserts each target's home document has exactly one."""
    names = {name for _, name in targets}
    lines = [
        line
        for line in TABLE_LINES
        if line["cells"][0] in names
        and _frequency(line["cells"][1]) == row["frequency"]
    ]
    for doc, name in targets:
        home = [
            line for line in lines if line["doc"] == doc and line["cells"][0] == name
        ]
        assert len(home) == 1, (
            f"{row['id']}: expected one table row '| {name} | {row['frequency']} "
            f"...' in {doc}, found {len(home)}"
        )
    return lines


def _check_cell(row: dict, which: str, cls: str, value, line: dict) -> None:
    cell = line["cells"][2 + MACHINE_CLASSES.index(cls)]
    where = f"{row['id']} [{which}, {cls}] {line['doc']}:{line['line']}: {cell!r}"
    if value is None:
        assert re.match(rf"^({'|'.join(NA_WORDS)})\b", cell), (
            f"{where}: YAML has no value (NA) but the cell does not say "
            f"one of {NA_WORDS}"
        )
        assert not re.search(r"\d", cell), f"{where}: NA in YAML, number in corpus"
        return
    if isinstance(value, str):
        assert value == "functional", f"{where}: unknown YAML text {value!r}"
        wording = FUNCTIONAL_WORDING.get(row["id"], "functional")
        assert wording.lower() in cell.lower(), f"{where}: expected {wording!r}"
        if wording == "functional":
            assert not re.search(r"\d", cell), f"{where}: number in a functional cell"
        return
    quantities = [m for m in QUANTITY.finditer(cell) if m["unit"] == row["unit"]]
    assert quantities, f"{where}: no value in {row['unit']!r} (YAML: {value})"
    first = quantities[0]
    assert float(first["num"]) == float(value), (
        f"{where}: corpus says {first.group(0).strip()!r}, "
        f"YAML says {value} {row['unit']}"
    )
    if row.get("kind") == "minimum":
        assert re.search(r"at least|>=|≥", cell), (
            f"{where}: a minimum (passing rate) must read 'at least ...'"
        )


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


def test_yaml_rows_are_the_rows_the_app_loads():
    loaded = {
        row.id
        for row in ToleranceTables.load(TOLERANCES).rows
        if not row.institutional
    }
    assert loaded == set(YAML_BY_ID)
    assert len(YAML_ROWS) >= 60


def test_every_yaml_row_is_mapped_to_the_corpus():
    assert set(YAML_BY_ID) - set(CORPUS_ROWS) == set(), (
        "add the new rows to CORPUS_ROWS (and write them into the corpus)"
    )
    assert set(CORPUS_ROWS) - set(YAML_BY_ID) == set(), "mapping names unknown rows"
    for which, mapping in LIMIT_SETS[1:]:
        needs = {r["id"] for r in YAML_ROWS if r.get(which)}
        assert needs == set(mapping), f"{which}: map each row's own corpus line"


@pytest.mark.parametrize("row_id", sorted(YAML_BY_ID))
def test_yaml_row_values_appear_in_corpus(row_id):
    row = YAML_BY_ID[row_id]
    checked = 0
    for which, mapping in LIMIT_SETS:
        limits = row.get(which)
        if not limits:
            continue
        assert row_id in mapping, f"{row_id}: no corpus line mapped for {which}"
        for line in _lines_for(row, mapping[row_id]):
            assert len(line["cells"]) == len(HEADER), (
                f"{line['doc']}:{line['line']}: expected {len(HEADER)} cells"
            )
            for cls in MACHINE_CLASSES:
                _check_cell(row, which, cls, limits.get(cls), line)
            checked += 1
    assert checked, row_id


@pytest.mark.parametrize("row_id", sorted(YAML_BY_ID))
def test_unverified_marking_matches_yaml(row_id):
    row = YAML_BY_ID[row_id]
    for which, mapping in LIMIT_SETS:
        if not row.get(which):
            continue
        for line in _lines_for(row, mapping[row_id]):
            text = line["text"].lower()
            where = f"{row_id}: {line['doc']}:{line['line']}"
            if row.get("verified", True):
                assert "unverified" not in text, f"{where}: verified row marked"
            else:
                assert "unverified" in text, f"{where}: not marked unverified"
                assert "check the original report" in text, where


def test_every_corpus_tolerance_row_is_backed_by_yaml():
    claimed = {
        (doc, name, YAML_BY_ID[row_id]["frequency"])
        for _, mapping in LIMIT_SETS
        for row_id, targets in mapping.items()
        if row_id in YAML_BY_ID
        for doc, name in targets
    }
    orphans = [
        f"{line['doc']}:{line['line']}: {line['cells'][0]}"
        for line in TABLE_LINES
        if (line["doc"], line["cells"][0], _frequency(line["cells"][1]))
        not in claimed
    ]
    assert not orphans, "tolerance rows with no YAML row: " + "; ".join(orphans)


def test_tolerance_tables_are_well_formed():
    assert len(TABLE_LINES) >= 80
    for line in TABLE_LINES:
        where = f"{line['doc']}:{line['line']}"
        assert len(line["cells"]) == len(HEADER), where
        assert line["cells"][0], f"{where}: no test name"
        assert _frequency(line["cells"][1]), f"{where}: no frequency"


# --- Sources and the advice to check the original report ------------------

# Per document: strings its Sources section must hold (report, year, table);
# a tuple means any one of them.
TG142 = ("TG-142", "Task Group 142")
SOURCES = {
    "tg142-daily.md": [TG142, "Klein", "2009", "Table I ", "Table VI"],
    "tg142-monthly.md": [TG142, "Klein", "2009", "Table II "],
    "tg142-annual.md": [TG142, "Klein", "2009", "Table III", "Table V"],
    "tg142-mlc-imaging.md": [TG142, "Klein", "2009", "Table V", "Table VI"],
    "tg142-action-levels-and-baselines.md": [TG142, "Klein", "2009", "Tables"],
    "tg218-imrt-qa.md": [
        ("TG-218", "Task Group 218"), "Miften", "2018", "10.1002/mp.12810"],
    "tg198-implementation.md": [
        ("TG-198", "Task Group 198"), "Hanley", "2021", "10.1002/mp.14992"],
    # FACTS.md does not record MPPG 9.a's year: the page must say so.
    "mppg9a-srs-sbrt.md": [
        ("MPPG 9.a", "Practice Guideline 9.a"), "PMC5874865", "Table 1",
        "year is not recorded", TG142, "2009"],
    "spc-primer.md": [
        "Pawlicki", "2005", "Sanghangthum", "2013", "Song", "2022",
        "Nelson", "1984", "Western Electric", "TG-218", "2018",
    ],
    "image-qa-pylinac.md": [
        TG142, "Klein", "2009", "Table III", "Table V",
        ("MPPG 9.a", "Practice Guideline 9.a"), "PMC5874865", "Table 1",
        "pylinac", "3.49.0"],
    "daily-qa-devices.md": [
        "Daily QA 3", "BeamChecker", "myQA Daily", "QUICKCHECK", "QATrack+",
        "Song", "2022", "TG-142", "2009", "Table I",
    ],
}
CHECK_ADVICE = re.compile(
    r"\bcheck\b[^.]*\bvalues?\b[^.]*\bagainst the original "
    r"(report|guideline|publications?)\b",
    re.IGNORECASE,
)


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text,
                      re.MULTILINE | re.DOTALL)
    return " ".join(match.group(1).split()) if match else ""


def test_every_document_is_listed():
    assert {doc.name for doc in DOCS} == set(SOURCES)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_document_names_sources_and_says_check_the_report(doc):
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# "), f"{doc.name}: no title"
    sources = _section(text, "Sources")
    assert sources, f"{doc.name}: no '## Sources' section"
    assert re.search(r"\b(19|20)\d\d\b", sources), f"{doc.name}: no year"
    missing = [
        s
        for s in SOURCES[doc.name]
        if not any(o in sources for o in (s if isinstance(s, tuple) else (s,)))
    ]
    assert not missing, f"{doc.name}: Sources lacks {missing}"
    assert CHECK_ADVICE.search(sources), (
        f"{doc.name}: Sources must advise checking values against the original "
        "report"
    )


# --- Topics the issue asks the corpus to cover -----------------------------

# topic -> (document, terms); a tuple of terms means any one of them.
TOPICS: dict[str, tuple[str, list]] = {
    "tg142-daily-dosimetry": (
        "tg142-daily.md", ["## Daily dosimetry checks", "output constancy"]),
    "tg142-daily-mechanical": (
        "tg142-daily.md", ["## Daily mechanical checks", "ODI", "laser"]),
    "tg142-daily-safety": (
        "tg142-daily.md", ["## Daily safety checks", "interlock", "beam-on"]),
    "tg142-daily-imaging": (
        "tg142-daily.md", ["## Daily imaging checks", "CBCT", "on days"]),
    "tg142-daily-wedges": ("tg142-daily.md", ["wedge"]),
    "tg142-monthly-dosimetry": (
        "tg142-monthly.md", ["## Monthly dosimetry checks", "flatness", "symmetry"]),
    "tg142-monthly-mechanical": (
        "tg142-monthly.md", ["## Monthly mechanical checks", "jaw", "couch"]),
    "tg142-monthly-safety": (
        "tg142-monthly.md", ["## Monthly safety checks", "interlock"]),
    "tg142-monthly-wedges": (
        "tg142-monthly.md", ["Wedge placement accuracy", "Latching of wedges"]),
    "tg142-annual-dosimetry": (
        "tg142-annual.md", ["## Annual dosimetry checks", "TG-51", "MU linearity"]),
    "tg142-annual-mechanical": (
        "tg142-annual.md", ["## Annual mechanical checks", "isocenter"]),
    "tg142-annual-safety": ("tg142-annual.md", ["safety"]),
    "tg142-annual-wedges": (
        "tg142-annual.md", ["## Annual wedge checks", "wedge transmission"]),
    "tg142-mlc": (
        "tg142-mlc-imaging.md",
        ["## MLC tests", "picket fence", "leaf", "spoke shot", "transmission"]),
    "tg142-imaging": (
        "tg142-mlc-imaging.md",
        ["## Imaging tests", "planar kV", "MV", "CBCT", "HU constancy"]),
    "tg142-action-levels": (
        "tg142-action-levels-and-baselines.md",
        ["inspection", "scheduled", "immediate", "1-2 working days",
         "## Three action levels"]),
    "tg142-baselines": (
        "tg142-action-levels-and-baselines.md",
        ["## Baselines", "accepted", "commissioned", "re-established"]),
    "tg142-repeatability": (
        "tg142-action-levels-and-baselines.md", ["2 SD", "three or more"]),
    "tg218-gamma-criteria": (
        "tg218-imrt-qa.md",
        ["3%/2 mm", "global", "absolute dose", "10%", "low-dose threshold"]),
    "tg218-tolerance-and-action-limits": (
        "tg218-imrt-qa.md",
        ["universal tolerance limit", "universal action limit", "95%", "90%"]),
    "tg218-imr": (
        "tg218-imrt-qa.md",
        ["I-MR", "moving range", "d2 = 1.128", "2.66 mR", "3.267 mR",
         "lower control limit"]),
    "tg218-action-limit-formula": (
        "tg218-imrt-qa.md",
        ["## Action limit formula", "dA = beta * sqrt(sigma^2 + (mean - T)^2)",
         "beta = 6", "T - dA / 2", "T = 100%"]),
    "tg218-capability": (
        "tg218-imrt-qa.md",
        ["capability", "Cp = (USL - LSL) / (6 sigma)",
         "Cpk = min(USL - mu, mu - LSL) / (3 sigma)", "Cpm", "capable"]),
    "mppg9a-table": (
        "mppg9a-srs-sbrt.md",
        ["Table 1", "1.5 mm for SBRT", "2 mm for SBRT", "Hidden-target",
         "Dosimetric end-to-end", "fields of 1 cm or smaller"]),
    "tg198-role": (
        "tg198-implementation.md",
        ["TG-198", "implementation", "TG-142", "time and staffing", "sample forms",
         "VMAT", "Winston-Lutz", "BB"]),
    "spc-imr": (
        "spc-primer.md", ["I-MR", "moving range", "d2 = 1.128", "3.267 mR"]),
    "spc-western-electric": (
        "spc-primer.md",
        ["Western Electric", "WE 4", "8 consecutive points on one side"]),
    "spc-nelson": (
        "spc-primer.md",
        ["Nelson", "Nelson 8", "6 points in a row steadily increasing",
         "14 points in a row alternating", "15 points in a row within 1 sigma"]),
    "spc-ewma": (
        "spc-primer.md",
        ["EWMA", "z_i = lambda x_i + (1 - lambda) z_(i-1)", "2.492", "2.703",
         "2.860"]),
    "spc-cusum": (
        "spc-primer.md",
        ["CUSUM", "C+_i = max(0, x_i - mu_0 - K + C+_(i-1))",
         "C-_i = max(0, mu_0 - K - x_i + C-_(i-1))", "k = 0.5", "h = 4"]),
    "spc-arl": (
        "spc-primer.md",
        [("Average run length", "ARL"), "ARL0", "370", "43.9", "28.3", "168",
         "465", "30.4", "19.4", "18.2"]),
    "spc-baselines-and-resets": (
        "spc-primer.md", ["baseline", "reset", "30 to 40", "recalibration"]),
    "spc-when-to-act": (
        "spc-primer.md",
        ["## When to act", "inspection", "scheduled", "immediate", "repeat"]),
    "spc-pawlicki": ("spc-primer.md", ["Pawlicki", "10 MV", "52 days"]),
    "daily-qa-3": (
        "daily-qa-devices.md",
        ["Daily QA 3", "Sncdata.fdb", "qaflat", "axial symmetry",
         "transverse symmetry", "dose (output)", "difference from baseline"]),
    "beamchecker": (
        "daily-qa-devices.md",
        ["BeamChecker", "(max - min) / (max + min)", "(top - bottom) / bottom",
         "(right - left) / left", "temperature and"]),
    "myqa-daily": (
        "daily-qa-devices.md", ["myQA Daily", "125", "5 mm grid", "energy factor"]),
    "quickcheck": ("daily-qa-devices.md", ["QUICKCHECK", "Track-it", "energy"]),
    "image-qa-winston-lutz": (
        "image-qa-pylinac.md",
        ["## What each image analysis reports", "Winston-Lutz", "CAX", "BB",
         "four cardinal gantry angles", "wl_max_cax_bb"]),
    "image-qa-picket-starshot-field": (
        "image-qa-pylinac.md",
        ["picket_fence_max_error", "starshot_wobble", "flatness", "penumbra",
         "## Flatness and symmetry from EPID images", "institutional row"]),
    "image-qa-provenance": (
        "image-qa-pylinac.md",
        ["## Provenance and repeat imports", "sha256", "pylinac version",
         "adds nothing", "--date"]),
    "qatrack": (
        "daily-qa-devices.md",
        ["QATrack+", "action low", "tolerance low", "tolerance high", "action high"]),
}


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_topic_is_covered(topic):
    doc, terms = TOPICS[topic]
    text = (CORPUS / doc).read_text(encoding="utf-8")
    flat = " ".join(text.split()).lower()
    headings = [line.strip().lower() for line in text.splitlines()]
    missing = []
    for term in terms:
        options = term if isinstance(term, tuple) else (term,)
        found = any(
            any(h.startswith(o.lower()) for h in headings)
            if o.startswith("#")
            else " ".join(o.split()).lower() in flat
            for o in options
        )
        if not found:
            missing.append(term)
    assert not missing, f"{topic}: {doc} lacks {missing}"


def test_unverified_capability_threshold_is_marked():
    text = " ".join((CORPUS / "tg218-imrt-qa.md").read_text().split())
    assert re.search(r"capable[^.]*unverified", text, re.IGNORECASE)


def test_daily_qa_devices_summary_covers_each_quantity():
    text = (CORPUS / "daily-qa-devices.md").read_text(encoding="utf-8")
    header = next(
        (line for line in text.splitlines() if line.startswith("| Device |")), ""
    )
    assert _cells(header) == ["Device", "Output", "Flatness", "Symmetry", "Energy"]
    for device in ("Daily QA 3", "BeamChecker Plus", "myQA Daily", "QUICKCHECK"):
        assert re.search(rf"^\| [^|]*{re.escape(device)}", text, re.MULTILINE), device
