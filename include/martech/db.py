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

Statements are separated by a line holding only ``;;`` so that semicolons inside functions and strings
never need parsing. Model files receive named parameters in psycopg2's ``%(name)s`` style.
"""

from __future__ import annotations

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
_STATEMENT_SEP = re.compile(r"^\s*;;\s*$", re.MULTILINE)
_COLUMN_COMMENT = re.compile(r"^\s+([a-z_][a-z0-9_]*)\s+[^\n]*?--\s*(.+?)\s*$", re.MULTILINE)
FUNCTIONS = "functions"
_HEADER = re.compile(r"^--\s*(grain|materialized|depends_on):\s*(.+?)\s*$", re.MULTILINE)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for a PostgreSQL URL (``postgresql://`` is mapped to the psycopg2 driver)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


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
        return [p for p in parts if p and not all(line.startswith("--") for line in p.splitlines())]


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


def migrate(engine: Engine, sql_dir: Path = SQL_DIR) -> list[str]:
    """Create the schemas, every landing table (``materialized: table``), then the shared functions. Idempotent."""
    applied = []
    with engine.begin() as conn:
        # One migration at a time across processes (parallel Airflow tasks may all call this).
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext('martech.migrate'))"))
        for schema in SCHEMAS:
            conn.execute(sa.text(f"create schema if not exists {schema}"))
        for path in sorted(sql_dir.glob("*/*.sql")):
            sf = SqlFile(path)
            if sf.materialized == "table":
                _execute_file(conn, sf, None)
                applied.append(sf.qualified_name)
        for path in sorted(sql_dir.glob(f"*/{FUNCTIONS}/*.sql")):
            sf = SqlFile(path)
            if sf.materialized != FUNCTIONS:
                raise ValueError(f"{path}: a file under {FUNCTIONS}/ must state '-- materialized: {FUNCTIONS}'")
            _execute_file(conn, sf, None)
    return applied


def run_model(engine: Engine, qualified_name: str, params: Mapping[str, Any] | None = None,
              sql_dir: Path = SQL_DIR) -> int:
    """Rebuild one model table in a single transaction; returns its row count afterwards."""
    sf = sql_file(qualified_name, sql_dir)
    if sf.materialized != "model":
        raise ValueError(f"{sf.path} is materialized as {sf.materialized!r}, not 'model'")
    with engine.begin() as conn:
        conn.execute(sa.text(f"create schema if not exists {sf.schema}"))
        _execute_file(conn, sf, params)
        return int(conn.execute(sa.text(f"select count(*) from {sf.qualified_name}")).scalar_one())


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

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        while size < 0 or len(self._pending) < size:
            try:
                self._pending += next(self._chunks).encode("utf-8")
            except StopIteration:
                break
        if size < 0:
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
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
