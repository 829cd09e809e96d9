"""The one vocabulary: tests and aliases, energies, frequencies, classes, dates.

Everything that reads names from a user (files, the CLI, the chat, the
retrieval tokenizer, the tolerance tables) takes them from here, so that
"Output", "dose" and "6 MV" mean the same series everywhere and a new alias
is added in one place: :func:`canonical_test`, :func:`canonical_energy`,
:func:`canonical_machine`, :data:`FREQUENCY_WORDS`,
:func:`machine_class_in`, :data:`MONTHS`.
"""

from __future__ import annotations

import re
from typing import Literal

#: QA frequencies, shortest interval first (the protocols' words).
FREQUENCIES: tuple[str, ...] = ("daily", "weekly", "monthly", "quarterly", "annual")
Frequency = Literal["daily", "weekly", "monthly", "quarterly", "annual"]
#: Frequencies the tolerance tables use (TG-142 has no quarterly table).
TABLE_FREQUENCIES: tuple[str, ...] = ("daily", "weekly", "monthly", "annual")
#: Plain words for a frequency that the protocols do not use themselves.
FREQUENCY_SYNONYMS: dict[str, str] = {
    "morning": "daily", "everyday": "daily", "yearly": "annual", "annually": "annual",
}
#: Words in a question that name a frequency, in the order they are tried.
FREQUENCY_WORDS: dict[str, str] = {
    "daily": "daily", "morning": "daily", "weekly": "weekly", "monthly": "monthly",
    "month": "monthly", "quarterly": "quarterly", "annual": "annual",
    "annually": "annual", "yearly": "annual",
}
#: Words in a heading or table cell that name a frequency ("Day", "Week").
HEADING_FREQUENCY_WORDS: dict[str, str] = {
    "daily": "daily", "day": "daily", "weekly": "weekly", "week": "weekly",
    "monthly": "monthly", "month": "monthly", "quarterly": "quarterly",
    "annual": "annual", "annually": "annual", "yearly": "annual",
}

#: TG-142's machine classes, as the tolerance tables name them.
MACHINE_CLASSES: tuple[str, ...] = ("non-IMRT", "IMRT", "SRS/SBRT")
MachineClass = Literal["non-IMRT", "IMRT", "SRS/SBRT"]

#: Month names for written dates ("since January 2025").
MONTHS: dict[str, int] = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august",
     "september", "october", "november", "december"], start=1)}
#: Words before a written date that make it the start of a period.
START_WORDS: tuple[str, ...] = ("since", "from", "after", "starting")
#: Words before a written date that make it the end of a period.
END_WORDS: tuple[str, ...] = ("until", "till", "up to", "through", "before", "to")

#: Canonical test names, with a short human description and the default unit.
TESTS: dict[str, tuple[str, str]] = {
    "output": ("Output constancy (deviation from baseline)", "%"),
    "flatness": ("Flatness constancy", "%"),
    "symmetry_inplane": ("Symmetry, in-plane (axial, G-T)", "%"),
    "symmetry_crossplane": ("Symmetry, cross-plane (transverse, A-B)", "%"),
    "energy": ("Beam energy / quality constancy", "%"),
    "laser": ("Laser localization", "mm"),
    "odi": ("Optical distance indicator at isocentre", "mm"),
    "field_size": ("Collimator size indicator / field size", "mm"),
    "jaw": ("Jaw position indicators", "mm"),
    "crosshair": ("Cross-hair centring (walkout)", "mm"),
    "light_radiation": ("Light/radiation field coincidence", "mm"),
    "couch": ("Treatment couch position indicators", "mm"),
    "gantry_angle": ("Gantry angle indicator", "deg"),
    "collimator_angle": ("Collimator angle indicator", "deg"),
    "imaging_coincidence": ("Imaging and treatment coordinate coincidence", "mm"),
    "imaging_positioning": ("Imaging positioning/repositioning", "mm"),
    "gamma_pass_rate": ("Patient-specific IMRT/VMAT QA gamma passing rate", "%"),
    "mlc_position": ("MLC leaf position accuracy", "mm"),
    "isocenter": ("Radiation vs mechanical isocentre (Winston-Lutz)", "mm"),
    "dose_rate_output": ("Output constancy at a given dose rate", "%"),
    "mu_linearity": ("MU linearity", "%"),
    "output_factor": ("Output factor constancy", "%"),
    "wedge": ("Wedge placement / transmission", "mm"),
}

TEST_ALIASES: dict[str, str] = {
    "dose": "output",
    "cax dose": "output",
    "cax": "output",
    "output constancy": "output",
    "xray output": "output",
    "x-ray output": "output",
    "electron output": "output",
    "flat": "flatness",
    "qaflat": "flatness",
    "flatness constancy": "flatness",
    "symmetry": "symmetry_crossplane",
    "axial symmetry": "symmetry_inplane",
    "axialsym": "symmetry_inplane",
    "axsym": "symmetry_inplane",
    "inplane symmetry": "symmetry_inplane",
    "in-plane symmetry": "symmetry_inplane",
    "symmetry inplane": "symmetry_inplane",
    "symmetry gt": "symmetry_inplane",
    "transverse symmetry": "symmetry_crossplane",
    "transsym": "symmetry_crossplane",
    "trsym": "symmetry_crossplane",
    "crossplane symmetry": "symmetry_crossplane",
    "cross-plane symmetry": "symmetry_crossplane",
    "symmetry crossplane": "symmetry_crossplane",
    "symmetry ab": "symmetry_crossplane",
    "energy constancy": "energy",
    "beam quality": "energy",
    "pdd": "energy",
    "lasers": "laser",
    "laser localization": "laser",
    "localizing lasers": "laser",
    "distance indicator": "odi",
    "optical distance indicator": "odi",
    "collimator size": "field_size",
    "field size": "field_size",
    "collimator size indicator": "field_size",
    "jaws": "jaw",
    "jaw position": "jaw",
    "jaw position indicators": "jaw",
    "crosshair centering": "crosshair",
    "cross hair": "crosshair",
    "cross-hair": "crosshair",
    "walkout": "crosshair",
    "light field": "light_radiation",
    "light/radiation": "light_radiation",
    "light radiation coincidence": "light_radiation",
    "light/radiation field coincidence": "light_radiation",
    "couch position": "couch",
    "table": "couch",
    "gantry": "gantry_angle",
    "gantry angle": "gantry_angle",
    "collimator": "collimator_angle",
    "collimator angle": "collimator_angle",
    "imaging coincidence": "imaging_coincidence",
    "kv mv coincidence": "imaging_coincidence",
    "igrt positioning": "imaging_positioning",
    "gamma": "gamma_pass_rate",
    "gamma pass rate": "gamma_pass_rate",
    "passing rate": "gamma_pass_rate",
    "imrt qa": "gamma_pass_rate",
    "mlc": "mlc_position",
    "leaf position": "mlc_position",
    "winston-lutz": "isocenter",
    "winston lutz": "isocenter",
    "wl": "isocenter",
    "isocentre": "isocenter", "isocentricity": "isocenter",
}

# --- Daily QA 3 and QATrack+ (README.md, "Input files") -------------------------
# Sun Nuclear's Daily QA 3 trend data also give the field size and the beam
# centre shift per axis (xsize, ysize, xshift, yshift in QATrack+'s QCPump
# trend queries, qcpump/contrib/pumps/dqa3/queries/*/trend.sql); QATrack+'s
# Daily QA 3 test list gives them in cm (qatrackplus scripts/
# create_dqa3_testlist.py). They are stored in mm, like every length here.
TESTS.update({
    "field_size_x": ("Field size, X (Daily QA 3 X size)", "mm"),
    "field_size_y": ("Field size, Y (Daily QA 3 Y size)", "mm"),
    "beam_shift_x": ("Beam centre shift, X (Daily QA 3 X shift)", "mm"),
    "beam_shift_y": ("Beam centre shift, Y (Daily QA 3 Y shift)", "mm"),
})
TEST_ALIASES.update({
    "xsize": "field_size_x",
    "x size": "field_size_x",
    "ysize": "field_size_y",
    "y size": "field_size_y",
    "xshift": "beam_shift_x",
    "x shift": "beam_shift_x",
    "beam centre shift x": "beam_shift_x",
    "beam center shift x": "beam_shift_x",
    "yshift": "beam_shift_y",
    "y shift": "beam_shift_y",
    "beam centre shift y": "beam_shift_y",
    "beam center shift y": "beam_shift_y",
    # QATrack+ test names ("Laser Alignment", "6 MV Output").
    "laser alignment": "laser",
    "lasers alignment": "laser",
    "output check": "output",
})
#: Tests measured per beam energy: a record of one without an energy cannot
#: be put in a series and is reported (QATrack+ test names such as "Output").
BEAM_TESTS: frozenset[str] = frozenset({
    "output", "flatness", "symmetry_inplane", "symmetry_crossplane", "energy",
    "dose_rate_output", "output_factor", "field_size_x", "field_size_y",
    "beam_shift_x", "beam_shift_y",
})


# --- Varian MPC (Machine Performance Check) ---------------------------------
# MPC's own measures, separate from the generic tests above: MPC's
# BeamOutputChange is its constancy against its own baseline, never merged
# into another instrument's ``output`` series (agent/qa/importers/mpc.py maps
# each Results.csv name to one of these; the jaw and couch names there are
# assumed, as QATrack+'s QCPump does not show them: see that module).
MPC_TESTS: dict[str, tuple[str, str]] = {
    "mpc_output_change": ("MPC beam output change from its baseline", "%"),
    "mpc_uniformity_change": ("MPC beam uniformity change from its baseline", "%"),
    "mpc_beam_center_shift": ("MPC beam centre shift", "mm"),
    "mpc_iso_size": ("MPC isocentre size", "mm"),
    "mpc_iso_mv_offset": ("MPC isocentre MV imager offset", "mm"),
    "mpc_iso_kv_offset": ("MPC isocentre kV imager offset", "mm"),
    "mpc_mlc_max_offset_a": ("MPC MLC bank A, largest leaf offset", "mm"),
    "mpc_mlc_max_offset_b": ("MPC MLC bank B, largest leaf offset", "mm"),
    "mpc_mlc_mean_offset_a": ("MPC MLC bank A, mean leaf offset", "mm"),
    "mpc_mlc_mean_offset_b": ("MPC MLC bank B, mean leaf offset", "mm"),
    "mpc_mlc_backlash_a": ("MPC MLC bank A, largest leaf backlash", "mm"),
    "mpc_mlc_backlash_b": ("MPC MLC bank B, largest leaf backlash", "mm"),
    "mpc_jaw_x1": ("MPC jaw X1 position", "mm"),
    "mpc_jaw_x2": ("MPC jaw X2 position", "mm"),
    "mpc_jaw_y1": ("MPC jaw Y1 position", "mm"),
    "mpc_jaw_y2": ("MPC jaw Y2 position", "mm"),
    "mpc_gantry_absolute": ("MPC gantry absolute angle", "deg"),
    "mpc_gantry_relative": ("MPC gantry relative angle", "deg"),
    "mpc_couch_lat": ("MPC couch lateral", "mm"),
    "mpc_couch_lng": ("MPC couch longitudinal", "mm"),
    "mpc_couch_vrt": ("MPC couch vertical", "mm"),
    "mpc_couch_rtn": ("MPC couch rotation", "deg"),
    "mpc_couch_pitch": ("MPC couch pitch", "deg"),
    "mpc_couch_roll": ("MPC couch roll", "deg"),
}
MPC_ALIASES: dict[str, str] = {
    "mpc output": "mpc_output_change",
    "beamoutputchange": "mpc_output_change",
    "mpc uniformity": "mpc_uniformity_change",
    "beamuniformitychange": "mpc_uniformity_change",
    "mpc beam centre shift": "mpc_beam_center_shift",
    "beamcentershift": "mpc_beam_center_shift",
    "mpc isocenter size": "mpc_iso_size",
    "mpc isocentre size": "mpc_iso_size",
    "isocentersize": "mpc_iso_size",
    "isocentermvoffset": "mpc_iso_mv_offset",
    "isocenterkvoffset": "mpc_iso_kv_offset",
    "mlcmaxoffseta": "mpc_mlc_max_offset_a",
    "mlcmaxoffsetb": "mpc_mlc_max_offset_b",
    "mlcmeanoffseta": "mpc_mlc_mean_offset_a",
    "mlcmeanoffsetb": "mpc_mlc_mean_offset_b",
    "gantryabsolute": "mpc_gantry_absolute",
    "gantryrelative": "mpc_gantry_relative",
}
#: MPC's per-leaf tests, kept only when a caller asks for leaves: bank A or B,
#: leaf number (e.g. ``mpc_mlc_leaf_a12``, ``mpc_mlc_backlash_leaf_b7``).
MPC_LEAF_TEST = re.compile(r"mpc_mlc_(?P<kind>leaf|backlash_leaf)_(?P<bank>[ab])"
                           r"(?P<leaf>\d{1,3})")


def mpc_leaf_test(name: str) -> tuple[str, str] | None:
    """(description, unit) of an MPC per-leaf test name, or None."""
    match = MPC_LEAF_TEST.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        return None
    what = "backlash" if match["kind"] == "backlash_leaf" else "offset"
    return (f"MPC MLC bank {match['bank'].upper()} leaf {int(match['leaf'])} "
            f"{what}", "mm")


class _TestTable(dict):
    """The test table; MPC's per-leaf tests are known by their pattern, not
    listed (a hundred leaves would crowd every list of tests)."""

    def __missing__(self, key: str) -> tuple[str, str]:
        found = mpc_leaf_test(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or mpc_leaf_test(key) is not None

    def get(self, key, default=None):
        """``dict.get``, knowing the per-leaf tests."""
        try:
            return self[key]
        except (KeyError, TypeError):
            return default


TESTS = _TestTable(TESTS | MPC_TESTS)
TEST_ALIASES |= MPC_ALIASES
# --- end of the MPC block ---------------------------------------------------

# --- Image QA through pylinac (agent/qa/imaging): the numbers each analysis stores
IMAGE_TESTS: dict[str, tuple[str, str]] = {
    "wl_max_cax_bb": ("Winston-Lutz largest 2D CAX-to-BB distance", "mm"),
    "wl_median_cax_bb": ("Winston-Lutz median 2D CAX-to-BB distance", "mm"),
    "wl_gantry_iso_size": ("Winston-Lutz gantry isocentre diameter (3D)", "mm"),
    "wl_collimator_iso_size": ("Winston-Lutz collimator isocentre diameter", "mm"),
    "wl_couch_iso_size": ("Winston-Lutz couch isocentre diameter", "mm"),
    "wl_bb_shift": ("Winston-Lutz BB shift to the radiation isocentre", "mm"),
    "picket_fence_max_error": ("Picket fence largest leaf position error", "mm"),
    "picket_fence_median_error": ("Picket fence median leaf position error", "mm"),
    "picket_fence_leaves_passing": ("Picket fence leaf pairs within tolerance", "%"),
    "starshot_wobble": ("Starshot wobble circle diameter", "mm"),
    "field_flatness_x": ("EPID field flatness, cross-plane (x)", "%"),
    "field_flatness_y": ("EPID field flatness, in-plane (y)", "%"),
    "field_symmetry_x": ("EPID field symmetry, cross-plane (x)", "%"),
    "field_symmetry_y": ("EPID field symmetry, in-plane (y)", "%"),
    "field_width_x": ("EPID field size at 50%, cross-plane (x)", "cm"),
    "field_width_y": ("EPID field size at 50%, in-plane (y)", "cm"),
    "field_penumbra_x": ("EPID field penumbra 20-80%, cross-plane (x)", "mm"),
    "field_penumbra_y": ("EPID field penumbra 20-80%, in-plane (y)", "mm"),
}
TESTS.update(IMAGE_TESTS)
TEST_ALIASES.update({
    "wl max": "wl_max_cax_bb", "winston-lutz max": "wl_max_cax_bb",
    "winston lutz max": "wl_max_cax_bb", "max cax to bb": "wl_max_cax_bb",
    "cax to bb": "wl_max_cax_bb", "wl median": "wl_median_cax_bb",
    "median cax to bb": "wl_median_cax_bb", "gantry iso size": "wl_gantry_iso_size",
    "gantry isocentre size": "wl_gantry_iso_size",
    "collimator iso size": "wl_collimator_iso_size",
    "couch iso size": "wl_couch_iso_size", "bb shift": "wl_bb_shift",
    "picketfence": "picket_fence_max_error",
    "picket fence max error": "picket_fence_max_error",
    "picket fence median error": "picket_fence_median_error",
    "starshot": "starshot_wobble", "star shot": "starshot_wobble",
    "wobble": "starshot_wobble", "starshot wobble": "starshot_wobble",
    "epid flatness": "field_flatness_x", "epid symmetry": "field_symmetry_x",
    "penumbra": "field_penumbra_x",
})
#: Field analysis is per beam energy, like the other beam tests.
BEAM_TESTS = BEAM_TESTS | {t for t in IMAGE_TESTS if t.startswith("field_")}
# --- end of the image block -------------------------------------------------


def _key(text: str) -> str:
    """Lower-case, unify separators and collapse spaces."""
    text = text.strip().lower().replace("_", " ")
    text = re.sub(r"[\s]+", " ", text)
    return text


def canonical_test(name: str) -> str | None:
    """Return the canonical test name for ``name`` or None when unknown.

    Parameters
    ----------
    name : str
        A test name as written in a file or a question ("Output", "dose",
        "Axial Symmetry", "symmetry_inplane").

    Returns
    -------
    str or None
        The canonical name (a key of :data:`TESTS`), or None.
    """
    if not isinstance(name, str) or not name.strip():
        return None
    key = _key(name)
    underscored = key.replace(" ", "_")
    if underscored in TESTS:
        return underscored
    if key in TEST_ALIASES:
        return TEST_ALIASES[key]
    # "6X output" style headers: strip a leading energy and try again.
    stripped = _ENERGY_PREFIX.sub("", key).strip()
    if stripped != key:
        return canonical_test(stripped)
    return None


_ENERGY_RE = re.compile(
    r"^\s*(?P<num>\d+(?:\.\d+)?)\s*"
    r"(?P<unit>mv|mev|x|e|fff|mv\s*fff|x\s*fff|fff\s*x|srs)?\s*"
    r"(?P<fff>fff|srs|hdtse)?\s*(?P<kind>photons?|electrons?|x-?rays?)?\s*$"
)
_ENERGY_PREFIX = re.compile(r"^\d+(?:\.\d+)?\s*(mv|mev|x|e)?\s*(fff)?\s+")


def canonical_energy(text: object) -> str | None:
    """Normalise a beam energy to the department notation (6X, 10FFF, 9E).

    Parameters
    ----------
    text : object
        "6 MV", "6x", "6MV FFF", "10 FFF", "9 MeV", "12e", "6 MV photons".
        Empty values (None, "", NaN) mean a test without a beam.

    Returns
    -------
    str or None
        The canonical energy, "" for no energy, or None when not recognised.
    """
    if text is None:
        return ""
    if isinstance(text, float):
        if text != text:  # NaN: an empty cell
            return ""
        text = f"{text:g}"
    value = str(text).strip()
    if not value or value.lower() in {"nan", "none", "-", "n/a", "na"}:
        return ""
    match = _ENERGY_RE.match(value.lower())
    if not match:
        return None
    num = match.group("num")
    if num.endswith(".0"):
        num = num[:-2]
    unit = (match.group("unit") or "").replace(" ", "")
    kind = match.group("kind") or ""
    fff = "fff" in unit or match.group("fff") == "fff"
    if match.group("fff") == "hdtse":  # MPC's total skin electron beam (6eHDTSE)
        return f"{num}HDTSE"
    if unit in {"mev", "e"} or kind.startswith("electron"):
        return f"{num}E"
    if fff:
        return f"{num}FFF"
    if unit == "srs" or match.group("fff") == "srs":
        return f"{num}SRS"
    return f"{num}X"


def beam_type(energy: str) -> str:
    """Return "photon", "electron" or "" (no beam) for a canonical energy."""
    if not energy:
        return ""
    return "electron" if energy.endswith(("E", "HDTSE")) else "photon"


def canonical_machine(name: str, known: list[str] | None = None) -> str:
    """Match a machine name forgivingly against the known names.

    "truebeam 2", "TB2" (when unique) and "TrueBeam2" all give "TrueBeam2" when
    that is known; an unknown name is returned stripped, as written.
    """
    cleaned = str(name).strip()
    if not known:
        return cleaned
    key = re.sub(r"[\s_\-]+", "", cleaned.lower())
    for candidate in known:
        if re.sub(r"[\s_\-]+", "", candidate.lower()) == key:
            return candidate
    # Abbreviations: capitals and digits of a known name ("TB2" for TrueBeam2),
    # accepted only when exactly one known name fits.
    fits = [c for c in known
            if "".join(ch for ch in c if ch.isupper() or ch.isdigit()).lower() == key]
    return fits[0] if len(fits) == 1 else cleaned


#: A beam energy as written in a question: "6X", "6 MV", "10 MV FFF", "9 MeV".
QUESTION_ENERGY = re.compile(r"\b(\d{1,2})\s*(mv\s*fff|fff|mv|mev|x|e)\b")


def alias_patterns() -> list[tuple[re.Pattern[str], str]]:
    """Every test name and alias as a word pattern, longest first.

    An optional plural "s" is allowed ("output factors", "jaws"); aliases
    under three letters are left out except "wl", which is unambiguous.
    """
    names = {k.replace("_", " "): k for k in TESTS} | dict(TEST_ALIASES)
    return [(re.compile(rf"(?<![\w-]){re.escape(alias)}s?(?![\w-])"), names[alias])
            for alias in sorted(names, key=len, reverse=True)
            if len(alias) >= 3 or alias == "wl"]


def energy_in(text: str) -> str | None:
    """The first beam energy written in a text, canonical ("6X"), or None."""
    match = QUESTION_ENERGY.search(text.lower())
    if not match:
        return None
    return canonical_energy(f"{match.group(1)} {match.group(2)}") or None


def frequency_word_in(text: str) -> str | None:
    """The frequency a question names ("each morning" -> daily), or None."""
    low = text.lower()
    for word, frequency in FREQUENCY_WORDS.items():
        if re.search(rf"\b{word}\b", low):
            return frequency
    return None


def beam_in(text: str) -> str | None:
    """"electron" or "photon" when a text names one kind of beam, else None."""
    low = text.lower()
    electron = re.search(r"\belectrons?\b", low)
    photon = re.search(r"\b(photons?|x-?rays?)\b", low)
    if bool(electron) == bool(photon):  # neither, or both ("photon and electron")
        return None
    return "electron" if electron else "photon"


def machine_class_in(text: str) -> str | None:
    """The one machine class a text names (non-IMRT, SRS/SBRT, IMRT), or None.

    "non-IMRT" and "non-SRS" are read before the bare words, so "non-SRS"
    is not SRS/SBRT. A text naming several classes, or asking for each
    class ("per machine class"), names none: every class's value is wanted.
    """
    low = text.lower()
    if re.search(r"\b(each|every|all|per|by)\s+(machine\s+)?class", low):
        return None
    named = []
    if re.search(r"\bnon[- ]?imrt\b", low):
        named.append("non-IMRT")
        low = re.sub(r"\bnon[- ]?imrt\b", " ", low)
    if re.search(r"\b(?<!non-)(?<!non )(srs|sbrt|stereotactic|radiosurgery)\b",
                 low):
        named.append("SRS/SBRT")
    if re.search(r"\bimrt\b", low):
        named.append("IMRT")
    return named[0] if len(named) == 1 else None
