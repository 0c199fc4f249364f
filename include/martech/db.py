"""Small helpers over SQLAlchemy + psycopg2 for the warehouse.

The SQL that builds tables lives in ``include/sql/<schema>/<table>.sql``, one file per table; functions
the models share live in ``include/sql/<schema>/functions/<name>.sql``. A file starts with a header of
``-- key: value`` lines:

``-- grain:``         what one row is (required for tables; also becomes ``COMMENT ON TABLE``)
``-- materialized:``  ``table`` (landing table: DDL only, applied by :func:`migrate`),
                      ``model`` (DDL + refresh, run by :func:`run_model` with the run's parameters) or
                      ``functions`` (``create or replace function`` only, applied by :func:`migrate`
                      after the landing tables, whose names a function body may use, and so before
                      any model runs)
``-- lineage:``       on a landing table, ``batch`` or ``file``: the columns that say where each row came
                      from are appended to its ``create table`` (``file`` adds the landed file and line
                      before the batch columns), with the index that finds a batch's rows

Statements are separated by a line holding only ``;;`` so that semicolons inside functions and strings
never need parsing. Model files receive named parameters in psycopg2's ``%(name)s`` style.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from martech.paths import SQL_DIR

SCHEMAS = ("raw", "staging", "marts", "audiences", "campaigns", "kpis")
# COMMENT ON SCHEMA, applied by migrate: what each schema holds and who may read it.
SCHEMA_COMMENTS = {
    "raw": "Landing tables: every source row as received (text), batches, watermarks and quarantine. "
           "Holds personal data; no analyst access",
    "staging": "Typed, deduplicated source entities (one row per entity), their row accounting and repairs. "
               "Holds personal data; no analyst access",
    "marts": "Customer models (RFM, segments, lifecycle, CLV, lead scores, affinity); readable by analyst "
             "except the personal columns of customer_360",
    "audiences": "One snapshot per campaign run: members, arms, variants and exclusions. Holds addresses; "
                 "analysts read analyst.audience_members",
    "campaigns": "Send ledger, campaign runs, coupons, suppressions, the do-not-contact list and erasure "
                 "requests. Holds addresses; analysts read analyst.sends",
    "kpis": "Campaign, funnel, revenue, model and data-quality KPIs; readable by analyst",
}
_STATEMENT_SEP = re.compile(r"^\s*;;\s*$", re.MULTILINE)
_COLUMN_COMMENT = re.compile(r"^\s+([a-z_][a-z0-9_]*)\s+[^\n]*?--\s*(.+?)\s*$", re.MULTILINE)
FUNCTIONS = "functions"
_HEADER = re.compile(r"^--\s*(grain|materialized|depends_on|lineage):\s*(.+?)\s*$", re.MULTILINE)
# The lineage columns every landing row carries (martech.ingest writes them), in table order.
_FILE_LINEAGE = (
    "_source_file text not null, -- File the row was read from, relative to its landing folder",
    "_line_no integer not null, -- Line of the row in that file (the header is line 1)",
)
_BATCH_LINEAGE = (
    "_batch_id text not null, -- Ingest batch that landed the row (raw.ingest_batches.batch_id)",
    "_source text not null, -- Source that sent the row, as named in include/sources.yml",
    "_loaded_at timestamptz not null -- When its batch landed; staging reads the rows landed up to its run's cutoff",
)
LINEAGE = {"batch": _BATCH_LINEAGE, "file": _FILE_LINEAGE + _BATCH_LINEAGE}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for a PostgreSQL URL (``postgresql://`` is mapped to the psycopg2 driver)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


@contextmanager
def scratch_database(url: str, name: str) -> Iterator[str]:
    """An empty database ``name`` on the server of ``url`` (a leftover of that name is dropped first),
    dropped with its connections afterwards; yields its URL. For tests and benchmarks."""
    import psycopg2
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = psycopg2.connect(parsed.set(drivername="postgresql", database="postgres")
                             .render_as_string(hide_password=False))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{name}"')
            cur.execute(f'create database "{name}"')
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
        admin.close()


class SqlFile:
    """One table's (or one functions file's) SQL with its parsed header."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        header = dict(_HEADER.findall(self.text))
        self.materialized = header.get("materialized", "")
        if not self.materialized or (self.materialized != FUNCTIONS and "grain" not in header):
            raise ValueError(
                f"{path}: the header must state '-- grain: one row per ...' and "
                "'-- materialized: table|model' before the first statement"
            )
        self.grain = header.get("grain", "")
        self.lineage = header.get("lineage", "")
        if self.lineage and (self.materialized != "table" or self.lineage not in LINEAGE):
            raise ValueError(f"{path}: '-- lineage:' must be one of {', '.join(LINEAGE)}, on a landing table "
                             f"(materialized: table); got {self.lineage!r}")
        self.schema = (path.parent.parent if self.materialized == FUNCTIONS else path.parent).name
        self.table = path.stem

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"

    def column_comments(self) -> dict[str, str]:
        """Trailing ``-- text`` on a column line of the create-table statement documents that column."""
        stmts = self.statements()
        create = "\n".join(line for line in (stmts[0] if stmts else "").splitlines()
                           if not line.startswith("--"))
        if not create.lower().startswith("create table"):
            return {}
        return dict(_COLUMN_COMMENT.findall(create))

    def statements(self) -> list[str]:
        parts = [p.strip() for p in _STATEMENT_SEP.split(self.text)]
        stmts = [p for p in parts if p and not all(line.startswith("--") for line in p.splitlines())]
        if self.lineage:
            stmts[:1] = [self._with_lineage(stmts[0]),
                         f"create index if not exists {self.table}__batch on {self.qualified_name} (_batch_id)"]
        return stmts

    def _with_lineage(self, create: str) -> str:
        """The create-table statement with the lineage columns after its last column."""
        lines = create.splitlines()
        if not lines or lines[-1].strip() != ")":
            raise ValueError(f"{self.path}: with '-- lineage:' the create table must end with a line holding ')'")
        code, sep, comment = lines[-2].partition(" --")
        lines[-2] = f"{code.rstrip()},{sep}{comment}"
        return "\n".join([*lines[:-1], *(f"    {column}" for column in LINEAGE[self.lineage]), lines[-1]])


def sql_file(qualified_name: str, sql_dir: Path = SQL_DIR) -> SqlFile:
    schema, table = qualified_name.split(".", 1)
    path = sql_dir / schema / f"{table}.sql"
    if not path.exists():
        raise FileNotFoundError(f"no SQL file for {qualified_name}: expected {path}")
    return SqlFile(path)


def _dbapi_cursor(conn: Connection) -> Any:
    """The psycopg2 cursor under a SQLAlchemy connection (for COPY and multi-statement files)."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    return raw.cursor()


def _execute_file(conn: Connection, sf: SqlFile, params: Mapping[str, Any] | None) -> None:
    with _dbapi_cursor(conn) as cur:
        for stmt in sf.statements():
            try:
                cur.execute(stmt, dict(params) if params else None)
            except Exception as exc:
                raise RuntimeError(f"{sf.path}: {exc}".strip()) from exc
        if sf.materialized == FUNCTIONS:
            return
        grain = sf.grain.replace("'", "''")
        cur.execute(f"comment on table {sf.qualified_name} is 'Grain: {grain}'")
        for column, text in sf.column_comments().items():
            cur.execute(f"comment on column {sf.qualified_name}.{column} is %s", (text,))


MIGRATIONS_TABLE = "public.martech_schema_migrations"


def schema_version(sql_dir: Path = SQL_DIR) -> str:
    """The schema's version: a digest of every landing-table and functions file, in apply order."""
    digest = hashlib.sha256(repr(sorted(SCHEMA_COMMENTS.items())).encode())
    for path in _landing_files(sql_dir) + _function_files(sql_dir):
        digest.update(str(path.relative_to(sql_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _landing_files(sql_dir: Path) -> list[Path]:
    return [p for p in sorted(sql_dir.glob("*/*.sql")) if SqlFile(p).materialized == "table"]


def _function_files(sql_dir: Path) -> list[Path]:
    return sorted(sql_dir.glob(f"*/{FUNCTIONS}/*.sql"))


def _is_current(conn: Connection, version: str, tables: Sequence[str]) -> bool:
    """This version recorded and every landing table present; name lookups only, no lock on any table."""
    if conn.execute(sa.text("select to_regclass(:t)"), {"t": MIGRATIONS_TABLE}).scalar() is None:
        return False
    return bool(conn.execute(sa.text(
        f"select exists (select 1 from {MIGRATIONS_TABLE} where version = :v)"
        " and (select count(to_regclass(t)) from unnest(cast(:tables as text[])) as t) = :n"),
        {"v": version, "tables": list(tables), "n": len(tables)}).scalar())


def migrate(engine: Engine, sql_dir: Path = SQL_DIR) -> list[str]:
    """Bring the warehouse to the schema of ``sql_dir``: the schemas, every landing table
    (``materialized: table``), then the shared functions; returns the landing tables applied.

    Runs once per schema version (recorded in ``public.martech_schema_migrations``): a warehouse that
    is current returns at once, without DDL and without waiting on any lock, so tasks running in
    parallel never queue behind each other's migration. Otherwise one process applies it (advisory
    lock) while the others wait and then find it current.
    """
    version = schema_version(sql_dir)
    landing = [SqlFile(p) for p in _landing_files(sql_dir)]
    names = [sf.qualified_name for sf in landing]
    with engine.connect() as conn:
        if _is_current(conn, version, names):
            return []
    with engine.begin() as conn:
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext('martech.migrate'))"))
        if _is_current(conn, version, names):
            return []
        for schema in SCHEMAS:
            conn.execute(sa.text(f"create schema if not exists {schema}"))
            conn.execute(sa.text(f"comment on schema {schema} is :c"), {"c": SCHEMA_COMMENTS[schema]})
        for sf in landing:
            _execute_file(conn, sf, None)
        for path in _function_files(sql_dir):
            sf = SqlFile(path)
            if sf.materialized != FUNCTIONS:
                raise ValueError(f"{path}: a file under {FUNCTIONS}/ must state '-- materialized: {FUNCTIONS}'")
            _execute_file(conn, sf, None)
        conn.execute(sa.text(f"create table if not exists {MIGRATIONS_TABLE} ("
                             " version text primary key, applied_at timestamptz not null default now())"))
        conn.execute(sa.text(f"comment on table {MIGRATIONS_TABLE} is 'Grain: one row per schema version applied"
                             " by martech.db.migrate'"))
        conn.execute(sa.text(f"comment on column {MIGRATIONS_TABLE}.version is 'Digest of the landing-table and"
                             " functions SQL files (martech.db.schema_version)'"))
        conn.execute(sa.text(f"comment on column {MIGRATIONS_TABLE}.applied_at is 'When it was applied'"))
        conn.execute(sa.text(f"insert into {MIGRATIONS_TABLE} (version) values (:v) on conflict do nothing"),
                     {"v": version})
    return names


def run_model(engine: Engine, qualified_name: str, params: Mapping[str, Any] | None = None,
              sql_dir: Path = SQL_DIR) -> int:
    """Rebuild one model table in a single transaction; returns its row count afterwards."""
    sf = sql_file(qualified_name, sql_dir)
    if sf.materialized != "model":
        raise ValueError(f"{sf.path} is materialized as {sf.materialized!r}, not 'model'")
    with engine.begin() as conn:
        conn.execute(sa.text(f"create schema if not exists {sf.schema}"))
        _execute_file(conn, sf, params)
        analyze(conn, [sf.qualified_name])
        return int(conn.execute(sa.text(f"select count(*) from {sf.qualified_name}")).scalar_one())


_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


def analyze(target: Engine | Connection, tables: Iterable[str]) -> None:
    """Fresh planner statistics for tables just rebuilt or bulk-loaded.

    A truncate-and-insert leaves the planner with the old table's statistics (or none), and autovacuum
    may take a minute to notice: the next query then plans on a guess, e.g. nested loops over a join
    estimated at 23 rows that returns thousands. Call this after every rebuild and bulk load, before
    anything reads the table. On a connection it runs inside the caller's transaction (the statistics
    commit with the rows); on an engine in a transaction of its own. A table that does not exist
    (yet) is skipped.
    """
    names = list(dict.fromkeys(tables))
    for name in names:
        if not _TABLE_NAME.match(name):
            raise ValueError(f"analyze: {name!r} is not a schema-qualified table name (schema.table)")
    if isinstance(target, Engine):
        with target.begin() as conn:
            analyze(conn, names)
        return
    for name in names:
        if target.execute(sa.text("select to_regclass(:t)"), {"t": name}).scalar() is not None:
            target.exec_driver_sql(f"analyze {name}")


def _csv_field(value: Any) -> str:
    if value is None:
        return ""
    # Every non-null value is quoted, so COPY reads an unquoted empty field as NULL and a quoted ""
    # as an empty string: the two stay distinct, as received.
    return '"' + str(value).replace('"', '""') + '"'


def _rows_to_csv(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    lines: list[str] = []
    size = 0
    for row in rows:
        line = ",".join(_csv_field(v) for v in row)
        lines.append(line)
        size += len(line)
        if size > 1 << 20:
            yield "\n".join(lines) + "\n"
            lines, size = [], 0
    if lines:
        yield "\n".join(lines) + "\n"


class _ChunkReader(io.RawIOBase):
    """A file-like object over an iterator of text chunks, for ``copy_expert``."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self._chunks = chunks
        self._pending = b""
        self._at = 0  # bytes of _pending already read: slicing off the rest each read is quadratic

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        while size < 0 or len(self._pending) - self._at < size:
            try:
                chunk = next(self._chunks).encode("utf-8")
            except StopIteration:
                break
            self._pending, self._at = self._pending[self._at:] + chunk, 0
        end = len(self._pending) if size < 0 else min(len(self._pending), self._at + size)
        out, self._at = self._pending[self._at:end], end
        return out


def copy_rows(conn: Connection, table: str, columns: Sequence[str],
              rows: Iterable[Sequence[Any]]) -> int:
    """Bulk-load rows with ``COPY ... FROM STDIN`` inside the caller's transaction.

    ``None`` becomes NULL; every other value is written with ``str()``. Returns the number of rows.
    """
    counted = _Counter(rows)
    cols = ", ".join(columns)
    with _dbapi_cursor(conn) as cur:
        cur.copy_expert(
            f"copy {table} ({cols}) from stdin with (format csv, null '')",
            _ChunkReader(_rows_to_csv(counted)),
        )
    return counted.n


def copy_frame(conn: Connection, table: str, frame: Any, columns: Sequence[str] | None = None, *,
               decimals: Mapping[str, int] | None = None, chunk_rows: int = 50_000) -> int:
    """Bulk-load a pandas DataFrame like :func:`copy_rows`, formatting a column at a time.

    ``columns`` are the frame's columns to load (all of them by default), named as in ``table``. Missing
    values (None, NaN, NaT, NA) become NULL. Integers are written as integers, floats so that they
    round-trip exactly (``repr``), a column named in ``decimals`` with that many decimals (``f"{x:.2f}"``,
    for numeric(p, s) columns), naive datetimes that are all midnight as ``YYYY-MM-DD`` (else in full),
    zoned ones in full in UTC, and anything else with ``str()``, quoted so that an empty string stays
    distinct from NULL. Returns the number of rows.
    """
    names = list(frame.columns if columns is None else columns)
    places = dict(decimals or {})
    unknown = set(places) - set(names)
    if unknown:
        raise ValueError(f"copy_frame: decimals for column(s) not loaded: {', '.join(sorted(unknown))}")
    data = frame[names]

    def chunks() -> Iterator[str]:
        for start in range(0, len(data), chunk_rows):
            part = data.iloc[start:start + chunk_rows]
            fields = [_frame_column(part[c], places.get(c)) for c in names]
            yield "\n".join(map(",".join, zip(*fields))) + "\n"

    with _dbapi_cursor(conn) as cur:
        cur.copy_expert(
            f"copy {table} ({', '.join(names)}) from stdin with (format csv, null '')",
            _ChunkReader(chunks()),
        )
    return len(data)


def _frame_column(values: Any, places: int | None) -> list[str]:
    """One column of :func:`copy_frame` as CSV fields ('' for NULL)."""
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    missing = values.isna().to_numpy()
    if places is not None:
        floats = values.to_numpy(dtype="float64", na_value=np.nan).tolist()
        spec = f".{places}f"
        return ["" if m else format(x, spec) for x, m in zip(floats, missing)]
    if isinstance(dtype, pd.DatetimeTZDtype):
        utc = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        return ["" if m else s + "+00:00" for s, m in zip(utc.astype(str).tolist(), missing)]
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        kind = "bool" if pd.api.types.is_bool_dtype(dtype) else "int64"
        text = values.to_numpy(dtype=kind, na_value=0).astype(str).tolist()
    elif pd.api.types.is_float_dtype(dtype):
        text = list(map(repr, values.to_numpy(dtype="float64", na_value=np.nan).tolist()))
    elif pd.api.types.is_datetime64_dtype(dtype):
        stamps = values.to_numpy()
        days = stamps.astype("datetime64[D]")
        if (stamps[~missing] == days[~missing]).all():
            stamps = days
        text = stamps.astype(str).tolist()
    else:
        objects = values.astype(object).tolist()
        return ["" if m else '"' + str(v).replace('"', '""') + '"' for v, m in zip(objects, missing)]
    if missing.any():
        return ["" if m else s for s, m in zip(text, missing)]
    return text


class _Counter:
    def __init__(self, rows: Iterable[Sequence[Any]]) -> None:
        self._rows = rows
        self.n = 0

    def __iter__(self) -> Iterator[Sequence[Any]]:
        for row in self._rows:
            self.n += 1
            yield row


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as conn:
        yield conn


def table_count(engine: Engine, qualified_name: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"select count(*) from {qualified_name}")).scalar_one())
