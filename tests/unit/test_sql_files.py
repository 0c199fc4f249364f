"""Every table's SQL file states its grain and materialisation; the runner splits it correctly."""

from __future__ import annotations

from pathlib import Path

import pytest

from martech.db import SqlFile
from martech.paths import SQL_DIR

FILES = sorted(SQL_DIR.glob("*/*.sql"))


def test_there_are_sql_files():
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}.{p.stem}")
def test_header_and_statements(path: Path):
    sf = SqlFile(path)
    assert sf.grain.startswith("one row per"), sf.grain
    assert sf.materialized in {"table", "model"}
    stmts = sf.statements()
    assert stmts, "no statements"
    assert f"{sf.schema}.{sf.table}" in stmts[0], "the first statement must create the table named by the file"
    if sf.materialized == "model":
        assert any(s.lower().lstrip().startswith("insert into") for s in stmts)


def _sql_file(tmp_path: Path, schema: str, text: str) -> Path:
    path = tmp_path / schema / "x.sql"
    path.parent.mkdir()
    path.write_text(text)
    return path


def test_missing_header_is_a_clear_error(tmp_path: Path):
    bad = _sql_file(tmp_path, "marts", "create table marts.x (a int)\n")
    with pytest.raises(ValueError, match=r"x.sql: the header must state '-- grain: one row per"):
        SqlFile(bad)


def test_every_table_is_documented_in_the_data_model():
    doc = (SQL_DIR.parent.parent / "docs" / "data-model.md").read_text(encoding="utf-8")
    missing = [f"{p.parent.name}.{p.stem}" for p in FILES if f"`{p.parent.name}.{p.stem}`" not in doc]
    assert missing == []


FUNCTION_FILES = sorted(SQL_DIR.glob("*/functions/*.sql"))


@pytest.mark.parametrize("path", FUNCTION_FILES, ids=lambda p: f"{p.parent.parent.name}.{p.stem}")
def test_functions_files_hold_functions_of_their_schema_only(path: Path):
    sf = SqlFile(path)
    assert sf.materialized == "functions"
    assert sf.schema == path.parent.parent.name
    stmts = sf.statements()
    assert stmts, "no statements"
    for stmt in stmts:
        body = "\n".join(line for line in stmt.splitlines() if not line.startswith("--")).strip().lower()
        assert body.startswith(f"create or replace function {sf.schema}."), stmt[:80]


def test_staging_parsers_live_outside_the_table_files():
    assert [p.relative_to(SQL_DIR).as_posix() for p in FUNCTION_FILES] == ["staging/functions/accounting.sql",
                                                                          "staging/functions/derived.sql",
                                                                          "staging/functions/parsers.sql"]
    assert not any("create or replace function" in p.read_text(encoding="utf-8").lower() for p in FILES)


def test_lineage_columns_and_batch_index_are_appended(tmp_path: Path):
    sf = SqlFile(_sql_file(tmp_path, "raw", "-- grain: one row per x\n-- materialized: table\n-- lineage: file\n"
                           "create table if not exists raw.x (\n    a text, -- A\n    b text -- B, as received\n)\n"
                           ";;\ncreate index if not exists x__a on raw.x (a)\n"))
    create, index, other = sf.statements()
    assert create.splitlines()[-7:] == [
        "    b text, -- B, as received",
        "    _source_file text not null, -- File the row was read from, relative to its landing folder",
        "    _line_no integer not null, -- Line of the row in that file (the header is line 1)",
        "    _batch_id text not null, -- Ingest batch that landed the row (raw.ingest_batches.batch_id)",
        "    _source text not null, -- Source that sent the row, as named in include/sources.yml",
        "    _loaded_at timestamptz not null -- When its batch landed; staging reads the rows landed up to its"
        " run's cutoff",
        ")"]
    assert index == "create index if not exists x__batch on raw.x (_batch_id)"
    assert other == "create index if not exists x__a on raw.x (a)"
    assert list(sf.column_comments()) == ["a", "b", "_source_file", "_line_no", "_batch_id", "_source", "_loaded_at"]


def test_an_unknown_lineage_is_a_clear_error(tmp_path: Path):
    bad = _sql_file(tmp_path, "raw", "-- grain: one row per x\n-- materialized: table\n-- lineage: api\n"
                                     "create table raw.x (a text)\n")
    with pytest.raises(ValueError, match=r"x.sql: '-- lineage:' must be one of batch, file"):
        SqlFile(bad)
