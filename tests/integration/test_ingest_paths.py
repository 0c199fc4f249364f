"""The three ways shop rows travel into raw (INSERT ... SELECT in the warehouse's own database, COPY
streamed between two PostgreSQL servers, a cursor for any other source) land the same rows and text."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from martech.db import make_engine
from martech.ingest import batches
from martech.ingest import landing as ingest

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
D1 = dt.date(2026, 3, 10)
ORDERS = next(t for t in ingest.SHOP_TABLES if t.name == "orders")


def _make_orders(engine, schema: str, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"create table {schema}.orders (order_id bigint, customer_id bigint, order_ts timestamptz,"
            " status text, currency text, total_amount numeric(12, 2), coupon_code text, updated_at timestamptz)"))
        # Several rows share an updated_at, one holds characters CSV must quote, amounts keep their scale.
        conn.execute(sa.text(
            f"insert into {schema}.orders select g, g % 7, timestamptz '2026-03-01 10:30:00.123456+00' + g * interval"
            " '1 minute', case when g = 3 then 'a \"quoted\", line\nbreak' else 'completed' end, 'EUR',"
            " (g * 1.5)::numeric(12, 2), case when g % 2 = 0 then null else '' end,"
            " timestamptz '2026-03-02' + (g / 3) * interval '1 hour' from generate_series(1, :n) as g"), {"n": n})


def _pull(engine, schema, source_name, method, *, run_date=D1, source=None):
    return ingest.ingest_sql_table(source or engine, engine, ORDERS, source_schema=schema, run_date=run_date,
                                   loaded_at=ingest.cutoff_for(run_date), source_name=source_name,
                                   chunk_rows=7, method=method)


def _landed(engine, source_name):
    cols = ", ".join(ORDERS.columns)
    with engine.connect() as conn:
        return conn.execute(sa.text(f"select {cols}, _source, _loaded_at from raw.shop_orders"
                                    " where _source = :s order by order_id::bigint"), {"s": source_name}).all()


def test_insert_and_copy_land_the_same_text_and_lineage(engine, scratch_schema):
    _make_orders(engine, scratch_schema, 25)
    ins, cop = f"ins_{scratch_schema}", f"cop_{scratch_schema}"
    a = _pull(engine, scratch_schema, ins, "insert")
    b = _pull(engine, scratch_schema, cop, "copy")
    assert a.rows_loaded == b.rows_loaded == 25 and a.watermark_to == b.watermark_to
    rows_a, rows_b = _landed(engine, ins), _landed(engine, cop)
    assert [r[:-2] for r in rows_a] == [r[:-2] for r in rows_b]
    assert rows_a[2].status == 'a "quoted", line\nbreak' and rows_a[0].coupon_code == ""
    assert rows_a[1].coupon_code is None and rows_a[0].total_amount == "1.50"
    assert rows_a[0].order_ts == "2026-03-01 10:31:00.123456+00"
    assert {r._loaded_at for r in rows_a} == {ingest.cutoff_for(D1)}
    with engine.connect() as conn:
        batch_ids = conn.execute(sa.text("select distinct _batch_id from raw.shop_orders where _source = :s"),
                                 {"s": ins}).scalars().all()
    assert batch_ids == [f"{ins}.orders:{D1}"]
    assert a.seconds > 0 and a.cpu_seconds >= 0


def test_insert_loads_each_change_once_and_a_rerun_nothing(engine, scratch_schema):
    _make_orders(engine, scratch_schema, 30)
    src = f"once_{scratch_schema}"
    assert _pull(engine, scratch_schema, src, "insert").rows_loaded == 30
    assert _pull(engine, scratch_schema, src, "insert").skipped
    with engine.begin() as conn:
        conn.execute(sa.text(f"update {scratch_schema}.orders set updated_at = :t, status = 'refunded'"
                             " where order_id in (4, 5)"), {"t": dt.datetime(2026, 3, 10, 12, tzinfo=UTC)})
    later = _pull(engine, scratch_schema, src, "insert", run_date=D1 + dt.timedelta(days=1))
    assert later.rows_loaded == 2 and len(_landed(engine, src)) == 32


def test_insert_crash_before_commit_lands_nothing(engine, scratch_schema, monkeypatch):
    _make_orders(engine, scratch_schema, 12)
    src = f"crash_{scratch_schema}"

    def crash(*args, **kwargs):
        raise ConnectionError("worker killed after INSERT")

    monkeypatch.setattr(batches, "record_batch", crash)
    with pytest.raises(ConnectionError):
        _pull(engine, scratch_schema, src, "insert")
    monkeypatch.undo()
    assert _landed(engine, src) == []
    assert _pull(engine, scratch_schema, src, "insert").rows_loaded == 12


def test_insert_lands_no_row_past_the_watermark_it_records(engine, scratch_schema, monkeypatch):
    # The shop writes between reading the high-water mark and the INSERT: the rows after it wait for the
    # next pull instead of landing beyond the recorded watermark (and being skipped by the next pull's
    # condition, or landing twice).
    _make_orders(engine, scratch_schema, 9)
    src = f"wm_{scratch_schema}"
    real_last = ingest._Changes.last

    def last_then_write(self, conn):
        top = real_last(self, conn)
        with engine.begin() as other:
            other.execute(sa.text(f"insert into {scratch_schema}.orders select 100, 1, updated_at, 'completed',"
                                  " 'EUR', 1, null, updated_at + interval '1 second' from"
                                  f" {scratch_schema}.orders where order_id = 9"))
        return top

    monkeypatch.setattr(ingest._Changes, "last", last_then_write)
    first = _pull(engine, scratch_schema, src, "insert")
    monkeypatch.undo()
    assert first.rows_loaded == 9 and "100" not in {r.order_id for r in _landed(engine, src)}
    second = _pull(engine, scratch_schema, src, "insert", run_date=D1 + dt.timedelta(days=1))
    assert second.rows_loaded == 1 and len(_landed(engine, src)) == 10


def test_auto_uses_insert_for_the_warehouse_database_and_copy_for_another(engine, scratch_schema, monkeypatch):
    _make_orders(engine, scratch_schema, 5)
    used: list[str] = []
    real_insert, real_copy = ingest._insert_in_database, ingest._copy_between_postgres
    monkeypatch.setattr(ingest, "_insert_in_database", lambda *a: used.append("insert") or real_insert(*a))
    monkeypatch.setattr(ingest, "_copy_between_postgres", lambda *a: used.append("copy") or real_copy(*a))
    _pull(engine, scratch_schema, f"a1_{scratch_schema}", "auto")
    same = make_engine(engine.url.render_as_string(hide_password=False))
    other = make_engine(engine.url.set(username="someone_else").render_as_string(hide_password=False))
    try:
        _pull(engine, scratch_schema, f"a2_{scratch_schema}", "auto", source=same)
        assert ingest.same_database(same, engine) and not ingest.same_database(other, engine)
    finally:
        same.dispose()
        other.dispose()
    assert used == ["insert", "insert"]
    monkeypatch.setattr(ingest, "same_database", lambda a, b: False)
    _pull(engine, scratch_schema, f"a3_{scratch_schema}", "auto")
    assert used == ["insert", "insert", "copy"]


def test_a_source_failing_mid_copy_fails_the_pull_and_lands_nothing(engine, scratch_schema, monkeypatch):
    _make_orders(engine, scratch_schema, 40)
    src = f"cut_{scratch_schema}"
    real_pipe = ingest._pipe_copy

    def cut_short(copy_out, copy_in, cursor):
        def partial(out):  # the source sends whole rows, then its connection drops
            out.write(b"1,1,2026-03-01,completed,EUR,1.00,,2026-03-01,b,s,2026-03-10\n")
            raise ConnectionError("source connection lost")
        return real_pipe(partial, copy_in, cursor)

    monkeypatch.setattr(ingest, "_pipe_copy", cut_short)
    with pytest.raises(ConnectionError, match="source connection lost"):
        _pull(engine, scratch_schema, src, "copy")
    monkeypatch.undo()
    assert _landed(engine, src) == []
    assert _pull(engine, scratch_schema, src, "copy").rows_loaded == 40
