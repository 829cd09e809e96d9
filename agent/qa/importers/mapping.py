"""Column mapping for exports the readers do not recognise.

A department's own export ("Datum; Gerät; Prüfung; Wert; Einheit") has the
long layout's content under other names. :func:`propose_mapping` looks at the
header and the cells and proposes which column is the date, machine, test,
energy, value and unit, with the reason for each; nothing is imported on a
guess: the proposal is shown (the CLI's message, the Data tab) and the user
confirms it (``qa-agent import FILE --map date=Datum --map value=Wert``, or a
saved profile, ``--profile NAME``). A confirmed :class:`ColumnMapping` renames
the columns before the layout is recognised, so the long reader's checks
apply to every row as usual.

Profiles are JSON files in ``<data_dir>/mappings/<name>.json``, so a
department maps its export once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from agent.qa.importers.records import InputError
from agent.qa.importers.values import known_unit
from agent.vocabulary import canonical_energy, canonical_test

#: The roles a mapping assigns, required ones first.
ROLES = ("date", "machine", "test", "value", "energy", "unit", "baseline", "event")
REQUIRED = ("date", "machine", "test", "value")
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Share of a column's non-empty cells that must fit a role for a proposal.
FIT = 0.8


@dataclass(frozen=True)
class ColumnMapping:
    """Role -> column name of the file (``{"date": "Datum", ...}``)."""

    columns: dict[str, str]

    @classmethod
    def parse(cls, pairs: list[str]) -> ColumnMapping:
        """From ``role=column`` pairs (the CLI's ``--map``).

        Raises
        ------
        InputError
            For a pair without ``=`` or a role that does not exist.
        """
        columns: dict[str, str] = {}
        for pair in pairs:
            role, sep, column = pair.partition("=")
            role, column = role.strip().lower(), column.strip()
            if not sep or not column:
                raise InputError(f"--map {pair!r}: write ROLE=COLUMN, e.g. "
                                 "date=Datum")
            if role not in ROLES:
                raise InputError(f"--map {pair!r}: {role!r} is not a role; use "
                                 + ", ".join(ROLES))
            columns[role] = column
        return cls(columns)

    def apply(self, body: pd.DataFrame, file: str) -> pd.DataFrame:
        """The table with its mapped columns renamed to the long layout's names.

        Raises
        ------
        InputError
            When a mapped column is not in the file, or a required role is
            not mapped and not already present.
        """
        missing = [c for c in self.columns.values() if c not in body.columns]
        if missing:
            raise InputError(f"{file}: the mapping names column(s) "
                             f"{', '.join(map(repr, missing))} that the file does "
                             f"not have; its columns: {', '.join(body.columns)}")
        renamed = body.rename(columns={v: k for k, v in self.columns.items()})
        lacking = [r for r in REQUIRED if r not in renamed.columns]
        if lacking:
            raise InputError(f"{file}: the mapping leaves {', '.join(lacking)} "
                             "unmapped; add --map ROLE=COLUMN for each")
        return renamed

    def save(self, folder: Path, name: str) -> Path:
        """Write the mapping as profile ``name`` in ``folder``; return the path."""
        path = profile_path(folder, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"columns": self.columns}, indent=1) + "\n",
                        encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Path, name: str) -> ColumnMapping:
        """Read profile ``name`` from ``folder``.

        Raises
        ------
        InputError
            When the profile does not exist or is not a mapping.
        """
        path = profile_path(folder, name)
        if not path.is_file():
            known = sorted(p.stem for p in folder.glob("*.json")) if \
                folder.is_dir() else []
            raise InputError(f"no mapping profile {name!r} in {folder}; saved "
                             f"profiles: {', '.join(known) or 'none'}")
        try:
            columns = json.loads(path.read_text(encoding="utf-8"))["columns"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a mapping profile ({exc})") from None
        return cls.parse([f"{k}={v}" for k, v in columns.items()])


def profile_path(folder: Path, name: str) -> Path:
    """Where profile ``name`` lives (the name is checked: no paths)."""
    if not _PROFILE_NAME.match(name):
        raise InputError(f"profile name {name!r}: use letters, digits, '.', '_' "
                         "or '-' (at most 64)")
    return folder / f"{name}.json"


@dataclass
class MappingProposal:
    """A proposed mapping, the reason for each role and what is still open."""

    mapping: ColumnMapping
    reasons: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every required role has a column."""
        return not self.unmapped

    def as_options(self) -> str:
        """The proposal as ``--map`` options to confirm it on the command line."""
        return " ".join(f"--map '{r}={c}'" for r, c in self.mapping.columns.items())

    def text(self) -> str:
        """One line per role: which column and why."""
        lines = [f"{role} = {column!r} ({self.reasons[role]})"
                 for role, column in self.mapping.columns.items()]
        lines += [f"{role}: no column fits" for role in self.unmapped]
        return "; ".join(lines)


def _share(cells: pd.Series, fits) -> float:
    values = [c for c in cells.astype(str).str.strip() if c and c.lower() != "nan"]
    if not values:
        return 0.0
    return sum(1 for v in values if fits(v)) / len(values)


def _is_date(text: str) -> bool:
    if not re.search(r"\d{1,4}[-./]\d{1,2}[-./]\d{1,4}", text):
        return False
    try:
        pd.Timestamp(text)
    except ValueError:
        return bool(re.match(r"^\d{1,2}[./]\d{1,2}[./]\d{4}", text))
    return True


def _is_number(text: str) -> bool:
    return re.fullmatch(r"[-+]?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?", text) is not None


#: How each role is recognised from a column's cells, in the order tried.
_CONTENT = (
    ("date", _is_date, "its cells are dates"),
    ("value", _is_number, "its cells are numbers"),
    ("unit", known_unit, "its cells are units"),
    ("energy", lambda t: bool(canonical_energy(t)), "its cells are beam energies"),
    ("test", lambda t: canonical_test(t) is not None, "its cells are test names"),
)


def propose_mapping(body: pd.DataFrame) -> MappingProposal:
    """Propose which column holds each role, from the header and the cells.

    A column is proposed for a role when at least :data:`FIT` of its
    non-empty cells fit it (dates, numbers, units, energies, test names); the
    machine is the remaining text column with the fewest distinct names. The
    proposal is advice for the user to confirm, never applied by itself.
    """
    taken: set[str] = set()
    columns: dict[str, str] = {}
    reasons: dict[str, str] = {}
    sample = body.head(200)
    for role, fits, why in _CONTENT:
        scored = [(_share(sample[c], fits), c) for c in sample.columns
                  if c not in taken]
        best = max(scored, default=(0.0, ""))
        if best[0] >= FIT:
            columns[role], reasons[role] = best[1], f"{why}: {best[0]:.0%}"
            taken.add(best[1])
    text_columns = [c for c in sample.columns if c not in taken
                    and _share(sample[c], lambda t: not _is_number(t)) >= FIT]
    if text_columns:
        machine = min(text_columns, key=lambda c: sample[c].nunique())
        columns["machine"] = machine
        reasons["machine"] = (f"a text column with {sample[machine].nunique()} "
                              "distinct name(s)")
    ordered = {r: columns[r] for r in ROLES if r in columns}
    return MappingProposal(ColumnMapping(ordered),
                           {r: reasons[r] for r in ordered},
                           [r for r in REQUIRED if r not in ordered])


def proposal_for(path: Path) -> MappingProposal | None:
    """A proposal for a text or workbook file the readers did not recognise.

    The first non-empty row is taken as the header (read as text, the first
    200 rows; a workbook's first sheet). None when the file cannot be read
    as a table at all.
    """
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            body = pd.read_excel(path, dtype=str, nrows=200).fillna("")
        else:
            body = pd.read_csv(path, sep=None, engine="python", dtype=str,
                               nrows=200, keep_default_na=False,
                               encoding_errors="replace")
    except Exception:  # advice only: the reader's own error stands
        # A damaged file fails in many ways (zip, XML, zlib, csv); the reader
        # has already said why, and a proposal is only offered on top of it.
        return None
    body.columns = [str(c).strip() for c in body.columns]
    return propose_mapping(body) if len(body.columns) >= 2 and len(body) else None


__all__ = ["REQUIRED", "ROLES", "ColumnMapping", "MappingProposal", "profile_path",
           "proposal_for", "propose_mapping"]
