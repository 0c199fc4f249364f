"""The team stack's distributed path without Docker: Airflow with CeleryExecutor on this machine.

Starts an api-server, a scheduler, a dag-processor and two ``airflow celery worker`` processes with
their own hostnames, on a Redis broker and a PostgreSQL server (a throwaway metadata database and a
throwaway warehouse, both dropped afterwards). Simulates a small shop, then runs the daily chain of one
run date through the scheduler — ingest, staging, customer_models, email_events (the campaigns send only on
suppressions refreshed for their run date), then every campaign DAG — and
reports which worker ran how many task instances (``task_instance.hostname``), and for the campaigns'
mapped ``dispatch_partition`` task: its instances per worker, first start to last end, and the CPU seconds
each partition's task process spent (``cpu_s`` in its XCom).

    .venv/bin/python docker/celery_local.py --customers 2000 --workers 1 --concurrency 1 --slots 1
    .venv/bin/python docker/celery_local.py --customers 2000 --workers 2 --concurrency 1 --slots 2

measure the mapped stage on one worker and on two (see docs/campaigns.md, "Partitions").

    make celery-demo                      # or: .venv/bin/python docker/celery_local.py --customers 300

Cron and asset schedules are switched off (``[scheduler] use_job_schedule``): unpaused DAGs would
otherwise start runs of their own for today's date. Each stage is triggered through the REST API in the
order the assets chain them, once the one before has succeeded, the campaign DAGs together. Task
instances run two at a time across the workers (see ``slots``).

Settings (environment): ``MARTECH_CELERY_PG_URL`` (a PostgreSQL server, default
postgresql://postgres@127.0.0.1:5432/postgres; the role must be allowed to create databases),
``MARTECH_CELERY_REDIS_URL`` (default redis://127.0.0.1:6379/9; a run uses a queue of its own, so
parallel runs on the same database do not take each other's tasks), ``MARTECH_CELERY_SLOTS`` (see ``slots``),
``MARTECH_STACK_DB_PREFIX`` (names of the throwaway databases, default ``martech_``).

Only the standard library, psycopg2 and redis are imported at module level: the workers' task processes
import this module for ``worker_hostname``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from martech.devtools.stack import (
    BIN,
    DEFAULT_PG_URL,
    Stack,
    checked_run,
    not_answering,
    throwaway_databases,
    trigger,
    wait_runs,
    with_db,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
RUN_DATE = dt.date(2026, 11, 2)
STAGES = ("ingest", "staging", "customer_models", "email_events")



def worker_names(n: int) -> tuple[str, ...]:
    return tuple(f"worker-{i}" for i in range(1, n + 1))


WORKERS = worker_names(2)


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the workers: the name this worker records on its task instances.

    Two workers on one machine would otherwise both record the machine's name.
    """
    return os.environ.get("MARTECH_WORKER_HOSTNAME") or socket.getfqdn()


def slots(default: int = 2) -> int:
    """How many task instances run at once across the workers (``MARTECH_CELERY_SLOTS``, default 2).

    Two, one per worker: the campaigns' partitions are meant to be sent side by side, and one slot made
    the chain's ~70 task instances run one after another. Concurrency itself is what
    ``martech.devtools.scheduler_check`` proves under the LocalExecutor. (It was one because the schema
    migration used to take DDL locks in every task, and two tasks at once deadlocked; migrations are
    versioned now and a current warehouse takes no DDL lock.)
    """
    return int(os.environ.get("MARTECH_CELERY_SLOTS", str(default)))


def pg_url() -> str:
    return os.environ.get("MARTECH_CELERY_PG_URL", DEFAULT_PG_URL)


def redis_url() -> str:
    return os.environ.get("MARTECH_CELERY_REDIS_URL", DEFAULT_REDIS_URL)


def missing_services() -> list[str]:
    """What of Redis and PostgreSQL does not answer (empty when both do)."""
    return [why for why in (not_answering("PostgreSQL", pg_url(), 5432), not_answering("Redis", redis_url(), 6379))
            if why]


def _celery_stack(run_dir: Path, pool_slots: int) -> Stack:
    token = secrets.token_hex(4)
    prefix = os.environ.get("MARTECH_STACK_DB_PREFIX", "martech_")  # as martech.devtools.scheduler_check
    meta_db, warehouse_db, queue = f"{prefix}celery_meta_{token}", f"{prefix}celery_wh_{token}", f"martech-{token}"
    meta = with_db(pg_url(), meta_db)
    stack = Stack(run_dir, pg_url(), meta_db, token=token, settings={
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": redis_url(),
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta,
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        # The default pool's size, set when `airflow db migrate` creates it (see slots).
        "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": str(pool_slots),
        "MARTECH_WAREHOUSE_URL": with_db(pg_url(), warehouse_db),
    })
    stack.warehouse_db, stack.queue = warehouse_db, queue  # type: ignore[attr-defined]
    return stack


def _clear_queue(stack: Stack) -> None:
    import redis

    client = redis.Redis.from_url(redis_url())
    try:
        keys = [stack.queue, *client.scan_iter(match=f"_kombu.binding*.{stack.queue}")]  # type: ignore[attr-defined]
        client.delete(*keys)
    finally:
        client.close()


def _task_instances(stack: Stack) -> dict[str, dict[str, int]]:
    """Successful task instances per recorded hostname and DAG, from the metadata database."""
    import psycopg2

    conn = psycopg2.connect(stack.meta_url)
    try:
        with conn.cursor() as cur:
            cur.execute("select hostname, dag_id, count(*) from task_instance where state = 'success'"
                        " group by 1, 2 order by 1, 2")
            out: dict[str, dict[str, int]] = {}
            for host, dag_id, n in cur.fetchall():
                out.setdefault(host or "?", {})[dag_id] = int(n)
            return out
    finally:
        conn.close()


def _json(text: str) -> dict:
    value = json.loads(text)
    return json.loads(value) if isinstance(value, str) else value  # stored as a JSON document or a string


def _mapped(stack: Stack, task_id: str = "dispatch_partition") -> dict:
    """The mapped task's instances: per worker, their wall span and summed duration, and each partition's
    CPU seconds (what the task reported in its XCom, ``cpu_s``)."""
    import psycopg2

    conn = psycopg2.connect(stack.meta_url)
    try:
        with conn.cursor() as cur:
            cur.execute("select hostname, count(*), sum(extract(epoch from end_date - start_date)) from task_instance"
                        " where task_id = %s and state = 'success' group by 1 order by 1", (task_id,))
            per_host = {host or "?": {"tis": int(n), "busy_s": round(float(busy), 1)} for host, n, busy in cur}
            cur.execute("select extract(epoch from max(end_date) - min(start_date)), count(*) from task_instance"
                        " where task_id = %s and state = 'success'", (task_id,))
            span, n = cur.fetchone()
            cur.execute("select dag_id, map_index, cast(value as text) from xcom where task_id = %s"
                        " and key = 'return_value' order by 1, 2", (task_id,))
            cpu = {f"{dag_id}[{i}]": float(_json(v).get("cpu_s") or 0) for dag_id, i, v in cur}
        return {"task_instances": int(n), "span_s": round(float(span or 0), 1), "per_worker": per_host,
                "cpu_s": cpu, "cpu_s_total": round(sum(cpu.values()), 2)}
    finally:
        conn.close()


def _warehouse_counts(stack: Stack) -> dict[str, int]:
    """Rows the chain left in a few of its tables: proof it did the work, not just ran."""
    import psycopg2

    tables = ("raw.shop_orders", "staging.contacts", "marts.customer_rfm", "audiences.audience_members",
              "campaigns.send_ledger")
    conn = psycopg2.connect(with_db(pg_url(), stack.warehouse_db))
    try:
        with conn.cursor() as cur:
            out = {}
            for table in tables:
                cur.execute(f"select count(*) from {table}")
                out[table] = int(cur.fetchone()[0])
            return out
    finally:
        conn.close()


def run(run_dir: Path, *, customers: int = 300, run_date: dt.date = RUN_DATE, seed: int = 7,
        timeout: float = 600, say=print, workers: int = 2, concurrency: int = 2, pool_slots: int | None = None,
        only: tuple[str, ...] = ()) -> dict:
    """Run the chain of ``run_date`` on a fresh Celery stack; stops every process and drops both databases.

    ``workers`` Celery workers of ``concurrency`` task processes each; ``pool_slots`` task instances at once
    across them (default :func:`slots`); ``only``: these campaigns (ids) instead of every one.
    """
    t0 = time.perf_counter()
    pool_slots = slots() if pool_slots is None else pool_slots
    names = worker_names(workers)
    stack = _celery_stack(run_dir, pool_slots)
    airflow = str(BIN / "airflow")
    timings: dict[str, float] = {}
    with throwaway_databases(pg_url(), stack.meta_db, stack.warehouse_db):
        try:
            say(f"metadata database {stack.meta_db}, warehouse {stack.warehouse_db}, "
                f"broker {redis_url()} queue {stack.queue}, api-server {stack.api}")
            stack.run([airflow, "db", "migrate"])
            stack.run([str(BIN / "martech"), "simulate", "--customers", str(customers),
                       "--as-of", run_date.isoformat(), "--seed", str(seed)])
            timings["setup_s"] = time.perf_counter() - t0
            stack.start_core()
            for name in names:
                stack.start(name, [airflow, "celery", "worker", "--celery-hostname", f"{name}-{stack.token}@%h",
                                   "--queues", stack.queue, "--concurrency", str(concurrency), "--skip-serve-logs",
                                   "--without-gossip", "--without-mingle"],
                            {"MARTECH_WORKER_HOSTNAME": name,
                             "AIRFLOW__CORE__HOSTNAME_CALLABLE": "celery_local.worker_hostname",
                             "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "docker"),
                                                                       os.environ.get("PYTHONPATH")) if p)})
            campaigns = [d for d in stack.wait_until_up() if not only or d.removeprefix("campaign_") in only]
            timings["stack_up_s"] = time.perf_counter() - t0
            say(f"stack up after {timings['stack_up_s']:.0f}s; {len(campaigns)} campaign DAGs")
            for dag_id in STAGES:
                t = time.perf_counter()
                wait_runs(stack, {dag_id: trigger(stack, dag_id, run_date)}, timeout)
                timings[f"{dag_id}_s"] = time.perf_counter() - t
                say(f"  {dag_id:<24} success {timings[f'{dag_id}_s']:5.1f}s")
            t = time.perf_counter()
            # every campaign DAG at once, each a few tasks plus one per partition with contacts
            wait_runs(stack, {dag_id: trigger(stack, dag_id, run_date) for dag_id in campaigns}, 2 * timeout)
            timings["campaigns_s"] = time.perf_counter() - t
            say(f"  {len(campaigns)} campaign DAGs{'':<7} success {timings['campaigns_s']:5.1f}s")
            per_host = _task_instances(stack)
            mapped = _mapped(stack)
            rows = _warehouse_counts(stack)
        except BaseException:
            say(f"failed; component logs in {run_dir}")
            raise
        finally:
            stack.stop()
            with contextlib.suppress(Exception):
                _clear_queue(stack)
    timings["wall_s"] = time.perf_counter() - t0
    return {"dags": [*STAGES, *campaigns], "task_instances": per_host, "rows": rows, "slots": pool_slots,
            "workers": list(names), "concurrency": concurrency, "mapped": mapped,
            "timings": timings, "queue": stack.queue, "databases": [stack.meta_db, stack.warehouse_db],
            "pids": [p.pid for p in stack.procs.values()], "run_date": run_date.isoformat(), "customers": customers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--date", type=dt.date.fromisoformat, default=RUN_DATE)
    parser.add_argument("--keep-logs", action="store_true", help="keep the component logs after a success")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    parser.add_argument("--concurrency", type=int, default=2, help="task processes per worker (default 2)")
    parser.add_argument("--campaigns", default="", help="comma-separated campaign ids (default: every one)")
    parser.add_argument("--slots", type=int, default=None,
                        help="task instances at once across the workers (default MARTECH_CELERY_SLOTS, else 2)")
    args = parser.parse_args(argv)
    # Stop cleanly (every process group, both databases) on Ctrl-C or SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    checked = checked_run(missing_services(), "martech-celery-",
                         lambda run_dir: run(run_dir, customers=args.customers, run_date=args.date,
                                             workers=args.workers, concurrency=args.concurrency,
                                             pool_slots=args.slots,
                                             only=tuple(c for c in args.campaigns.split(",") if c)),
                         "CELERY RUN FAILED")
    if checked is None:
        return 1
    result, run_dir = checked
    print("task instances per worker (task_instance.hostname):")
    for host, per_dag in result["task_instances"].items():
        print(f"  {host:<10} {sum(per_dag.values()):3d}  " + ", ".join(f"{d} {n}" for d, n in per_dag.items()))
    print("rows: " + ", ".join(f"{t} {n}" for t, n in result["rows"].items()))
    mapped = result["mapped"]
    print(f"mapped dispatch_partition: {mapped['task_instances']} task instances, first start to last end"
          f" {mapped['span_s']:.1f}s, campaign DAGs {result['timings']['campaigns_s']:.1f}s;"
          f" CPU {mapped['cpu_s_total']:.2f}s in the task processes")
    if mapped["cpu_s"]:
        cpu = sorted(mapped["cpu_s"].values())
        print(f"  CPU per partition: min {cpu[0]:.2f}s, median {cpu[len(cpu) // 2]:.2f}s, max {cpu[-1]:.2f}s")
    for host, figures in mapped["per_worker"].items():
        print(f"  {host:<10} {figures['tis']:3d} partitions, busy {figures['busy_s']:.1f}s")
    print(f"wall time {result['timings']['wall_s']:.0f}s (stack up after {result['timings']['stack_up_s']:.0f}s)")
    if args.keep_logs:
        print(f"logs: {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
