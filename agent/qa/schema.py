"""The measurement store's tables (SQLAlchemy Core, SQLite and PostgreSQL).

Times are integer seconds since 1970-01-01 (naive local time); a measurement
is identified by its series, time and repeat number (``seq``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

series_table = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("machine", String(100), nullable=False),
    Column("test", String(40), nullable=False),
    Column("energy", String(16), nullable=False, default=""),
    Column("unit", String(8), nullable=False),
    UniqueConstraint("machine", "test", "energy", "unit", name="uq_series"),
)

import_table = Table(
    "import_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("file_name", String(500), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("imported_at", DateTime, nullable=False),
    Column("format", String(20), nullable=False),
    Column("rows_read", Integer, nullable=False),
    Column("added", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
)

measurement_table = Table(
    "measurement",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("series_id", Integer, ForeignKey("series.id"), nullable=False),
    Column("t", BigInteger, nullable=False),
    Column("seq", Integer, nullable=False, default=0),
    Column("value", Float, nullable=False),
    Column("raw_value", Float),
    Column("raw_unit", String(16)),
    Column("baseline", Float),
    Column("import_id", Integer, ForeignKey("import_log.id")),
    Column("source_line", Integer),
    # What the source system said beside the value, as a JSON object: MPC's
    # threshold and evaluation, QATrack+'s reference and tolerance, Daily QA 3's
    # temperature and pressure. Kept as read, never used to judge the value.
    Column("extra", Text),
    UniqueConstraint("series_id", "t", "seq", name="uq_measurement"),
)

event_table = Table(
    "event",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("machine", String(100), nullable=False),
    Column("test", String(40), nullable=False, default=""),
    Column("energy", String(16), nullable=False, default=""),
    Column("t", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("note", String(500), default=""),
    Column("import_id", Integer, ForeignKey("import_log.id")),
    UniqueConstraint("machine", "test", "energy", "t", "kind", name="uq_event"),
)

#: Columns added after the first release: (table, column, SQL type). A store
#: made before them gets them on opening (``MeasurementStore`` runs
#: :func:`missing_columns` and adds each with ALTER TABLE).
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("measurement", "extra", "TEXT"),
)


def missing_columns(existing: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """The added columns a store's tables lack (``existing``: table -> columns)."""
    return [(t, c, kind) for t, c, kind in ADDED_COLUMNS
            if t in existing and c not in existing[t]]
