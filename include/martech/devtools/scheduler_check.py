"""Two days of the chain under the real scheduler, concurrently, against the same two days run one DAG
at a time: the public tables must come out equal.

The concurrent run: api-server, scheduler and dag-processor with the LocalExecutor (``[core] parallelism``
4) on a throwaway PostgreSQL metadata database (SQLite cannot serve the LocalExecutor's processes). Every
DAG is unpaused, the campaigns too (transport ``outbox``: nothing leaves the machine); each run of
:data:`DATES` is triggered through the REST API as soon as the runs whose tables it reads have succeeded
(:func:`needs`), so up to four task instances of different DAGs and days write at the same time: the
ingest of day 2 beside day 1's staging, models and campaigns, ``email_events`` beside ``ingest`` and
``staging``, the campaign DAGs together. The sequential run: the same DAGs, one ``dag.test()`` at a
time, day 1 then day 2, in a process of its own. Both start from the same simulated shop.

Then every public table (``tests/contracts/public_tables.json``) is compared row by row, without the
columns that record when something ran (:data:`WALL_CLOCK_COLUMNS`).

    .venv/bin/python -m martech.devtools.scheduler_check --warehouse embedded   # or: server

Settings: ``MARTECH_STACK_PG_URL`` (a PostgreSQL server whose role may create databases; default
postgresql://postgres@127.0.0.1:5432/postgres) and ``MARTECH_STACK_DB_PREFIX`` (names of the throwaway
databases, default ``martech_stack_``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from martech import paths
from martech.devtools.stack import (
    BIN,
    DEFAULT_PG_URL,
    Stack,
    StackFailed,
    checked_run,
    metadata_rows,
    not_answering,
    succeeded,
    throwaway_databases,
    trigger,
    unpause,
    with_db,
)

DATES = (dt.date(2026, 11, 2), dt.date(2026, 11, 3))
PARALLELISM = 4
DAY_DAGS = ("ingest", "staging", "customer_models", "email_events")
CONTRACT = paths.PROJECT_ROOT / "tests" / "contracts" / "public_tables.json"
# When a row was written or a try made, not what was decided: two runs of the same days differ there.
WALL_CLOCK_COLUMNS = frozenset({"created_at", "updated_at", "loaded_at", "refreshed_at", "computed_at",
                                "built_at", "sent_at", "first_attempt_at", "next_attempt_at", "started_at",
                                "finished_at", "received_at", "checked_at", "recorded_at",
                                # kpis.model_metrics: when the model was fitted (its version names the run date)
                                "trained_at"})

Node = tuple[str, dt.date]


def pg_url() -> str:
    return os.environ.get("MARTECH_STACK_PG_URL", DEFAULT_PG_URL)


def db_prefix() -> str:
    return os.environ.get("MARTECH_STACK_DB_PREFIX", "martech_stack_")


def missing_services() -> list[str]:
    why = not_answering("PostgreSQL", pg_url(), 5432)
    return [why] if why else []


def needs(campaigns: list[str], dates: tuple[dt.date, ...] = DATES) -> dict[Node, set[Node]]:
    """For each run (DAG, day): the runs that must have succeeded before it starts.

    What a run reads must be written: staging reads raw (its day's ingest), the models read staging,
    a campaign reads the models and the suppressions of its day (``email_events``), the KPIs read every
    campaign's ledger. A day's ingest only needs the day before's ingest (it lands rows after that one's
    watermark); everything else of a day needs the day before to be complete, because staging and the
    models are rebuilt from the whole history.
    """
    graph: dict[Node, set[Node]] = {}
    previous: dt.date | None = None
    for day in dates:
        before: set[Node] = set()
        if previous is not None:
            before = {n for n in graph if n[1] == previous and n[0] != "ingest"}
        graph[("ingest", day)] = {("ingest", previous)} if previous else set()
        graph[("email_events", day)] = set(before)
        graph[("staging", day)] = {("ingest", day), *before}
        graph[("customer_models", day)] = {("staging", day)}
        for dag_id in campaigns:
            graph[(dag_id, day)] = {("customer_models", day), ("email_events", day)}
        graph[("kpis", day)] = {(c, day) for c in campaigns} | {("customer_models", day), ("email_events", day)}
        previous = day
    return graph


def sequential_order(graph: dict[Node, set[Node]]) -> list[Node]:
    """The runs one at a time: day by day, each day in the chain's order (ingest first, kpis last)."""
    rank = {"ingest": 0, "staging": 1, "customer_models": 2, "email_events": 3, "kpis": 9}
    order = sorted(graph, key=lambda n: (n[1], rank.get(n[0], 5), n[0]))
    done: set[Node] = set()
    for node in order:
        assert graph[node] <= done, f"{node} before {graph[node] - done}"
        done.add(node)
    return order


# --- the comparison -------------------------------------------------------------------------------

def public_tables() -> list[str]:
    return sorted(json.loads(CONTRACT.read_text())["tables"])


def fingerprint(url: str, tables: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per public table: its row count and a digest of its rows (sorted), wall-clock columns left out."""
    import sqlalchemy as sa

    from martech.db import make_engine

    out: dict[str, dict[str, Any]] = {}
    eng = make_engine(url)
    try:
        with eng.connect() as conn:
            for table in tables or public_tables():
                schema, name = table.split(".")
                columns = [c for c in conn.execute(sa.text(
                    "select column_name from information_schema.columns where table_schema = :s and table_name = :t"
                    " order by column_name"), {"s": schema, "t": name}).scalars() if c not in WALL_CLOCK_COLUMNS]
                if not columns:
                    out[table] = {"rows": None, "digest": "missing"}
                    continue
                select = ", ".join(f'"{c}"::text' for c in columns)
                rows = sorted(json.dumps(list(r), default=str)
                              for r in conn.execute(sa.text(f"select {select} from {table}")))
                out[table] = {"rows": len(rows), "columns": columns,
                              "digest": hashlib.sha256("\n".join(rows).encode()).hexdigest()}
    finally:
        eng.dispose()
    return out


def differences(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> list[str]:
    return [f"{t}: {a.get(t, {}).get('rows')} rows vs {b.get(t, {}).get('rows')} rows"
            + ("" if a.get(t, {}).get("rows") != b.get(t, {}).get("rows") else " (same count, other contents)")
            for t in sorted(set(a) | set(b)) if a.get(t, {}).get("digest") != b.get(t, {}).get("digest")]


# --- the two runs ---------------------------------------------------------------------------------

def _simulate(env: dict[str, str], customers: int, seed: int) -> None:
    res = subprocess.run([str(BIN / "martech"), "simulate", "--customers", str(customers),
                          "--as-of", DATES[0].isoformat(), "--seed", str(seed)],
                         env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise StackFailed(f"martech simulate failed: {(res.stdout + res.stderr)[-2000:]}")


def _warehouse_url(env: dict[str, str]) -> str:
    res = subprocess.run([str(BIN / "martech"), "warehouse", "url"], env=env, capture_output=True, text=True,
                         timeout=120)
    if res.returncode != 0:
        raise StackFailed(f"martech warehouse url failed: {(res.stdout + res.stderr)[-2000:]}")
    return res.stdout.strip().splitlines()[-1]


def _stop_embedded(env: dict[str, str]) -> None:
    subprocess.run([str(BIN / "martech"), "warehouse", "stop"], env=env, capture_output=True, timeout=120)


def _plain_env(home: Path, warehouse_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MARTECH_", "PYTEST"))}
    env.update({"MARTECH_HOME": str(home), "MARTECH_TRANSPORT": "outbox", "PATH": f"{BIN}{os.pathsep}{env['PATH']}"})
    if warehouse_url:
        env["MARTECH_WAREHOUSE_URL"] = warehouse_url
    return env


@contextlib.contextmanager
def _warehouse(home: Path, server_db: str | None) -> Iterator[tuple[dict[str, str], str]]:
    """The environment of one run and its warehouse URL: an embedded PostgreSQL under ``home`` (stopped
    afterwards), or the database ``server_db`` on the server."""
    env = _plain_env(home, with_db(pg_url(), server_db) if server_db else None)
    try:
        yield env, _warehouse_url(env)
    finally:
        if not server_db:
            _stop_embedded(env)


def run_concurrent(run_dir: Path, env: dict[str, str], *, timeout: float, say: Callable[[str], None]) -> dict:
    """The two days under the scheduler; returns what ran and the most that ran at once."""
    meta_db = f"{db_prefix()}meta_{os.getpid()}_{int(time.time())}"
    settings = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
                "MARTECH_TRANSPORT": "outbox", **{k: v for k, v in env.items() if k.startswith("MARTECH_")}}
    stack = Stack(run_dir, pg_url(), meta_db, settings=settings)
    with throwaway_databases(pg_url(), meta_db):
        try:
            stack.run([str(BIN / "airflow"), "db", "migrate"])
            stack.start_core()
            campaigns = stack.wait_until_up()
            for dag_id in (*DAY_DAGS, "kpis", *campaigns):
                unpause(stack, dag_id)  # all of them, before the first trigger
            graph = needs(campaigns)
            say(f"scheduler up ({len(campaigns)} campaign DAGs); {len(graph)} runs for {DATES[0]} and {DATES[1]}")
            started: dict[Node, str] = {}
            done: set[Node] = set()
            deadline = time.monotonic() + timeout
            while len(done) < len(graph):
                stack.check_alive()
                ready = [n for n in graph if n not in started and graph[n] <= done]
                for node in ready:  # together: every run whose inputs are written
                    started[node] = trigger(stack, node[0], node[1])
                for node, run_id in started.items():
                    if node in done:
                        continue
                    if succeeded(stack, node[0], run_id, f"{node[0]} run for {node[1]}"):
                        done.add(node)
                        say(f"  {node[0]:<28} {node[1]} success ({len(done)}/{len(graph)})")
                if time.monotonic() > deadline:
                    raise StackFailed(f"timed out after {timeout:.0f}s; not done: {sorted(set(graph) - done)}")
                time.sleep(1)
            overlap = _most_at_once(stack)
            states = metadata_rows(stack, "select state, count(*) from task_instance group by 1 order by 1")
            tries = metadata_rows(stack, "select count(*) from task_instance where try_number > 1")[0][0]
            runs = metadata_rows(stack, "select state, count(*) from dag_run group by 1 order by 1")
        except BaseException:
            say(f"failed; component logs in {run_dir}")
            raise
        finally:
            stack.stop()
    return {"campaigns": campaigns, "runs": len(graph), "dag_run_states": dict(runs),
            "task_states": dict(states), "retried": int(tries), "most_at_once": overlap,
            "pids": [p.pid for p in stack.procs.values()], "meta_db": meta_db}


def _most_at_once(stack: Stack) -> dict[str, Any]:
    """The most task instances running at one instant, the most DAGs with a task running at one
    instant (and which), and whether task instances of the two days ever ran at the same time."""
    rows = metadata_rows(stack, "select ti.dag_id, ti.start_date, ti.end_date, dr.conf::text from task_instance ti"
                                " join dag_run dr on dr.dag_id = ti.dag_id and dr.run_id = ti.run_id"
                                " where ti.start_date is not null and ti.end_date is not null")
    spans = [(d, s, e, json.loads(c or "{}").get("run_date")) for d, s, e, c in rows]
    best: dict[str, Any] = {"tasks": 0, "dag_count": 0, "dags": [], "days_overlapped": False}
    for _dag, start, _end, _day in spans:
        live = [(d, day) for d, s, e, day in spans if s <= start < e]
        dags = sorted({f"{d}@{day}" for d, day in live})
        best["tasks"] = max(best["tasks"], len(live))
        best["days_overlapped"] = best["days_overlapped"] or len({day for _, day in live}) > 1
        if len(dags) > best["dag_count"]:
            best.update(dag_count=len(dags), dags=dags)
    return best


def run_sequential(env: dict[str, str], campaigns: list[str], log_file: Path) -> None:
    """The same runs, one ``dag.test()`` at a time, in a process of its own (Airflow reads its settings once)."""
    order = [f"{dag_id}@{day.isoformat()}" for dag_id, day in sequential_order(needs(campaigns))]
    res = subprocess.run([sys.executable, "-m", "martech.devtools.scheduler_check", "--sequential", *order],
                         env=env, capture_output=True, text=True, timeout=3600)
    log_file.write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise StackFailed(f"the sequential run failed: {(res.stdout + res.stderr)[-3000:]}")


def _sequential_main(runs: list[str]) -> int:
    from martech.devtools import airflow_env, demo

    airflow_env.configure(os.environ.get("MARTECH_WAREHOUSE_URL"))
    log_file = paths.home() / "sequential.log"
    airflow_env.migrate_metadata(log_file)
    with demo._output_to(log_file):
        dags = demo._load_dags()
    for item in runs:
        dag_id, _, day = item.partition("@")
        took = demo._run_dag(dags, dag_id, dt.date.fromisoformat(day), 2, log_file)
        print(f"{dag_id:<28} {day} success {took:5.1f}s", flush=True)
    return 0


def run(run_dir: Path, *, warehouse: str = "embedded", customers: int = 300, seed: int = 7,
        timeout: float = 1800, say: Callable[[str], None] = print) -> dict:
    """Both runs on fresh warehouses of the kind ``warehouse`` (``embedded`` or ``server``), compared."""
    if warehouse not in ("embedded", "server"):
        raise ValueError(f"warehouse must be 'embedded' or 'server', got {warehouse!r}")
    t0 = time.perf_counter()
    token = f"{os.getpid()}_{int(time.time())}"
    server_dbs = [f"{db_prefix()}wh_conc_{token}", f"{db_prefix()}wh_seq_{token}"] if warehouse == "server" else []
    timings: dict[str, float] = {}
    with contextlib.ExitStack() as cleanup:
        if server_dbs:
            cleanup.enter_context(throwaway_databases(pg_url(), *server_dbs))
        conc_env, conc_url = cleanup.enter_context(
            _warehouse(run_dir / "concurrent" / "home", server_dbs[0] if server_dbs else None))
        seq_env, seq_url = cleanup.enter_context(
            _warehouse(run_dir / "sequential" / "home", server_dbs[1] if server_dbs else None))
        for env in (conc_env, seq_env):
            _simulate(env, customers, seed)
        timings["setup_s"] = time.perf_counter() - t0
        say(f"{warehouse} warehouses: concurrent {conc_url}, sequential {seq_url}")
        t = time.perf_counter()
        result = run_concurrent(run_dir / "concurrent", conc_env, timeout=timeout, say=say)
        timings["concurrent_s"] = time.perf_counter() - t
        t = time.perf_counter()
        run_sequential(seq_env, result["campaigns"], run_dir / "sequential.log")
        timings["sequential_s"] = time.perf_counter() - t
        concurrent, sequential = fingerprint(conc_url), fingerprint(seq_url)
    timings["wall_s"] = time.perf_counter() - t0
    return {**result, "warehouse": warehouse, "timings": timings, "concurrent": concurrent,
            "sequential": sequential, "differences": differences(concurrent, sequential),
            "databases": [result["meta_db"], *server_dbs]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--warehouse", choices=["embedded", "server"], default="embedded")
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--sequential", nargs="+", metavar="DAG@DATE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sequential:
        return _sequential_main(args.sequential)
    checked = checked_run(missing_services(), "martech-scheduler-",
                         lambda run_dir: run(run_dir, warehouse=args.warehouse, customers=args.customers),
                         "SCHEDULER CHECK FAILED")
    if checked is None:
        return 1
    result, run_dir = checked
    print(f"most task instances at once: {result['most_at_once']}")
    print(f"task states: {result['task_states']}, retried: {result['retried']}, runs: {result['dag_run_states']}")
    print(f"timings: {', '.join(f'{k} {v:.0f}' for k, v in result['timings'].items())}")
    print("tables equal" if not result["differences"] else "DIFFERENT: " + "; ".join(result["differences"]))
    if args.keep_logs:
        print(f"logs: {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if not result["differences"] else 1


if __name__ == "__main__":
    sys.exit(main())
