"""Incremental SQL ingest and file ingest against a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import functools

import pytest
import sqlalchemy as sa

from martech.db import copy_rows
from martech.ingest import batches
from martech.ingest import landing as ingest

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
D1 = dt.date(2026, 3, 10)


def _make_source(engine, schema: str, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"create table {schema}.customers (customer_id bigint primary key, email text, first_name text,"
            " last_name text, country text, created_at timestamptz, updated_at timestamptz,"
            " deleted_at timestamptz)"))
        base = dt.datetime(2026, 3, 1, tzinfo=UTC)
        # Several rows share one updated_at: the key tiebreak must keep them all.
        rows = [(i, f"c{i}@example.com", f"F{i}", f"L{i}", "DE", base, base + dt.timedelta(hours=i // 3), None)
                for i in range(1, n + 1)]
        copy_rows(conn, f"{schema}.customers",
                  ("customer_id", "email", "first_name", "last_name", "country", "created_at", "updated_at",
                   "deleted_at"), rows)


def _raw_count(engine, batch_like: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("select count(*) from raw.shop_customers where _batch_id like :b"),
                            {"b": batch_like}).scalar_one()


def _pull(engine, schema, run_date, source_name, method="auto"):
    return ingest.ingest_sql_table(engine, engine, ingest.SHOP_TABLES[0], source_schema=schema,
                                   run_date=run_date, loaded_at=ingest.cutoff_for(run_date),
                                   source_name=source_name, chunk_rows=7, method=method)


@pytest.mark.parametrize("method", ["copy", "stream"])
def test_incremental_pull_loads_each_change_once(engine, scratch_schema, method):
    _make_source(engine, scratch_schema, 50)
    src = f"src_{scratch_schema}"
    _pull = functools.partial(globals()["_pull"], method=method)
    first = _pull(engine, scratch_schema, D1, src)
    assert (first.rows_loaded, first.skipped) == (50, False)

    again = _pull(engine, scratch_schema, D1, src)
    assert again.skipped and _raw_count(engine, f"{src}.%") == 50

    nothing = _pull(engine, scratch_schema, D1 + dt.timedelta(days=1), src)
    assert nothing.rows_loaded == 0

    changed_at = dt.datetime.combine(D1 + dt.timedelta(days=1), dt.time(12), tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(f"update {scratch_schema}.customers set updated_at = :t, email = upper(email)"
                             " where customer_id % 10 = 0"), {"t": changed_at})
        # A change on the run date itself belongs to the next run (cutoff = start of run date).
        conn.execute(sa.text(f"update {scratch_schema}.customers set updated_at = :t where customer_id = 1"),
                     {"t": changed_at + dt.timedelta(days=1)})
    later = _pull(engine, scratch_schema, D1 + dt.timedelta(days=2), src)
    assert later.rows_loaded == 5
    final = _pull(engine, scratch_schema, D1 + dt.timedelta(days=3), src)
    assert final.rows_loaded == 1
    assert _raw_count(engine, f"{src}.%") == 56


def test_crash_mid_copy_lands_nothing_and_rerun_loads_once(engine, scratch_schema, monkeypatch):
    _make_source(engine, scratch_schema, 40)
    src = f"crash_{scratch_schema}"
    real_text = ingest._text
    seen = {"n": 0}

    def exploding(value):
        seen["n"] += 1
        if seen["n"] > 8 * 20:  # well inside the stream, after several COPY rows
            raise ConnectionError("source connection lost")
        return real_text(value)

    monkeypatch.setattr(ingest, "_text", exploding)
    with pytest.raises(Exception, match="source connection lost"):
        _pull(engine, scratch_schema, D1, src, method="stream")
    monkeypatch.setattr(ingest, "_text", real_text)

    assert _raw_count(engine, f"{src}.%") == 0
    with engine.connect() as conn:
        state = conn.execute(sa.text("select count(*) from raw.ingest_state where source = :s"),
                             {"s": src}).scalar_one()
    assert state == 0
    result = _pull(engine, scratch_schema, D1, src, method="stream")
    assert result.rows_loaded == 40 and _raw_count(engine, f"{src}.%") == 40


def test_crash_after_copy_before_commit_lands_nothing(engine, scratch_schema, monkeypatch):
    _make_source(engine, scratch_schema, 30)
    src = f"crash2_{scratch_schema}"
    real_record = batches.record_batch

    def crash(*args, **kwargs):
        raise ConnectionError("worker killed after COPY")

    monkeypatch.setattr(batches, "record_batch", crash)
    with pytest.raises(ConnectionError):
        _pull(engine, scratch_schema, D1, src, method="copy")
    monkeypatch.setattr(batches, "record_batch", real_record)
    assert _raw_count(engine, f"{src}.%") == 0
    assert _pull(engine, scratch_schema, D1, src, method="copy").rows_loaded == 30
    assert _raw_count(engine, f"{src}.%") == 30


CRM_HEADER = ",".join(ingest.CRM_CONTACT_COLUMNS)


def _crm_line(i: int, first: str = "Ana") -> str:
    return (f"C{i:05d},c{i}@example.com,{first},Smith,1990-02-28,DE,Europe/Berlin,opted_in,"
            f"2026-01-01T00:00:00+00:00,customer,{i},2025-01-01T00:00:00+00:00,2025-06-01T00:00:00+00:00")


def test_crm_file_loaded_once_and_bad_lines_quarantined(engine, tmp_path):
    folder = tmp_path / "crm"
    folder.mkdir()
    lines = [CRM_HEADER, _crm_line(1), _crm_line(2, first='"Jo, Jr."'), "C00003,broken,line", _crm_line(4)]
    (folder / "contacts_20260310.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    results = ingest.ingest_crm_exports(engine, folder, run_date=D1, loaded_at=ingest.cutoff_for(D1))
    (r,) = results
    assert (r.rows_received, r.rows_loaded, r.rows_quarantined) == (4, 3, 1)
    with engine.connect() as conn:
        q = conn.execute(sa.text("select source_ref, reason from raw.quarantine where batch_id = :b"),
                         {"b": r.batch_id}).one()
        name = conn.execute(sa.text("select first_name from raw.crm_contacts where _batch_id = :b"
                                    " and contact_id = 'C00002'"), {"b": r.batch_id}).scalar_one()
    assert q.source_ref == "contacts_20260310.csv:4" and "expected 13 fields, found 3" in q.reason
    assert name == "Jo, Jr."

    again = ingest.ingest_crm_exports(engine, folder, run_date=D1 + dt.timedelta(days=1),
                                      loaded_at=ingest.cutoff_for(D1))
    assert again[0].skipped


def test_crm_file_with_wrong_header_names_the_file(engine, tmp_path):
    folder = tmp_path / "crm"
    folder.mkdir()
    (folder / "contacts_20260311.csv").write_text("id,mail\n1,a@example.com\n")
    with pytest.raises(ValueError, match=r"contacts_20260311\.csv: header must name the columns contact_id,email"
                                         r".*missing: contact_id,email,.*unknown: id,mail"):
        ingest.ingest_crm_exports(engine, folder, run_date=D1, loaded_at=ingest.cutoff_for(D1))


def test_crm_columns_in_any_order_and_optional_lead_columns(engine, clean_warehouse, tmp_path):
    folder = tmp_path / "crm"
    folder.mkdir()
    cols = [*reversed(ingest.CRM_CONTACT_COLUMNS), "page_views"]
    row = {c: "" for c in cols} | {"contact_id": "C9", "email": "x@example.com", "page_views": "12",
                                   "updated_at": "2026-03-01T00:00:00+00:00"}
    (folder / "contacts_20260311.csv").write_text(",".join(cols) + "\n" + ",".join(row[c] for c in cols) + "\n")
    (result,) = ingest.ingest_crm_exports(engine, folder, run_date=D1, loaded_at=ingest.cutoff_for(D1))
    assert result.rows_loaded == 1
    with engine.connect() as conn:
        got = conn.execute(sa.text("select contact_id, email, page_views, lead_source from raw.crm_contacts")).one()
    assert tuple(got) == ("C9", "x@example.com", "12", None)


def test_copy_keeps_null_empty_and_special_characters_apart(engine, scratch_schema):
    values = [None, "", '"quoted", with comma', "line\nbreak", "tab\there", "ünïcødé", "\\N"]
    with engine.begin() as conn:
        conn.execute(sa.text(f"create table {scratch_schema}.t (i int, v text)"))
        n = copy_rows(conn, f"{scratch_schema}.t", ("i", "v"), list(enumerate(values)))
        got = [r[0] for r in conn.execute(sa.text(f"select v from {scratch_schema}.t order by i"))]
    assert n == len(values) and got == values
