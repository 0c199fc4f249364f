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


def test_missing_header_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "marts" / "x.sql"
    bad.parent.mkdir()
    bad.write_text("create table marts.x (a int)\n")
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
