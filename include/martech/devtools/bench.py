"""Benchmarks, run by ``make bench`` (never by the test suite).

Each benchmark prints its own figures next to a reference measured in the same run, as a ratio, because
absolute timings on shared machines are noisy.

    python -m martech.devtools.bench ingest --orders 1000000
    python -m martech.devtools.bench landing --customers 100000 --method copy --trials 2
    python -m martech.devtools.bench clv --customers 1000000
    python -m martech.devtools.bench dispatch --recipients 100000
    python -m martech.devtools.bench rfm-duckdb --customers 1000000 --orders 10000000
    python -m martech.devtools.bench models --customers 1000000 --orders 10000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import time
import warnings
from typing import Any

import sqlalchemy as sa

from martech.db import make_engine, migrate, scratch_database
from martech.ingest import landing as ingest
from martech.warehouse import resolve_url

BENCH_SCHEMA = "bench_src"


def _make_orders(engine: Any, n: int) -> None:
    """A synthetic shop.orders table of n rows, generated inside PostgreSQL."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"drop schema if exists {BENCH_SCHEMA} cascade"))
        conn.execute(sa.text(f"create schema {BENCH_SCHEMA}"))
        conn.execute(sa.text(
            f"create table {BENCH_SCHEMA}.orders (order_id bigint primary key, customer_id bigint,"
            " order_ts timestamptz, status text, currency text, total_amount numeric(12, 2),"
            " coupon_code text, updated_at timestamptz)"))
        conn.execute(sa.text(
            f"insert into {BENCH_SCHEMA}.orders select g, 1 + (g * 7919) % 100000,"
            " timestamptz '2024-01-01' + (g % 63072000) * interval '1 second',"
            " case when g % 31 = 0 then 'refunded' else 'completed' end, 'EUR',"
            " round((5 + (g * 37) % 20000 / 100.0)::numeric, 2), null,"
            " timestamptz '2024-01-01' + (g % 63072000) * interval '1 second'"
            " from generate_series(1::bigint, :n) as g"), {"n": n})
        conn.execute(sa.text(f"create index on {BENCH_SCHEMA}.orders (updated_at, order_id)"))
        conn.execute(sa.text(f"analyze {BENCH_SCHEMA}.orders"))


def plain_copy(engine: Any, schema: str, tables: list[str] | None = None) -> dict[str, float]:
    """Reference for loading: plain ``COPY`` of ``schema``'s tables (all of them by default) out of the
    source and into temporary copies of the same types, no Python per row, nothing else.

    Loading is judged against it as rows per second: ``loading / COPY`` = (rows landed / landing wall
    seconds) / (rows copied here / these wall seconds), here and in ``bench_chain``.
    """
    with engine.begin() as conn:
        names = tables or [r[0] for r in conn.execute(sa.text(
            "select table_name from information_schema.tables where table_schema = :s"
            " and table_type = 'BASE TABLE' order by 1"), {"s": schema})]
    rows = 0
    t0, c0 = time.perf_counter(), time.process_time()
    with engine.begin() as conn:
        cur = conn.connection.dbapi_connection.cursor()
        for table in names:
            buf = io.StringIO()
            cur.copy_expert(f"copy {schema}.{table} to stdout with (format csv)", buf)
            buf.seek(0)
            cur.execute(f"create temp table ref_{table} (like {schema}.{table}) on commit drop")
            cur.copy_expert(f"copy ref_{table} from stdin with (format csv)", buf)
            rows += cur.rowcount
    return {"copy_wall_s": time.perf_counter() - t0, "copy_python_cpu_s": time.process_time() - c0, "rows": rows}


def loading_figures(rows: int, wall_s: float, reference: dict[str, float]) -> dict[str, float]:
    """Loading rows/s, plain COPY rows/s and their ratio (the scale issue's target: at least 0.70)."""
    loading = rows / wall_s if wall_s else float("nan")
    copy = reference["rows"] / reference["copy_wall_s"]
    return {"loading_rows_per_s": loading, "copy_rows_per_s": copy, "loading_vs_copy": loading / copy}


def bench_ingest(orders: int, method: str = "auto") -> dict[str, float]:
    url = resolve_url()
    engine = make_engine(url)
    migrate(engine)
    print(f"warehouse {url}; generating {orders:,} source orders ...", flush=True)
    _make_orders(engine, orders)
    table = next(t for t in ingest.SHOP_TABLES if t.name == "orders")
    run_date = dt.date(2026, 1, 1)

    def forget() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("delete from raw.shop_orders where _source = 'bench'"))
            conn.execute(sa.text("delete from raw.ingest_batches where source = 'bench'"))
            conn.execute(sa.text("delete from raw.ingest_state where source = 'bench'"))

    forget()
    reference = plain_copy(engine, BENCH_SCHEMA, ["orders"])
    result = ingest.ingest_sql_table(engine, engine, table, source_schema=BENCH_SCHEMA, run_date=run_date,
                                     loaded_at=ingest.cutoff_for(run_date), source_name="bench", method=method)
    forget()
    with engine.begin() as conn:
        conn.execute(sa.text(f"drop schema {BENCH_SCHEMA} cascade"))
    engine.dispose()
    figures = {"rows": result.rows_loaded, "loading_s": result.seconds, "loading_cpu_s": result.cpu_seconds,
               "plain_copy_s": reference["copy_wall_s"],
               **loading_figures(result.rows_loaded, result.seconds, reference)}
    print(f"ingest_sql_table ({method}): {result.rows_loaded:,} rows in {result.seconds:.1f}s"
          f" (CPU here {result.cpu_seconds:.1f}s) = {figures['loading_rows_per_s']:,.0f} rows/s")
    print(f"plain COPY out+in: {reference['rows']:,} rows in {reference['copy_wall_s']:.1f}s"
          f" = {figures['copy_rows_per_s']:,.0f} rows/s")
    print(f"loading / COPY (rows/s): {figures['loading_vs_copy']:.2f}")
    return figures


def bench_landing(customers: int, method: str = "auto", trials: int = 1) -> list[dict[str, float]]:
    """The shop landing alone: every shop table of a simulated shop of ``customers`` pulled into raw (one
    batch each, as ``ingest_shop`` does), then a plain COPY of the same tables, ``trials`` times, in a
    scratch database on the warehouse server (the shop tables in the same database, as the simulator
    writes them: ``auto`` is INSERT ... SELECT there; ``copy`` measures the path a separate shop server takes)."""
    import tempfile
    from pathlib import Path

    from martech.simulate import generate_sources

    run_date = dt.date(2026, 11, 2)
    out = []
    with scratch_database(resolve_url(), "martech_bench_landing") as url, tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url)
        try:
            migrate(engine)
            print(f"simulating a shop of {customers:,} customers ...", flush=True)
            generate_sources(engine, Path(tmp), as_of=run_date, customers=customers, seed=42, defect_rate=0.01)
            present = set(sa.inspect(engine).get_table_names(schema="shop"))
            tables = [t for t in ingest.SHOP_TABLES if t.name in present]
            for trial in range(trials):
                with engine.begin() as conn:
                    conn.execute(sa.text(f"truncate {', '.join(t.raw_table for t in tables)}"))
                    conn.execute(sa.text("delete from raw.ingest_batches where source = 'shop'"))
                    conn.execute(sa.text("delete from raw.ingest_state where source = 'shop'"))
                t0 = time.perf_counter()
                results = [ingest.ingest_sql_table(engine, engine, t, source_schema="shop", run_date=run_date,
                                                   loaded_at=ingest.cutoff_for(run_date), method=method)
                           for t in tables]
                wall = time.perf_counter() - t0
                rows = sum(r.rows_loaded for r in results)
                reference = plain_copy(engine, "shop")
                figures = {"rows": rows, "loading_s": wall, "loading_cpu_s": sum(r.cpu_seconds for r in results),
                           "plain_copy_s": reference["copy_wall_s"], **loading_figures(rows, wall, reference)}
                out.append(figures)
                print(f"trial {trial + 1} ({method}): loading {rows:,} rows in {wall:.1f}s"
                      f" = {figures['loading_rows_per_s']:,.0f} rows/s (CPU here {figures['loading_cpu_s']:.1f}s);"
                      f" plain COPY {reference['rows']:,} rows in {reference['copy_wall_s']:.1f}s"
                      f" = {figures['copy_rows_per_s']:,.0f} rows/s; loading / COPY {figures['loading_vs_copy']:.2f}")
                print("  " + "; ".join(f"{r.table} {r.rows_loaded:,} in {r.seconds:.1f}s" for r in results))
        finally:
            engine.dispose()
    return out


def _synthetic_transactions(customers: int, seed: int = 1) -> Any:
    """Purchase days of ``customers`` drawn from the BG/NBD process itself (two years, weekly units)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    weeks = 104.0
    lam = rng.gamma(0.5, 1 / 4.0, customers)  # purchases per week while alive
    p = rng.beta(0.8, 2.5, customers)
    first = rng.uniform(0, weeks, customers)
    rows_c, rows_t = [np.arange(customers)], [first]
    t, alive, idx = first.copy(), np.ones(customers, bool), np.arange(customers)
    while alive.any():
        t = t + rng.exponential(1 / np.maximum(lam, 1e-9))
        alive &= t < weeks
        rows_c.append(idx[alive])
        rows_t.append(t[alive])
        alive &= rng.random(customers) >= p
    cust, week = np.concatenate(rows_c), np.concatenate(rows_t)
    start = pd.Timestamp("2024-01-01")
    return pd.DataFrame({"customer_id": cust, "order_ts": start + pd.to_timedelta(week * 7, unit="D"),
                         "amount": np.round(rng.gamma(6.0, 8.0, len(cust)), 2)}), start + pd.Timedelta(weeks=weeks)


def bench_clv(customers: int) -> dict[str, float]:
    """Summaries, BG/NBD + Gamma-Gamma fits and scoring on synthetic customers; time and peak memory."""
    import resource

    from martech.models import clv
    tx, as_of = _synthetic_transactions(customers)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    summary = clv.summarize(tx, as_of=as_of)
    t1 = time.perf_counter()
    bg = clv.fit_bgnbd(summary)
    gg = clv.fit_gamma_gamma(summary["x"], summary["m"])
    t2 = time.perf_counter()
    pred = clv.predict(summary, bg, gg, as_of=as_of.date())
    t3 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"customers": customers, "orders": len(tx), "summary_s": t1 - t0, "fit_s": t2 - t1,
               "score_s": t3 - t2, "total_min": (t3 - t0) / 60, "peak_rss_mb": peak_mb,
               "rss_before_mb": rss0 / 1024, "rows": len(pred)}
    print(f"clv: {customers:,} customers, {len(tx):,} purchases; summary {t1 - t0:.1f}s, fit {t2 - t1:.1f}s,"
          f" score {t3 - t2:.1f}s = {(t3 - t0) / 60:.2f} min; peak RSS {peak_mb:,.0f} MB"
          f" (after generating the input: {rss0 / 1024:,.0f} MB)")
    print(f"  fitted {bg}; {gg}")
    return figures


def bench_dispatch(recipients: int, *, validate: bool = True, outbox: bool = True) -> dict[str, float]:
    """Render + dispatch ``recipients`` through SendGrid (local fake server) and through the outbox
    (``outbox=False``: SendGrid only).

    Runs in a scratch database on the warehouse server; the audience is planted directly (every member in
    treatment). Prints messages/s for both transports, their ratio and SendGrid requests per 1000.
    """
    import tempfile
    from pathlib import Path

    from martech.campaigns.dispatch import dispatch
    from martech.campaigns.sendgrid_transport import SendGridTransport
    from martech.campaigns.spec import load_campaign
    from martech.campaigns.transports import OutboxTransport
    from martech.testing.campaigns import write_campaign
    from martech.testing.fake_sendgrid import FakeSendGrid

    now = dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone.utc)
    figures: dict[str, float] = {"recipients": recipients}
    with scratch_database(resolve_url(), "martech_bench_dispatch") as url:
        engine = make_engine(url)
        try:
            migrate(engine)
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                spec = load_campaign(write_campaign(
                    folder, "bench",
                    "id: bench\nname: Bench\nowner: bench\ndescription: dispatch benchmark\nschedule: '0 8 * * *'\n"
                    "audience_sql: audiences/bench.sql\ntemplate: birthday\nholdout_share: 0.1\n"
                    "variants:\n  - {id: a, weight: 1, subject: 'Hi {{ first_name }}'}\n"
                    "  - {id: b, weight: 1, subject: 'Hello {{ first_name }}'}\n"))
                with engine.begin() as conn:
                    for run in ("2026-01-05", "2026-01-06"):
                        conn.execute(sa.text(
                            "insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email,"
                            " first_name, arm, variant, definition_hash, attributes)"
                            " select 'bench', :r, cast(:r as date), 'C' || lpad(g::text, 7, '0'),"
                            " 'user' || g || '@example.com', 'Name' || g, 'treatment', case when g % 2 = 0 then 'a'"
                            " else 'b' end, 'h', '{\"is_customer\": true}' from generate_series(1, :n) g"),
                            {"r": run, "n": recipients})
                with FakeSendGrid() as fake:
                    if not validate:
                        fake.state.validator = _NoValidation()
                    transport = SendGridTransport("SG.bench", host=fake.url)
                    t0 = time.perf_counter()
                    sg_summary = dispatch(engine, spec, "2026-01-05", transport, now=now)
                    sg_s = time.perf_counter() - t0
                    fake.settle()  # past every scheduled send time: what SendGrid would have delivered
                    delivered = sum(fake.state.deliveries().values())
                    sent_bytes = sum(r["bytes"] for r in fake.state.accepted)
                if outbox:
                    t0 = time.perf_counter()
                    ob_summary = dispatch(engine, spec, "2026-01-06", OutboxTransport(folder / "outbox"), now=now)
                    ob_s = time.perf_counter() - t0
        finally:
            engine.dispose()
    figures.update({
        "sendgrid_s": sg_s, "sendgrid_msgs_per_s": sg_summary.sent_now / sg_s, "delivered": delivered,
        "requests_per_1000": transport.requests / recipients * 1000,
        "mail_send_requests": -(-recipients // transport.batch_size),
        "kb_per_recipient": sent_bytes / recipients / 1024,
    })
    print(f"sendgrid (fake on loopback, schema validation {'on' if validate else 'off'}):"
          f" {sg_summary.sent_now:,} sent in {sg_s:.1f}s = {figures['sendgrid_msgs_per_s']:,.0f} msgs/s;"
          f" {transport.requests} HTTP requests = {figures['requests_per_1000']:.1f} per 1000 recipients"
          f" ({figures['mail_send_requests']:.0f} mail sends + as many batch ids);"
          f" {figures['kb_per_recipient']:.1f} KB of request body per recipient; delivered {delivered:,}")
    if outbox:
        figures.update({"outbox_s": ob_s, "outbox_msgs_per_s": ob_summary.sent_now / ob_s})
        print(f"outbox: {ob_summary.sent_now:,} written in {ob_s:.1f}s = {figures['outbox_msgs_per_s']:,.0f} msgs/s")
        print(f"ratio sendgrid / outbox time: {sg_s / ob_s:.2f}x")
    return figures


def rfm_duckdb(orders: Any, as_of: dt.date) -> Any:
    """``martech.models.rfm.score_rfm`` written as one DuckDB query (same tie rules, same segment grid)."""
    import duckdb

    from martech.models.rfm import segment_for

    codes = [(100 * r + 10 * f + m, segment_for(r, f, m)) for r in range(1, 6) for f in range(1, 6)
             for m in range(1, 6)]
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.register("orders", orders)
        con.execute("create temp table grid (code integer, segment varchar)")
        con.executemany("insert into grid values (?, ?)", codes)
        return con.execute("""
            with o as (
                select customer_id, order_ts, coalesce(cast(net_amount as double), 0) as net
                from orders where order_ts < cast($end as timestamptz) and customer_id is not null
            ),
            per as (
                select customer_id, count(*) as frequency, round(sum(net), 2) as monetary,
                       min(order_ts) as first_order_at, max(order_ts) as last_order_at,
                       date_diff('day', cast(max(order_ts) as date), cast($end as date)) as recency_days
                from o group by customer_id
            ),
            stats as (
                select count(*) as n, count(distinct recency_days) as dr, count(distinct frequency) as df,
                       count(distinct monetary) as dm from per
            ),
            scored as (
                select per.*,
                    case when dr <= 1 then 3 else least(5, 1 + (5 * (rank() over (order by recency_days desc) - 1))
                        // (n - 1)) end as r_score,
                    case when df <= 1 then 3 else least(5, 1 + (5 * (rank() over (order by frequency) - 1))
                        // (n - 1)) end as f_score,
                    case when dm <= 1 then 3 else least(5, 1 + (5 * (rank() over (order by monetary) - 1))
                        // (n - 1)) end as m_score
                from per, stats
            )
            select customer_id, recency_days, frequency, monetary, first_order_at, last_order_at,
                   r_score, f_score, m_score, cast(100 * r_score + 10 * f_score + m_score as varchar) as rfm_score,
                   grid.segment
            from scored join grid on grid.code = 100 * r_score + 10 * f_score + m_score
            order by customer_id
        """, {"end": as_of.isoformat()}).df()
    finally:
        con.close()


ORDER_COLUMNS = ("order_id", "customer_id", "order_ts", "status", "currency", "total_amount", "coupon_code",
                 "updated_at", "_batch_id", "_source", "_loaded_at")
# staging.orders' dedup and typing alone (no quarantine, no corrections, no customer mapping): the newest
# version of each readable order id landed up to the run's cutoff, typed. DuckDB's dialect.
_ORDERS_STAGING_DUCKDB = """
    select
        try_cast(trim(order_id) as bigint) as order_id,
        try_cast(trim(customer_id) as bigint) as customer_id,
        try_cast(order_ts as timestamptz) as order_ts,
        lower(trim(status)) as status,
        upper(trim(currency)) as currency,
        try_cast(trim(total_amount) as decimal(14, 2)) as total_amount,
        upper(nullif(trim(coupon_code), '')) as coupon_code,
        try_cast(updated_at as timestamptz) as updated_at
    from raw_orders
    where cast(_loaded_at as timestamptz) <= cast($run_ts as timestamptz)
        and try_cast(trim(order_id) as bigint) is not null
    qualify row_number() over (partition by try_cast(trim(order_id) as bigint)
                               order by try_cast(updated_at as timestamptz) desc nulls last,
                                        cast(_loaded_at as timestamptz) desc) = 1
"""


def stage_orders_duckdb(csv_path: Any, run_ts: dt.datetime) -> dict[str, float]:
    """The orders' staging dedup and typing in DuckDB on raw.shop_orders rows exported as CSV (columns
    ORDER_COLUMNS, no header): seconds to read them in, seconds of the query, rows staged."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        columns = ", ".join(f"'{c}': 'VARCHAR'" for c in ORDER_COLUMNS)
        t0 = time.perf_counter()
        con.execute(f"create table raw_orders as select * from read_csv('{csv_path}', header = false,"
                    f" columns = {{{columns}}})")
        t1 = time.perf_counter()
        con.execute(f"create table staged as {_ORDERS_STAGING_DUCKDB}", {"run_ts": run_ts.isoformat()})
        t2 = time.perf_counter()
        rows = con.execute("select count(*) from staged").fetchone()
    finally:
        con.close()
    return {"duckdb_read_s": t1 - t0, "duckdb_s": t2 - t1, "duckdb_rows": int(rows[0]) if rows else 0}


def synthetic_orders(customers: int, orders: int, seed: int = 3) -> Any:
    """``orders`` rows over ``customers`` ids: heavy-tailed order counts, two years, amounts in cents."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    weights = rng.gamma(0.6, 1.0, customers)
    cust = rng.choice(customers, size=orders, p=weights / weights.sum()) + 1
    start = pd.Timestamp("2024-01-01", tz="UTC")
    seconds = rng.integers(0, 730 * 86400, size=orders)
    return pd.DataFrame({"customer_id": cust.astype("int64"),
                         "order_ts": start + pd.to_timedelta(seconds, unit="s"),
                         "net_amount": np.round(rng.gamma(2.0, 30.0, orders), 2)})


def bench_rfm_duckdb(customers: int, orders: int) -> dict[str, float]:
    """pandas ``score_rfm`` vs the same computation in DuckDB on the same DataFrame; results must match."""
    import resource

    from martech.models.rfm import score_rfm

    frame = synthetic_orders(customers, orders)
    as_of = dt.date(2026, 1, 1)
    t0 = time.perf_counter()
    pandas_scores = score_rfm(frame, as_of)
    t_pandas = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DuckDB's own DataFrame conversion uses deprecated pandas calls
        duck_scores = rfm_duckdb(frame, as_of)
    t_duck = time.perf_counter() - t0
    cols = ["customer_id", "recency_days", "frequency", "r_score", "f_score", "m_score", "segment"]
    same = (pandas_scores[cols].reset_index(drop=True).astype(str)
            .equals(duck_scores[cols].reset_index(drop=True).astype(str)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rfm: {len(pandas_scores):,} customers from {orders:,} orders; pandas {t_pandas:.2f}s,"
          f" duckdb {t_duck:.2f}s; ratio pandas / duckdb {t_pandas / t_duck:.2f}x; identical results: {same};"
          f" peak RSS {peak:,.0f} MB")
    if not same:
        raise SystemExit("pandas and DuckDB RFM results differ")
    return {"pandas_s": t_pandas, "duckdb_s": t_duck, "ratio": t_pandas / t_duck, "peak_rss_mb": peak}


def _in_child(fn: Any) -> dict[str, Any]:
    """Run ``fn`` in a forked child; its wall time, peak RSS and returned figures (memory is per model)."""
    import json
    import os
    import resource

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            t0 = time.perf_counter()
            extra = fn() or {}
            out = {"seconds": time.perf_counter() - t0,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}
        except BaseException as exc:  # report, do not hide
            out, code = {"error": f"{type(exc).__name__}: {exc}"}, 1
        with os.fdopen(write, "w") as fh:
            fh.write(json.dumps(out, default=str))
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    return json.loads(data or '{"error": "child died"}')


def bench_models(customers: int, orders: int) -> dict[str, Any]:
    """Each customer-intelligence model's fit + score at scale on synthetic inputs, minutes and peak memory.

    Inputs are generated in the parent (the children inherit them by fork): orders for RFM, BG/NBD purchase
    days for CLV, lines over 500 products with planted pairs for recommendations, category units for
    clusters, and leads from the simulator's lead process for lead scoring.
    """
    import numpy as np
    import pandas as pd

    from martech.models import clusters, clv, leads, recommend, rfm
    rng = np.random.default_rng(11)
    as_of = dt.date(2026, 1, 1)
    frame = synthetic_orders(customers, orders)
    tx, clv_as_of = _synthetic_transactions(customers)
    n_products = 500
    lines = frame[["customer_id"]].copy()
    first = rng.integers(0, n_products, len(lines))
    partner = (first // 2) * 2 + (1 - first % 2)  # products come in pairs bought together
    lines["product_id"] = np.where(rng.random(len(lines)) < 0.3, partner, first)
    n_leads = max(customers // 3, 1000)
    lead_frame = pd.DataFrame({
        "contact_id": [f"L{i}" for i in range(n_leads)],
        "lead_source": rng.choice(["organic_search", "paid_search", "social", "referral"], n_leads),
        "country": rng.choice(["DE", "FR", "GB", "US"], n_leads), "consent_status": "opted_in",
        "created_at": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 300, n_leads), "D")})
    conv = rng.random(n_leads) < 0.3
    for col, (m1, m0) in {"page_views": (7.0, 3.5), "email_opens": (3.0, 1.6),
                          "form_submissions": (0.8, 0.35)}.items():
        lead_frame[col] = rng.poisson(np.where(conv, m1, m0)).astype(float)
    lead_frame["converted"] = conv
    lead_frame["age_days"] = (pd.Timestamp(as_of, tz="UTC") - lead_frame["created_at"]).dt.days.astype(float)
    lead_frame["mature"] = lead_frame["age_days"] >= leads.MATURITY_DAYS

    def run_rfm() -> dict[str, Any]:
        return {"rows": len(rfm.score_rfm(frame, as_of))}

    def run_clv() -> dict[str, Any]:
        summary = clv.summarize(tx, as_of=clv_as_of)
        bg = clv.fit_bgnbd(summary)
        gg = clv.fit_gamma_gamma(summary["x"], summary["m"])
        return {"rows": len(clv.predict(summary, bg, gg, as_of=clv_as_of.date()))}

    def run_clusters() -> dict[str, Any]:
        scores = rfm.score_rfm(frame, as_of)
        units = pd.DataFrame({"customer_id": np.repeat(scores["customer_id"].to_numpy(), 2),
                              "category": rng.choice(list("ABCDEFGH"), 2 * len(scores)),
                              "units": rng.integers(1, 5, 2 * len(scores))})
        result = clusters.fit(clusters.features(scores, units), scores)
        return {"rows": len(result.labels), "k": result.k}

    def run_recommend() -> dict[str, Any]:
        recs = recommend.recommend(recommend.Baskets.from_lines(lines))
        return {"rows": len(recs)}

    def run_leads() -> dict[str, Any]:
        model = leads.train(lead_frame, as_of)
        scores = leads.predict(model, lead_frame)
        return {"rows": len(scores), "auc": model.metrics.get("roc_auc")}

    results = {}
    for name, fn in (("rfm + segments", run_rfm), ("clv (BG/NBD + Gamma-Gamma)", run_clv),
                     ("clusters (k-means, k by silhouette)", run_clusters),
                     ("recommendations (top 5)", run_recommend), (f"lead scoring ({n_leads:,} leads)", run_leads)):
        results[name] = r = _in_child(fn)
        print(f"{name}: " + (r["error"] if "error" in r else
                              f"{r['seconds'] / 60:.2f} min, peak RSS {r['peak_rss_mb']:,.0f} MB, {r['rows']:,} rows"))
    return results


class _NoValidation:
    def iter_errors(self, body: Any) -> list[Any]:
        return []


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m martech.devtools.bench")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("ingest", help="incremental SQL ingest vs a plain COPY of the same rows")
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--method", choices=ingest.METHODS, default="auto",
                   help="how the rows travel (auto: INSERT ... SELECT, the source being the warehouse)")
    p = sub.add_parser("landing", help="the whole shop landing (every table) vs a plain COPY of the same rows")
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--method", choices=ingest.METHODS, default="auto")
    p.add_argument("--trials", type=int, default=1)
    p = sub.add_parser("clv", help="BG/NBD + Gamma-Gamma fit and scoring on synthetic customers")
    p.add_argument("--customers", type=int, default=1_000_000)
    p = sub.add_parser("dispatch", help="render + dispatch through SendGrid (local fake) and the outbox")
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--no-validate", action="store_true", help="skip the fake server's schema validation")
    p = sub.add_parser("rfm-duckdb", help="RFM + segments in pandas vs the same query in DuckDB")
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--orders", type=int, default=10_000_000)
    p = sub.add_parser("models", help="fit + score of every customer model at scale (synthetic inputs)")
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--orders", type=int, default=10_000_000)
    args = parser.parse_args(argv)
    if args.what == "models":
        bench_models(args.customers, args.orders)
    elif args.what == "rfm-duckdb":
        bench_rfm_duckdb(args.customers, args.orders)
    elif args.what == "dispatch":
        bench_dispatch(args.recipients, validate=not args.no_validate)
    elif args.what == "ingest":
        bench_ingest(args.orders, args.method)
    elif args.what == "landing":
        bench_landing(args.customers, args.method, args.trials)
    elif args.what == "clv":
        bench_clv(args.customers)


if __name__ == "__main__":
    main()
