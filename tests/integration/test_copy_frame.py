"""copy_frame loads a DataFrame into exactly the rows copy_rows loads from the same values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from martech.db import copy_frame, copy_rows

pytestmark = pytest.mark.integration

DDL = """create table {s}.t (
    k integer primary key, i bigint, n_i bigint, f double precision, d date, ts timestamptz,
    naive timestamp, money numeric(14, 2), txt text, flag boolean)"""
COLS = ("k", "i", "n_i", "f", "d", "ts", "naive", "money", "txt", "flag")
TEXTS = ['a,b', 'say "hi"', "two\nlines", "back\\slash", "", None, "ünï", "\\N", "NULL", "x"]
FLOATS = [0.1 + 0.2, 1e-300, -0.0, np.nan, 1e16, 123456789.125, 2.5e-7, 1.0, -3.75, 5e-324]
MONEY = [0.125, 0.135, 2.675, 1.005, -0.125, 1e9 + 0.005, 0.0, 99.995, 12.345, -7.0]


def _frame() -> pd.DataFrame:
    days = pd.to_datetime(["2026-01-01", "2025-12-31", None, "2024-02-29", "2026-04-01"] * 2)
    stamps = pd.Series(pd.to_datetime(["2026-01-01T10:11:12.345678+02:00", "2026-03-29T01:30:00+00:00",
                                       None, "2025-06-30T23:59:59.999999-05:00", "2026-01-01T00:00:00Z"] * 2,
                                      utc=True, format="ISO8601")).dt.tz_convert("Europe/Berlin")
    naive = pd.to_datetime(["2026-01-01T10:00:00", None, "2026-01-02T00:00:00.5", "2026-01-03", "2026-01-04"] * 2, format="ISO8601")
    return pd.DataFrame({
        "k": np.arange(10, dtype="int64"),
        "i": np.array([2**62, -(2**62), 0, 1, -1, 7, 2**53 + 1, 10, 11, 12], dtype="int64"),
        "n_i": pd.array([1, None, 3, 4, None, 6, 7, 8, 9, 2**60], dtype="Int64"),
        "f": FLOATS, "d": days, "ts": stamps, "naive": naive, "money": MONEY,
        "txt": pd.Series(TEXTS, dtype=object),
        "flag": [True, False] * 5,
    })


def _old_rows(frame: pd.DataFrame):
    """The row-at-a-time formatting the writers used before copy_frame."""
    for r in frame.itertuples(index=False):
        yield (int(r.k), int(r.i), None if pd.isna(r.n_i) else int(r.n_i),
               None if np.isnan(r.f) else repr(float(r.f)),
               None if pd.isna(r.d) else r.d.date().isoformat(),
               None if pd.isna(r.ts) else r.ts.isoformat(),
               None if pd.isna(r.naive) else r.naive.isoformat(),
               f"{float(r.money):.2f}", r.txt, bool(r.flag))


def _digest(conn, table: str) -> tuple[str, int]:
    row = conn.execute(sa.text(f"select md5(string_agg(t::text, '|' order by k)), count(*) from {table} t")).one()
    return row[0], row[1]


def test_copy_frame_matches_copy_rows(engine, scratch_schema):
    frame = _frame()
    with engine.begin() as conn:
        for name in ("old", "new"):
            conn.execute(sa.text(DDL.format(s=scratch_schema).replace(".t (", f".{name} (")))
        copy_rows(conn, f"{scratch_schema}.old", COLS, _old_rows(frame))
        assert copy_frame(conn, f"{scratch_schema}.new", frame, COLS, decimals={"money": 2}, chunk_rows=3) == 10
        assert _digest(conn, f"{scratch_schema}.new") == _digest(conn, f"{scratch_schema}.old")
        got = conn.execute(sa.text(
            f"select k, txt, txt is null, f, money::text, d, naive from {scratch_schema}.new order by k")).all()
    by_key = {r[0]: r for r in got}
    assert by_key[4][1] == "" and not by_key[4][2]  # empty string stays an empty string
    assert by_key[5][1] is None and by_key[5][2]  # None is NULL
    assert by_key[0][3] == 0.1 + 0.2 and by_key[9][3] == 5e-324
    assert by_key[3][3] is None  # NaN is NULL
    assert [by_key[k][4] for k in (0, 1, 2, 3)] == ["0.12", "0.14", "2.67", "1.00"]  # rounded as f"{x:.2f}"
    assert by_key[2][5] is None and by_key[3][5] == dt.date(2024, 2, 29)
    assert by_key[2][6] == dt.datetime(2026, 1, 2, 0, 0, 0, 500000)


def test_copy_frame_rejects_decimals_for_unloaded_column(engine, scratch_schema):
    with engine.begin() as conn, pytest.raises(ValueError, match="nope"):
        copy_frame(conn, f"{scratch_schema}.t", _frame(), ["k"], decimals={"nope": 2})


def test_chunk_reader_returns_every_byte_in_order():
    from martech.db import _ChunkReader

    chunks = ["abc", "", "défg" * 5000, "h", "ij" * 3]
    whole = "".join(chunks).encode("utf-8")
    for size in (1, 7, 8192, 1 << 20):
        reader = _ChunkReader(iter(chunks))
        parts = []
        while part := reader.read(size):
            parts.append(part)
        got = b"".join(parts)
        assert got == whole
    assert _ChunkReader(iter(chunks)).read() == whole
