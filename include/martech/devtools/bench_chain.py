"""The whole daily chain at scale: ``make bench`` (never the test suite).

    python -m martech.devtools.bench_chain --customers 100000 300000 1000000
    python -m martech.devtools.bench_chain --quick            # 100k only

For each scale: a fresh embedded PostgreSQL (its server processes are this benchmark's alone, so their
CPU-seconds and memory can be counted), the simulated shop at that size, then day 1 (ingest, staging,
customer models, email events, every enabled campaign, KPIs), the recipients' reactions over the
attribution window, and day 2 (the incremental next day). Every stage runs in a process of its own
through the functions the DAG tasks call (``martech.pipeline``, ``martech.campaigns.runner``), the way
Airflow runs a task; the parent counts per stage:

- wall seconds, the stage process's CPU-seconds and peak RSS (``wait4``), and the CPU-seconds of
  PostgreSQL's processes (postmaster plus backends, live and exited) with their peak summed PSS;
- the landing itself inside the ingest stage (the shop pull: rows, wall and CPU seconds, without the
  process start-up, the analyze and validate_raw around it), the staging models' seconds;
- the references measured in the same run on the same rows: plain ``COPY`` of the shop rows the ingest
  landed (loading: "loading / COPY" compares rows per second, as ``bench ingest`` does), DuckDB doing RFM
  on the staged orders (the models' reference), DuckDB doing the orders' dedup and typing from
  raw.shop_orders (beside staging.orders), and the SendGrid transport's HTTP requests per 1000 recipients
  for as many recipients as the largest day-1 run (against the local stand-in).

Results go to ``bench/results/<date>.json`` and a markdown table beside it, with the fitted exponent of
each stage's cost over the scales (cost ∝ customers^k) and each target of the scale issue.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RUN_DATE = dt.date(2026, 11, 2)
ATTRIBUTION_DAYS = 7
DAY1 = ("ingest", "staging", "customer_models", "email_events", "campaigns", "kpis")
DAY2 = ("ingest", "staging", "customer_models", "email_events", "kpis")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
# Targets of the scale issue (2-core, 24 GB machine).
TARGET_FULL_S_AT_1M = 15 * 60
TARGET_PEAK_MB = 4096
TARGET_NEXT_DAY_SHARE = 0.20
TARGET_LOAD_VS_COPY = 0.70
TARGET_RFM_VS_DUCKDB = 2.0
PG_PID = "MARTECH_BENCH_PG_PID"  # the postmaster a stage process counts PostgreSQL's CPU of


# -- what one stage process runs ---------------------------------------------------------------------

def _stage_body(stage: str, url: str, day: dt.date) -> dict[str, Any]:
    from martech import pipeline
    from martech.runs import Run
    from martech.warehouse import Warehouse

    with Warehouse(url) as wh:
        if stage == "ingest":
            meter = PostgresMeter(int(os.environ[PG_PID]) if os.environ.get(PG_PID) else None)
            pg0 = meter.cpu_s()
            out = {"shop": pipeline.ingest_shop(wh, day)}
            # The landing's own figures (pipeline.ingest_shop: pull, serialisation, COPY / INSERT into raw);
            # PostgreSQL's CPU is counted over the whole shop ingest (the landing and its analyze).
            out["landing"] = {**out["shop"]["landing"], "pg_cpu_s": meter.cpu_s() - pg0}
            out["crm"], out["files"] = pipeline.ingest_crm(wh, day), pipeline.ingest_files(wh, day)
            out["validate"] = pipeline.validate_raw(wh, day)
            return out
        if stage == "staging":
            return {"build": pipeline.build_staging(wh, day), "validate": pipeline.validate_staging(wh, day)}
        if stage == "customer_models":
            return pipeline.build_customer_models(wh, day)
        if stage == "email_events":
            return pipeline.ingest_events(wh, day)
        if stage == "kpis":
            from martech.kpis.report import write_report

            out = pipeline.build_kpis(wh, day)
            write_report(wh.engine, day)
            return out
        if stage.startswith("campaign_"):
            from martech import paths
            from martech.campaigns import hourly as pull
            from martech.campaigns import runner
            from martech.campaigns.spec import load_campaign

            spec = load_campaign(paths.campaigns_dir() / f"{stage.removeprefix('campaign_')}.yml")
            now = dt.datetime.combine(day, dt.time(2), tzinfo=dt.timezone.utc)
            run = Run.hour(now) if spec.hourly else Run.daily(day)
            if spec.hourly:
                pull.refresh_shop(wh, run)
            runner.build_audience(wh, spec.id, run)
            runner.validate_audience(wh, spec.id, run)
            return runner.dispatch(wh, spec.id, run, now)
    raise SystemExit(f"unknown stage {stage!r}")


# -- measuring --------------------------------------------------------------------------------------

def _proc_stat(pid: int) -> tuple[int, int, int, int, int]:
    """(ppid, utime, stime, cutime, cstime) in clock ticks."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14])


def _children(ppid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if _proc_stat(int(name))[0] == ppid:
                    out.append(int(name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PostgresMeter:
    """CPU-seconds and peak memory of one PostgreSQL server's processes (postmaster and backends)."""

    def __init__(self, postmaster_pid: int | None) -> None:
        self.pid = postmaster_pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def cpu_s(self) -> float:
        if self.pid is None:
            return float("nan")
        _, ut, st, cut, cst = _proc_stat(self.pid)
        ticks = ut + st + cut + cst  # exited backends were reaped by the postmaster: they sit in cutime
        for child in _children(self.pid):
            try:
                _, cu, cs, _, _ = _proc_stat(child)
            except (OSError, IndexError, ValueError):
                continue
            ticks += cu + cs
        return ticks / CLK_TCK

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            pids = [self.pid, *_children(self.pid)] if self.pid else []
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in pids))

    def __enter__(self) -> PostgresMeter:
        self.peak_kb = 0
        self._stop.clear()
        if self.pid is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@dataclass
class StageFigures:
    day: str
    stage: str
    wall_s: float
    python_cpu_s: float
    python_peak_mb: float
    pg_cpu_s: float
    pg_peak_mb: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        return self.python_cpu_s + (0.0 if math.isnan(self.pg_cpu_s) else self.pg_cpu_s)


def _run_stage(stage: str, url: str, day: dt.date, env: dict[str, str], meter: PostgresMeter,
               label: str) -> StageFigures:
    cmd = [sys.executable, "-m", "martech.devtools.bench_chain", "--stage", stage, "--url", url,
           "--date", day.isoformat()]
    pg0 = meter.cpu_s()
    t0 = time.perf_counter()
    with meter:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"stage {stage} of {label} failed (exit {proc.returncode}):\n{err[-4000:]}")
    figures = json.loads(out.strip().splitlines()[-1])
    return StageFigures(day=label, stage=stage, wall_s=round(wall, 2),
                        python_cpu_s=round(figures["cpu_s"], 2), python_peak_mb=round(figures["peak_mb"], 1),
                        pg_cpu_s=round(meter.cpu_s() - pg0, 2), pg_peak_mb=round(meter.peak_kb / 1024, 1),
                        extra=figures.get("summary", {}))


def _own_peak_kb() -> int:
    """This process's peak RSS since its exec (VmHWM). ``ru_maxrss`` would not do: Linux carries it over
    fork and exec, so a stage started by a large parent would report the parent's peak."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _stage_main(stage: str, url: str, day: dt.date) -> None:
    """Child side: run the stage, then print its own CPU-seconds and peak RSS as the last line."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    t0 = time.process_time()
    summary = _stage_body(stage, url, day)
    print(json.dumps({"cpu_s": time.process_time() - t0, "peak_mb": _own_peak_kb() / 1024,
                      "summary": _stage_extra(summary)}, default=str))


def _stage_extra(summary: Any) -> dict[str, Any]:
    """What a stage reports beside its totals: rows, the ingest's landing, the staging models' seconds."""
    if not isinstance(summary, dict):
        return {}
    extra: dict[str, Any] = {}
    if isinstance(summary.get("rows"), (int, dict)):
        extra["rows"] = summary["rows"]
    if isinstance(summary.get("landing"), dict):
        extra["landing"] = summary["landing"]
    build = summary.get("build")
    if isinstance(build, dict) and isinstance(build.get("seconds"), dict):
        extra["model_seconds"] = build["seconds"]
    return extra


# -- references in the same run --------------------------------------------------------------------

def _copy_reference(engine: Any) -> dict[str, float]:
    """Plain COPY of every shop table the ingest lands: out of the shop, into a temporary copy, no Python per row."""
    from martech.devtools.bench import plain_copy

    return plain_copy(engine, "shop")


def _orders_staging_reference(engine: Any, day: dt.date) -> dict[str, float]:
    """The orders' staging dedup and typing (newest version per order id, typed) in DuckDB and as one plain
    PostgreSQL query, on the raw.shop_orders rows landed for ``day``; staging.orders' own time is the
    staging stage's (summarise puts them side by side)."""
    import sqlalchemy as sa

    from martech.devtools.bench import ORDER_COLUMNS, stage_orders_duckdb
    from martech.runs import Run

    run_ts = Run.daily(day).cutoff
    cols = ", ".join(ORDER_COLUMNS)
    with tempfile.NamedTemporaryFile(suffix=".csv") as csv, engine.begin() as conn:
        cur = conn.connection.dbapi_connection.cursor()
        t0 = time.perf_counter()
        cur.copy_expert(f"copy (select {cols} from raw.shop_orders) to stdout with (format csv)", csv)
        csv.flush()
        export_s = time.perf_counter() - t0
        duck = stage_orders_duckdb(csv.name, run_ts)
        t0 = time.perf_counter()
        pg_rows = conn.execute(sa.text(
            "create temp table _ref_staged_orders on commit drop as"
            " select distinct on (k) k as order_id, staging.try_bigint(customer_id) as customer_id,"
            " staging.try_ts(order_ts) as order_ts, lower(staging.clean(status)) as status,"
            " upper(staging.clean(currency)) as currency, staging.parse_amount(total_amount) as total_amount,"
            " upper(staging.clean(coupon_code)) as coupon_code, u as updated_at"
            " from (select r.*, staging.try_bigint(order_id) as k, staging.try_ts(updated_at) as u"
            "       from raw.shop_orders as r where _loaded_at <= :ts) as s"
            " where k is not null order by k, u desc nulls last, _loaded_at desc"), {"ts": run_ts}).rowcount
        pg_s = time.perf_counter() - t0
    return {"export_s": export_s, **duck, "pg_query_s": pg_s, "pg_query_rows": pg_rows}


def _dispatch_reference(engine: Any) -> dict[str, float]:
    """Requests per 1000 recipients: as many recipients as the largest day-1 campaign run sent, dispatched
    through the SendGrid transport against the local stand-in (a scratch database on the same server)."""
    import sqlalchemy as sa

    from martech.devtools.bench import bench_dispatch

    with engine.connect() as conn:
        largest = conn.execute(sa.text(
            "select coalesce(max(n), 0) from (select count(*) as n from campaigns.send_ledger"
            " where status = 'sent' group by campaign_id, run_id) as r")).scalar_one()
    if not largest:
        return {"recipients": 0}
    figures = bench_dispatch(int(largest), outbox=False)
    return {k: figures[k] for k in ("recipients", "requests_per_1000", "sendgrid_s", "sendgrid_msgs_per_s")}


def _rfm_reference(engine: Any, day: dt.date) -> dict[str, float]:
    """RFM on the staged orders: the project's pandas model against the same maths in DuckDB."""
    import pandas as pd

    from martech.devtools.bench import rfm_duckdb
    from martech.models import rfm

    orders = pd.read_sql(
        f"select customer_id, order_ts, net_amount from staging.orders where status <> 'cancelled'"
        f" and order_ts < '{day.isoformat()}'", engine)
    orders["net_amount"] = orders["net_amount"].astype(float)
    t0 = time.perf_counter()
    rfm.score_rfm(orders, day)
    pandas_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rfm_duckdb(orders, day)
    duck_s = time.perf_counter() - t0
    return {"pandas_s": pandas_s, "duckdb_s": duck_s, "ratio": pandas_s / duck_s, "orders": len(orders)}


# -- one scale ------------------------------------------------------------------------------------

def _campaign_stages() -> list[str]:
    from martech import paths
    from martech.campaigns.spec import scan_campaigns

    return [f"campaign_{s.id}" for s in scan_campaigns(paths.campaigns_dir())[0] if s.enabled]


def _say(msg: str) -> None:
    print(msg, flush=True)


def bench_scale(customers: int, *, seed: int, workdir: Path) -> dict[str, Any]:
    from martech.db import make_engine
    from martech.pipeline import prepare_warehouse
    from martech.simulate import generate_sources, play_responses
    from martech.warehouse import EmbeddedPostgres, Warehouse

    home = workdir / f"home-{customers}"
    home.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(workdir / f"pg-{customers}", database="bench")
    url = server.ensure_running()
    pid = int((server.pgdata / "postmaster.pid").read_text().split()[0])
    env = {**os.environ, "MARTECH_HOME": str(home), "MARTECH_WAREHOUSE_URL": url, "MARTECH_TRANSPORT": "outbox",
           PG_PID: str(pid)}
    os.environ.update({"MARTECH_HOME": str(home), "MARTECH_WAREHOUSE_URL": url})
    meter = PostgresMeter(pid)
    stages: list[StageFigures] = []
    try:
        from martech import paths

        engine = make_engine(url)
        _say(f"[{customers:,}] simulating the shop ...")
        pg0, c0, t0 = meter.cpu_s(), time.process_time(), time.perf_counter()
        summary = generate_sources(engine, paths.landing_dir(), as_of=RUN_DATE, customers=customers, seed=seed,
                                   defect_rate=0.01)
        with Warehouse(url) as wh:
            prepare_warehouse(wh)
        simulate = {"wall_s": time.perf_counter() - t0, "python_cpu_s": time.process_time() - c0,
                    "pg_cpu_s": meter.cpu_s() - pg0, "rows": summary.lines()}
        _say(f"[{customers:,}] simulated in {simulate['wall_s']:.0f}s")

        def run(names: list[str], day: dt.date, label: str) -> None:
            for name in names:
                fig = _run_stage(name, url, day, env, meter, label)
                stages.append(fig)
                _say(f"[{customers:,}] {label} {name:<26} wall {fig.wall_s:7.1f}s  cpu {fig.python_cpu_s:7.1f}"
                     f" + pg {fig.pg_cpu_s:7.1f}s  rss {fig.python_peak_mb:6.0f} MB  pg {fig.pg_peak_mb:6.0f} MB")

        day1 = [s for s in DAY1 if s != "campaigns"]
        run(day1[:4], RUN_DATE, "day1")
        reference_copy = _copy_reference(engine)
        reference_rfm = _rfm_reference(engine, RUN_DATE)
        reference_orders = _orders_staging_reference(engine, RUN_DATE)
        run(_campaign_stages(), RUN_DATE, "day1")
        reference_dispatch = _dispatch_reference(engine)
        run(["kpis"], RUN_DATE, "day1")
        t0 = time.perf_counter()
        play_responses(engine, paths.landing_dir(), send_date=RUN_DATE, days=ATTRIBUTION_DAYS, seed=seed)
        responses_s = time.perf_counter() - t0
        run(list(DAY2), RUN_DATE + dt.timedelta(days=ATTRIBUTION_DAYS), "day2")
        with engine.connect() as conn:
            import sqlalchemy as sa

            counts = {t: conn.execute(sa.text(f"select count(*) from {t}")).scalar() for t in (
                "staging.customers", "staging.orders", "staging.order_items", "staging.email_events",
                "campaigns.send_ledger")}
        engine.dispose()
    finally:
        server.stop()
    return {"customers": customers, "simulate": simulate, "responses_s": responses_s, "rows": counts,
            "stages": [asdict(s) | {"cpu_s": s.cpu_s} for s in stages],
            "reference": {"copy": reference_copy, "rfm": reference_rfm, "orders_staging": reference_orders,
                          "dispatch": reference_dispatch}}


# -- the report -----------------------------------------------------------------------------------

def _fit_exponent(points: list[tuple[int, float]]) -> float | None:
    pts = [(math.log(n), math.log(c)) for n, c in points if c > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else None


def _stage_key(s: dict[str, Any]) -> str:
    return f"{s['day']} {s['stage']}"


def summarise(scales: list[dict[str, Any]]) -> dict[str, Any]:
    from martech.devtools.bench import loading_figures

    out: dict[str, Any] = {"scales": {}}
    for sc in scales:
        st = sc["stages"]
        day1 = [s for s in st if s["day"] == "day1"]
        day2 = [s for s in st if s["day"] == "day2"]
        ingest1 = next(s for s in day1 if s["stage"] == "ingest")
        staging1: dict[str, Any] = next((s for s in day1 if s["stage"] == "staging"), {"extra": {}})
        ref = sc["reference"]
        landing = ingest1["extra"].get("landing")
        loading = loading_figures(landing["rows"], landing["wall_s"], ref["copy"]) if landing else {}
        orders_pg_s = staging1["extra"].get("model_seconds", {}).get("staging.orders")
        orders_ref = ref.get("orders_staging", {})
        out["scales"][sc["customers"]] = {
            "day1_wall_s": sum(s["wall_s"] for s in day1), "day1_cpu_s": sum(s["cpu_s"] for s in day1),
            "day2_wall_s": sum(s["wall_s"] for s in day2), "day2_cpu_s": sum(s["cpu_s"] for s in day2),
            "next_day_share": sum(s["wall_s"] for s in day2) / max(sum(s["wall_s"] for s in day1), 1e-9),
            "peak_mb": max(s["python_peak_mb"] + s["pg_peak_mb"] for s in st),
            "ingest_rows_per_s": ref["copy"]["rows"] / ingest1["wall_s"],
            "copy_rows_per_s": ref["copy"]["rows"] / ref["copy"]["copy_wall_s"],
            "load_vs_copy": ref["copy"]["copy_wall_s"] / ingest1["wall_s"],
            "loading_rows_per_s": loading.get("loading_rows_per_s"),
            "loading_vs_copy": loading.get("loading_vs_copy"),
            "rfm_vs_duckdb": ref["rfm"]["ratio"],
            "orders_staging_pg_s": orders_pg_s,
            "orders_staging_duckdb_s": orders_ref.get("duckdb_s"),
            "orders_staging_pg_vs_duckdb": (orders_pg_s / orders_ref["duckdb_s"]
                                            if orders_pg_s is not None and orders_ref.get("duckdb_s") else None),
            "requests_per_1000": ref.get("dispatch", {}).get("requests_per_1000"),
        }
    keys = sorted({_stage_key(s) for sc in scales for s in sc["stages"]})
    out["exponents"] = {k: _fit_exponent([(sc["customers"], s["cpu_s"]) for sc in scales for s in sc["stages"]
                                           if _stage_key(s) == k]) for k in keys}
    return out


def markdown(scales: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = ["# Daily chain at scale", "", f"Run date {RUN_DATE}; day 2 is {ATTRIBUTION_DAYS} days later "
             "(the attribution window's reactions landed). CPU = the stage process + PostgreSQL's processes.", ""]
    head = "| stage | " + " | ".join(f"{sc['customers']:,}: wall s / CPU s / peak MB (py + pg)" for sc in scales)
    lines += [head + " | exponent |", "|---|" + "---|" * (len(scales) + 1)]
    keys = sorted({_stage_key(s) for sc in scales for s in sc["stages"]},
                  key=lambda k: (k.split()[0], next((i for sc in scales for i, s in enumerate(sc["stages"])
                                                       if _stage_key(s) == k), 0)))
    for key in keys:
        cells = []
        for sc in scales:
            s = next((s for s in sc["stages"] if _stage_key(s) == key), None)
            cells.append("–" if s is None else
                         f"{s['wall_s']:.1f} / {s['cpu_s']:.1f} / {s['python_peak_mb']:.0f} + {s['pg_peak_mb']:.0f}")
        k = summary["exponents"].get(key)
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {'–' if k is None else f'{k:.2f}'} |")
    lines += ["", "| target | " + " | ".join(f"{sc['customers']:,}" for sc in scales) + " | goal |",
              "|---|" + "---|" * (len(scales) + 1)]
    per = [summary["scales"][sc["customers"]] for sc in scales]
    rows = [("day 1 wall s", "day1_wall_s", "{:.0f}", f"≤ {TARGET_FULL_S_AT_1M} at 1M"),
            ("day 1 CPU s", "day1_cpu_s", "{:.0f}", ""),
            ("day 2 wall s", "day2_wall_s", "{:.0f}", ""),
            ("next day / full day", "next_day_share", "{:.2f}", f"≤ {TARGET_NEXT_DAY_SHARE}"),
            ("peak MB (stage + PostgreSQL)", "peak_mb", "{:.0f}", f"≤ {TARGET_PEAK_MB}"),
            ("ingest stage rows/s (whole stage)", "ingest_rows_per_s", "{:.0f}", ""),
            ("loading rows/s (shop into raw)", "loading_rows_per_s", "{:.0f}", ""),
            ("plain COPY rows/s", "copy_rows_per_s", "{:.0f}", ""),
            ("ingest stage / COPY speed", "load_vs_copy", "{:.2f}", ""),
            ("loading / COPY speed", "loading_vs_copy", "{:.2f}", f"≥ {TARGET_LOAD_VS_COPY}"),
            ("RFM pandas / DuckDB", "rfm_vs_duckdb", "{:.2f}", f"≤ {TARGET_RFM_VS_DUCKDB}")]
    # The other references of the same run: staging.orders beside DuckDB's dedup and typing, HTTP requests.
    rows += [(f"{what} ({who})", key, fmt, "") for what, who, key, fmt in (
        ("staging.orders s", "PostgreSQL, whole model", "orders_staging_pg_s", "{:.1f}"),
        ("orders dedup + typing s", "DuckDB", "orders_staging_duckdb_s", "{:.2f}"),
        ("orders staging s", "PostgreSQL / DuckDB", "orders_staging_pg_vs_duckdb", "{:.1f}"),
        ("requests per 1000 recipients", "SendGrid", "requests_per_1000", "{:.1f}"))]
    for label, key, fmt, goal in rows:
        lines.append(f"| {label} | " + " | ".join("–" if p.get(key) is None else fmt.format(p[key]) for p in per)
                     + f" | {goal} |")
    lines += ["", "Simulation (not part of the chain): " + "; ".join(
        f"{sc['customers']:,}: {sc['simulate']['wall_s']:.0f}s, reactions {sc['responses_s']:.0f}s" for sc in scales)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the daily chain at 100k, 300k and 1M customers")
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="100k customers only")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--date", type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        _stage_main(args.stage, args.url, args.date)
        return
    sizes = [100_000] if args.quick else args.customers
    results = []
    with tempfile.TemporaryDirectory(prefix="martech-bench-") as tmp:
        for n in sizes:
            results.append(bench_scale(n, seed=args.seed, workdir=Path(tmp)))
            _write(args.out, results)
    _say(f"results: {args.out}")


def _write(out: Path, results: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(results)
    stamp = dt.date.today().isoformat()
    (out / f"{stamp}.json").write_text(json.dumps({"results": results, "summary": summary}, indent=1, default=str))
    (out / f"{stamp}.md").write_text(markdown(results, summary))


if __name__ == "__main__":
    main()
