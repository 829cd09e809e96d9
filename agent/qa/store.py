"""The measurement store: SQLAlchemy over SQLite by default, PostgreSQL by URL.

Imports are idempotent and transactional:

* a file whose content (sha256) was imported before adds nothing; an MPC tree
  (:mod:`agent.qa.importers.mpc`) is one import per check folder, likewise;
* a measurement already stored (same series, time and repeat number) with the
  same value is skipped, with a different value it is reported as a conflict
  and the stored value is kept (nothing is overwritten silently);
* everything of one import happens in one transaction: a failure leaves the
  store as it was.

Times are stored as integer seconds since 1970-01-01 (naive local time) so
that a million rows load in a fraction of a second on either database.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import ServiceError
from agent.qa.importers import ImportResult, ReadOptions, RowError, read_measurements
from agent.qa.schema import (
    event_table,
    import_table,
    measurement_table,
    metadata,
    missing_columns,
    series_table,
)
from agent.qa.series import SeriesData, resets_for, series_from_frame  # noqa: F401 (re-exported)


class StoreError(ServiceError):
    """The database cannot be reached or used; the message says what to do."""


@dataclass
class ImportReport:
    """What one import did (an MPC tree: ``checks`` read, ``checks_new`` new)."""

    file: str
    format: str
    rows_read: int
    added: int
    duplicates: int
    events_added: int
    errors: list[RowError] = field(default_factory=list)
    conflicts: list[RowError] = field(default_factory=list)
    already_imported: bool = False
    checks: int = 0
    checks_new: int = 0

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {**{k: getattr(self, k) for k in (
            "file", "format", "rows_read", "added", "duplicates", "events_added",
            "already_imported", "checks", "checks_new")},
            "errors": [e.as_dict() for e in self.errors],
            "conflicts": [e.as_dict() for e in self.conflicts]}

    def summary(self) -> str:
        """One paragraph for people."""
        if self.already_imported:
            return f"{self.file}: already imported (same content); nothing added."
        checks = (f"{self.checks} check folders ({self.checks_new} new), "
                  if self.checks else "")
        return (
            f"{self.file}: {self.format} format, {checks}{self.rows_read} rows "
            f"read; {self.added} measurements added, {self.duplicates} already "
            f"stored, {len(self.conflicts)} conflicting with stored values, "
            f"{len({(e.file, e.line) for e in self.errors})} rows rejected; "
            f"{self.events_added} events added."
        )


def _epoch_seconds(dates: pd.Series) -> np.ndarray:
    return pd.to_datetime(dates).to_numpy(dtype="datetime64[s]").astype(np.int64)


def file_sha256(path: Path) -> str:
    """Content hash of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MeasurementStore:
    """QA measurements in a relational database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (``sqlite:///path.sqlite`` or
        ``postgresql+psycopg://user@127.0.0.1:5432/qa``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        try:
            self.engine: Engine = create_engine(url, future=True)
            metadata.create_all(self.engine)
            self._add_missing_columns()
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the measurement database {_without_password(url)}: "
                f"{str(exc).splitlines()[0]}. Check QA_AGENT_DATABASE_URL and that "
                "the server is running."
            ) from None

    def _add_missing_columns(self) -> None:
        """Bring a store made by an earlier version up to the current tables."""
        inspector = inspect(self.engine)
        existing = {t: {c["name"] for c in inspector.get_columns(t)}
                    for t in inspector.get_table_names()}
        missing = missing_columns(existing)
        if missing:
            with self.engine.begin() as conn:
                for table, column, kind in missing:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} "
                                      f"{kind}"))

    # --- writing --------------------------------------------------------------

    def import_file(self, path: str | Path, machine: str | None = None,
                    options: ReadOptions | None = None) -> ImportReport:
        """Read a file and store its measurements (see the module docstring).

        Raises
        ------
        InputError
            When the file as a whole is unusable.
        """
        path = Path(path)
        digest = file_sha256(path) if path.is_file() else ""
        with self.engine.connect() as conn:
            seen = conn.execute(
                select(import_table.c.id).where(import_table.c.sha256 == digest)
            ).first()
        if seen is not None:
            return ImportReport(str(path), "", 0, 0, 0, 0, already_imported=True)
        result = read_measurements(path, machine=machine, options=options)
        return self.import_result(result, digest)

    def import_result(self, result: ImportResult, digest: str) -> ImportReport:
        """Store an already-read file in one transaction (an MPC tree: each new
        check folder its own import, those imported before left out)."""
        frame = result.frame.copy()
        frame["t"] = _epoch_seconds(frame["date"]) if len(frame) else []
        keys = ["machine", "test", "energy", "unit"]
        if "seq" not in frame:  # repeats keep their file order (MPC numbers its own)
            frame["seq"] = frame.groupby([*keys, "t"], sort=False).cumcount()
        tree = getattr(result, "checks", None) is not None
        report = ImportReport(result.file, result.format, result.rows_read, 0, 0, 0,
                              result.errors)
        with self.engine.begin() as conn:
            frame, fresh = (self._new_checks(conn, result, frame, report) if tree
                            else (frame, None))
            import_id = None if tree else conn.execute(import_table.insert().values(
                file_name=str(result.file)[-500:], sha256=digest or hashlib.sha256(
                    str(result.file).encode()).hexdigest(), format=result.format,
                imported_at=datetime.now(UTC).replace(tzinfo=None), added=0,
                rows_read=result.rows_read, rejected=result.rows_rejected,
            )).inserted_primary_key[0]
            new = frame
            if len(frame):
                ids = self._series_ids(conn, frame[keys].drop_duplicates())
                frame = frame.merge(ids, on=keys, how="left")
                new, dup, conflicts = self._split_existing(conn, frame, result.file)
                report.duplicates, report.conflicts = dup, conflicts
            if fresh:
                new = self._log_checks(conn, result, fresh, new)
            if len(new):
                # Stored series by series, in time order: reading a series
                # (or a block of them) is then a sequential scan.
                new = new.sort_values(["series_id", "t", "seq"], kind="stable")
                conn.execute(measurement_table.insert(), _records(new, import_id))
            report.added = len(new)
            report.events_added = self._add_events(conn, result.events, import_id)
            if import_id is not None:
                conn.execute(import_table.update().where(
                    import_table.c.id == import_id).values(added=report.added))
        return report

    def _new_checks(self, conn, result, frame: pd.DataFrame, report: ImportReport
                    ) -> tuple[pd.DataFrame, list[int]]:
        """Rows and indexes of the checks not imported before (by sha256)."""
        known = set(conn.execute(select(import_table.c.sha256)).scalars())
        fresh = [i for i, c in enumerate(result.checks) if c.sha256 not in known]
        old = {c.file for c in result.checks if c.sha256 in known}
        report.errors = [e for e in report.errors if e.file not in old]
        report.checks, report.checks_new, report.already_imported = (
            len(result.checks), len(fresh), not fresh)
        frame = frame[frame["check"].isin(fresh)]
        return frame.assign(file=[result.checks[i].file for i in frame["check"]]), fresh

    def _log_checks(self, conn, result, fresh: list[int], new: pd.DataFrame
                    ) -> pd.DataFrame:
        """One import_log row per new check folder; ``new`` with its import ids."""
        added, now = new["check"].value_counts(), datetime.now(UTC).replace(tzinfo=None)
        rows = [{"file_name": c.file[-500:], "sha256": c.sha256, "imported_at": now,
                 "format": result.format, "rows_read": c.rows_read,
                 "added": int(added.get(i, 0)), "rejected": c.rejected}
                for i, c in ((i, result.checks[i]) for i in fresh)]
        ids = conn.execute(import_table.insert().returning(
            import_table.c.id, sort_by_parameter_order=True), rows).scalars().all()
        return new.assign(import_id=new["check"].map(dict(zip(fresh, ids,
                                                               strict=True))))

    def _series_ids(self, conn, wanted: pd.DataFrame) -> pd.DataFrame:
        keys = ["machine", "test", "energy", "unit"]
        existing = pd.DataFrame(conn.execute(select(series_table)).fetchall(),
                                columns=["series_id", *keys])
        merged = wanted.merge(existing, on=keys, how="left")
        missing = merged[merged["series_id"].isna()]
        if len(missing):
            conn.execute(series_table.insert(), missing[keys].to_dict("records"))
            return self._series_ids(conn, wanted)
        merged["series_id"] = merged["series_id"].astype(int)
        return merged

    def _split_existing(self, conn, frame: pd.DataFrame, file: str):
        ids = [int(i) for i in frame["series_id"].unique()]
        m = measurement_table.c
        stored = pd.DataFrame(
            conn.execute(
                select(m.series_id, m.t, m.seq, m.value, m.import_id).where(
                    m.series_id.in_(ids),
                    m.t >= int(frame["t"].min()),
                    m.t <= int(frame["t"].max()),
                )
            ).fetchall(),
            columns=["series_id", "t", "seq", "stored_value", "stored_import"],
        )
        if stored.empty:
            return frame, 0, []
        joined = frame.merge(stored, on=["series_id", "t", "seq"], how="left")
        is_stored = joined["stored_value"].notna().to_numpy()
        same = is_stored & np.isclose(
            joined["value"].to_numpy(float),
            joined["stored_value"].to_numpy(float, na_value=np.nan),
            rtol=0, atol=1e-9,
        )
        conflicts = [
            RowError(
                str(getattr(row, "file", file)), int(row.source_line), "value",
                f"{row.machine} {row.test} {row.energy} on {row.date}: value "
                f"{row.value:g} differs from the stored {row.stored_value:g} "
                f"(import #{int(row.stored_import)}); stored value kept",
            )
            for row in joined[is_stored & ~same].itertuples()
        ]
        return joined[~is_stored], int(same.sum()), conflicts

    def _add_events(self, conn, events: pd.DataFrame, import_id: int) -> int:
        if events is None or events.empty:
            return 0
        e = event_table.c
        existing = {
            tuple(r) for r in conn.execute(
                select(e.machine, e.test, e.energy, e.t, e.kind)
            ).fetchall()
        }
        rows = []
        for ev, t in zip(events.itertuples(), _epoch_seconds(events["date"]),
                         strict=True):
            key = (ev.machine, ev.test or "", ev.energy or "", int(t), ev.kind)
            if key in existing:
                continue
            existing.add(key)
            row = dict(zip(("machine", "test", "energy", "t", "kind"), key,
                           strict=True))
            rows.append(row | {"note": ev.note or "", "import_id": import_id})
        if rows:
            conn.execute(event_table.insert(), rows)
        return len(rows)

    def add_event(self, machine: str, date: str, kind: str = "baseline_reset",
                  test: str = "", energy: str = "", note: str = "") -> bool:
        """Record an event such as a baseline reset; False if already there."""
        frame = pd.DataFrame([{"date": pd.Timestamp(date), "machine": machine,
                               "test": test, "energy": energy, "kind": kind,
                               "note": note}])
        with self.engine.begin() as conn:
            return self._add_events(conn, frame, None) == 1

    # --- reading ----------------------------------------------------------------

    def series_index(self) -> pd.DataFrame:
        """All series with their id, counts and date range."""
        m = measurement_table.c
        query = (
            select(
                series_table.c.id.label("series_id"),
                series_table.c.machine,
                series_table.c.test,
                series_table.c.energy,
                series_table.c.unit,
                func.count(m.id).label("n"),
                func.min(m.t).label("first_t"),
                func.max(m.t).label("last_t"),
            )
            .join(measurement_table, m.series_id == series_table.c.id)
            .group_by(series_table.c.id)
            .order_by(series_table.c.machine, series_table.c.test,
                      series_table.c.energy)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).fetchall(), columns=[
                "series_id", "machine", "test", "energy", "unit", "n", "first_t",
                "last_t"])
        for col in ("first_t", "last_t"):
            frame[col.replace("_t", "")] = pd.to_datetime(frame[col], unit="s")
        return frame.drop(columns=["first_t", "last_t"])

    def machines(self) -> list[str]:
        """Names of the machines with stored series (cheap: the series table)."""
        with self.engine.connect() as conn:
            return sorted({r[0] for r in conn.execute(
                select(series_table.c.machine).distinct())})

    def series_ids(self) -> list[int]:
        """Ids of all series (cheap: the series table only)."""
        with self.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(select(series_table.c.id))]

    def events(self, machine: str | None = None) -> pd.DataFrame:
        """Stored events (baseline resets) as a frame."""
        query = select(event_table)
        if machine:
            query = query.where(event_table.c.machine == machine)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        frame = pd.DataFrame(rows, columns=[c.name for c in event_table.columns])
        frame["date"] = pd.to_datetime(frame["t"], unit="s")
        return frame

    def load_series(
        self,
        machine: str | None = None,
        test: str | None = None,
        energy: str | None = None,
        start: str | None = None,
        end: str | None = None,
        series_ids: list[int] | None = None,
    ) -> list[SeriesData]:
        """Load series matching the filters, with their baseline resets.

        Filters compare exactly with canonical names; resolve user spelling
        first (:mod:`agent.vocabulary`).
        """
        index, filtered = self._matching_series(machine, test, energy)
        if series_ids is not None:
            index = index[index["series_id"].isin(series_ids)]
            filtered = True
        if index.empty:
            return []
        conditions = []
        if filtered:
            ids = ",".join(str(int(i)) for i in index["series_id"])
            conditions.append(f"series_id IN ({ids})")
        if start:
            conditions.append(f"t >= {int(pd.Timestamp(start).timestamp())}")
        if end:
            end_ts = pd.Timestamp(end)
            if end_ts == end_ts.normalize():
                end_ts += pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
            conditions.append(f"t <= {int(end_ts.timestamp())}")
        flat = self._measurement_rows(conditions)
        if flat is None:
            return []
        sid = flat[:, 0].astype(np.int64)
        t = flat[:, 1].astype(np.int64)
        values = flat[:, 3]
        starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        stops = np.r_[starts[1:], sid.size]
        resets = self._reset_lookup()
        meta = index.set_index("series_id")
        out = []
        for a, b in zip(starts, stops, strict=True):
            info = meta.loc[int(sid[a])]
            key = (info["machine"], info["test"], info["energy"])
            out.append(SeriesData(
                machine=info["machine"], test=info["test"], energy=info["energy"],
                unit=info["unit"], dates=t[a:b].astype("datetime64[s]"),
                values=values[a:b], resets=resets(*key),
            ))
        return out

    def _matching_series(self, machine: str | None, test: str | None,
                         energy: str | None) -> tuple[pd.DataFrame, bool]:
        """The series table rows matching the names (filtered in SQL)."""
        query = select(series_table)
        c = series_table.c
        if machine:
            query = query.where(c.machine == machine)
        if test:
            query = query.where(c.test == test)
        if energy and energy != "*":  # None, "" and "*": every energy
            query = query.where(c.energy == energy)
        filtered = bool(machine or test or (energy and energy != "*"))
        with self.engine.connect() as conn:
            index = pd.DataFrame(conn.execute(query).fetchall(),
                                 columns=["series_id", "machine", "test", "energy",
                                          "unit"])
        return index, filtered

    def _measurement_rows(self, conditions: list[str]) -> np.ndarray | None:
        """(series_id, t, seq, value) rows, sorted by series, time and order.

        Only integers are formatted into the statement. The raw cursor avoids
        building a million Row objects; the table is scanned in storage order
        and sorted here, which is several times faster than ORDER BY through
        the index (random access to every row).
        """
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT series_id, t, seq, value FROM measurement{where}"
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(sql)
            rows = cursor.fetchall()
        finally:
            raw.close()
        if not rows:
            return None
        flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64,
                           count=4 * len(rows)).reshape(-1, 4)
        del rows
        return flat[np.lexsort((flat[:, 2], flat[:, 1], flat[:, 0]))]

    def _reset_lookup(self):
        events = self.events()
        events = events[events["kind"] == "baseline_reset"]
        return lambda machine, test, energy: resets_for(events, machine, test,
                                                        energy)

    def counts(self) -> dict[str, int]:
        """Row counts of the tables (for reports and tests)."""
        with self.engine.connect() as conn:
            return {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (series_table, measurement_table, event_table, import_table)
            }


def _without_password(url: str) -> str:
    """The URL for messages: a password never appears in them."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: show only what follows the host
        return url.split("@")[-1]


def _extra_json(frame: pd.DataFrame) -> list[str | None]:
    """The ``extra`` column as JSON text (None where a reader kept nothing)."""
    if "extra" not in frame:
        return [None] * len(frame)
    return [json.dumps(v, sort_keys=True, ensure_ascii=False)
            if isinstance(v, dict) and v else None for v in frame["extra"]]


def _records(frame: pd.DataFrame, import_id: int) -> list[dict]:
    def clean(series: pd.Series) -> list:
        return [None if (isinstance(v, float) and v != v) else v
                for v in series.tolist()]

    columns = {
        "series_id": frame["series_id"].astype(int).tolist(),
        "t": frame["t"].astype(np.int64).tolist(),
        "seq": frame["seq"].astype(int).tolist(),
        "value": frame["value"].astype(float).tolist(),
        "raw_value": clean(frame["raw_value"].astype(float)),
        "raw_unit": [v if isinstance(v, str) else None for v in frame["raw_unit"]],
        "baseline": clean(frame["baseline"].astype(float)),
        "source_line": frame["source_line"].astype(int).tolist(),
        "extra": _extra_json(frame),
        "import_id": frame.get("import_id", pd.Series(import_id, index=frame.index)
                               ).astype(int).tolist(),
    }
    return [{k: v[i] for k, v in columns.items()} for i in range(len(frame))]
