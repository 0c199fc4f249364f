"""The team stack's distributed path without Docker: Airflow with CeleryExecutor on this machine.

Starts an api-server, a scheduler, a dag-processor and two ``airflow celery worker`` processes with
their own hostnames, on a Redis broker and a PostgreSQL server (a throwaway metadata database and a
throwaway warehouse, both dropped afterwards). Simulates a small shop, then runs the daily chain of one
run date through the scheduler — ingest, staging, customer_models, email_events (the campaigns send only on
suppressions refreshed for their run date), then every campaign DAG — and
reports which worker ran how many task instances (``task_instance.hostname``).

    make celery-demo                      # or: .venv/bin/python docker/celery_local.py --customers 300

Cron and asset schedules are switched off (``[scheduler] use_job_schedule``): unpaused DAGs would
otherwise start runs of their own for today's date. Each stage is triggered through the REST API in the
order the assets chain them, once the one before has succeeded, the campaign DAGs together. Task
instances run one at a time across the two workers (see ``slots``).

Settings (environment): ``MARTECH_CELERY_PG_URL`` (a PostgreSQL server, default
postgresql://postgres@127.0.0.1:5432/postgres; the role must be allowed to create databases),
``MARTECH_CELERY_REDIS_URL`` (default redis://127.0.0.1:6379/9; a run uses a queue of its own, so
parallel runs on the same database do not take each other's tasks), ``MARTECH_CELERY_SLOTS`` (see ``slots``).

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
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
RUN_DATE = dt.date(2026, 11, 2)
STAGES = ("ingest", "staging", "customer_models", "email_events")
WORKERS = ("worker-1", "worker-2")


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the workers: the name this worker records on its task instances.

    Two workers on one machine would otherwise both record the machine's name.
    """
    return os.environ.get("MARTECH_WORKER_HOSTNAME") or socket.getfqdn()


class StackFailed(RuntimeError):
    pass


class DagImportError(StackFailed):
    """A DAG file does not parse: waiting longer will not help."""


def slots() -> int:
    """How many task instances run at once across both workers (``MARTECH_CELERY_SLOTS``, default 1).

    One, because every martech task that lands or builds data first calls ``martech.db.migrate``, whose
    DDL (``alter table ... add column if not exists``, ``create index if not exists``) locks tables even
    when there is nothing to change: two tasks at once deadlock in PostgreSQL (seen here: ingest_shop
    against ingest_crm; the hourly series' refresh_shop against another campaign's audience snapshot).
    Raise it once migrate skips a warehouse that is already current.
    """
    return int(os.environ.get("MARTECH_CELERY_SLOTS", "1"))


def pg_url() -> str:
    return os.environ.get("MARTECH_CELERY_PG_URL", DEFAULT_PG_URL)


def redis_url() -> str:
    return os.environ.get("MARTECH_CELERY_REDIS_URL", DEFAULT_REDIS_URL)


def missing_services() -> list[str]:
    """What of Redis and PostgreSQL does not answer (empty when both do)."""
    missing = []
    for name, url, port in (("PostgreSQL", pg_url(), 5432), ("Redis", redis_url(), 6379)):
        parts = urllib.parse.urlsplit(url)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or port), timeout=2):
                pass
        except OSError as exc:
            missing.append(f"{name} at {parts.hostname}:{parts.port or port} ({exc.strerror or exc})")
    return missing


def _with_db(url: str, dbname: str) -> str:
    return f"{url.rpartition('/')[0]}/{dbname}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _throwaway_databases(*names: str) -> Iterator[None]:
    import psycopg2

    admin = psycopg2.connect(pg_url())
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'create database "{name}"')
        yield
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (name,))
                cur.execute(f'drop database if exists "{name}"')
        admin.close()


@dataclass
class Stack:
    """The processes of one run and the settings they share."""

    run_dir: Path
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.meta_db = f"martech_celery_meta_{self.token}"
        self.warehouse_db = f"martech_celery_wh_{self.token}"
        self.queue = f"martech-{self.token}"
        self.api_port = _free_port()
        self.health_port = _free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.warehouse_url = _with_db(pg_url(), self.warehouse_db)
        # One signing secret for every component: a worker's task token must verify at the api-server.
        self.jwt_secret = secrets.token_urlsafe(32)
        self.api_secret = secrets.token_urlsafe(32)
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        meta = _with_db(pg_url(), self.meta_db).replace("postgresql://", "postgresql+psycopg2://", 1)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MARTECH_", "PYTEST"))}
        base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
        return {
            **base,
            "AIRFLOW_HOME": str(self.run_dir / "airflow"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta,
            "AIRFLOW__CELERY__BROKER_URL": redis_url(),
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta.replace("+psycopg2", "", 1),
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__API__SECRET_KEY": self.api_secret,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            # The default pool's size, set when `airflow db migrate` creates it (see SLOTS).
            "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": str(slots()),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.health_port),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.run_dir / "logs"),
            "MARTECH_HOME": str(self.run_dir / "home"),
            "MARTECH_WAREHOUSE_URL": self.warehouse_url,
        }

    def start(self, name: str, args: list[str], extra: dict[str, str] | None = None) -> None:
        log = open(self.run_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        env = {**self.env(), **(extra or {})}
        self.procs[name] = subprocess.Popen(args, env=env, cwd=self.run_dir, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def run(self, args: list[str], timeout: float = 300) -> str:
        res = subprocess.run(args, env=self.env(), cwd=self.run_dir, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise StackFailed(f"{' '.join(args[:3])} failed ({res.returncode}): {(res.stdout + res.stderr)[-2000:]}")
        return res.stdout

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise StackFailed(f"{name} exited with {proc.returncode}: {self.tail(name)}")

    def tail(self, name: str, chars: int = 2000) -> str:
        path = self.run_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM every process group, wait up to 20 s (a worker finishes its running task), SIGKILL the rest."""
        for name in reversed(list(self.procs)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.procs[name].pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            # The group outlives its leader when a forked child is still running.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def clear_queue(self) -> None:
        import redis

        client = redis.Redis.from_url(redis_url())
        try:
            keys = [self.queue, *client.scan_iter(match=f"_kombu.binding*.{self.queue}")]
            client.delete(*keys)
        finally:
            client.close()

    # The REST API (all users are admins in this throwaway stack).
    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.api}/api/v2{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise StackFailed(f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from exc

    def wait_for(self, what: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                if ready():
                    return
            except DagImportError:
                raise
            except (OSError, StackFailed, ValueError):
                pass  # not up yet
            if time.monotonic() > deadline:
                raise StackFailed(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.5)

    def _answers(self, url: str) -> bool:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200


def _dags_parsed(stack: Stack) -> list[str]:
    errors = stack.call("GET", "/importErrors")
    if errors.get("import_errors"):
        first = errors["import_errors"][0]
        raise DagImportError(f"DAG import error in {first.get('filename')}: {first.get('stack_trace', '')[-1500:]}")
    dag_ids = [d["dag_id"] for d in stack.call("GET", "/dags?limit=1000")["dags"]]
    needed = {*STAGES, "email_events", "kpis"}
    campaigns = [d for d in dag_ids if d.startswith("campaign_")]
    return sorted(campaigns) if needed <= set(dag_ids) and campaigns else []


def _trigger(stack: Stack, dag_id: str, run_date: dt.date) -> str:
    stack.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    logical = dt.datetime.combine(run_date, dt.time(2), tzinfo=dt.timezone.utc).isoformat()
    run = stack.call("POST", f"/dags/{dag_id}/dagRuns",
                     {"logical_date": logical, "conf": {"run_date": run_date.isoformat()}})
    return str(run["dag_run_id"])


def _wait_runs(stack: Stack, runs: dict[str, str], timeout: float) -> None:
    pending = dict(runs)
    deadline = time.monotonic() + timeout
    while pending:
        stack.check_alive()
        for dag_id, run_id in list(pending.items()):
            state = stack.call("GET", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")["state"]
            if state == "success":
                del pending[dag_id]
                continue
            # A failed try fails the run here at once: the DAGs' retries would wait minutes.
            tis = stack.call("GET", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
                                    "/taskInstances")["task_instances"]
            failed = [t["task_id"] for t in tis if t["state"] in ("failed", "upstream_failed", "up_for_retry")]
            if failed or state == "failed":
                raise StackFailed(f"{dag_id} run {run_id} {state}, failed tasks {failed}: "
                                  f"{_task_log_tail(stack, dag_id, failed)}")
        if time.monotonic() > deadline:
            raise StackFailed(f"timed out after {timeout:.0f}s waiting for {sorted(pending)}")
        time.sleep(1)


def _task_log_tail(stack: Stack, dag_id: str, task_ids: list[str]) -> str:
    logs = sorted((stack.run_dir / "logs" / f"dag_id={dag_id}").glob(f"run_id=*/task_id={task_ids[0]}/*.log")) \
        if task_ids else []
    return logs[-1].read_text(errors="replace")[-3000:] if logs else f"(no task log; see {stack.run_dir})"


def _task_instances(stack: Stack) -> dict[str, dict[str, int]]:
    """Successful task instances per recorded hostname and DAG, from the metadata database."""
    import psycopg2

    conn = psycopg2.connect(_with_db(pg_url(), stack.meta_db))
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


def _warehouse_counts(stack: Stack) -> dict[str, int]:
    """Rows the chain left in a few of its tables: proof it did the work, not just ran."""
    import psycopg2

    tables = ("raw.shop_orders", "staging.contacts", "marts.customer_rfm", "audiences.audience_members",
              "campaigns.send_ledger")
    conn = psycopg2.connect(stack.warehouse_url)
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
        timeout: float = 600, say=print) -> dict:
    """Run the chain of ``run_date`` on a fresh Celery stack; stops every process and drops both databases."""
    t0 = time.perf_counter()
    stack = Stack(run_dir)
    airflow = str(BIN / "airflow")
    timings: dict[str, float] = {}
    with _throwaway_databases(stack.meta_db, stack.warehouse_db):
        try:
            say(f"metadata database {stack.meta_db}, warehouse {stack.warehouse_db}, "
                f"broker {redis_url()} queue {stack.queue}, api-server {stack.api}")
            stack.run([airflow, "db", "migrate"])
            stack.run([str(BIN / "martech"), "simulate", "--customers", str(customers),
                       "--as-of", run_date.isoformat(), "--seed", str(seed)])
            timings["setup_s"] = time.perf_counter() - t0
            stack.start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port",
                                       str(stack.api_port), "--workers", "1"])
            stack.start("scheduler", [airflow, "scheduler", "--skip-serve-logs"])
            stack.start("dag-processor", [airflow, "dag-processor"])
            for name in WORKERS:
                stack.start(name, [airflow, "celery", "worker", "--celery-hostname", f"{name}-{stack.token}@%h",
                                   "--queues", stack.queue, "--concurrency", "2", "--skip-serve-logs",
                                   "--without-gossip", "--without-mingle"],
                            {"MARTECH_WORKER_HOSTNAME": name,
                             "AIRFLOW__CORE__HOSTNAME_CALLABLE": "celery_local.worker_hostname",
                             "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "docker"),
                                                                       os.environ.get("PYTHONPATH")) if p)})
            stack.wait_for("the api-server", lambda: stack._answers(f"{stack.api}/api/v2/version"), 120)
            stack.wait_for("the scheduler's health check",
                           lambda: stack._answers(f"http://127.0.0.1:{stack.health_port}/health"), 120)
            stack.wait_for("the DAGs to be parsed", lambda: _dags_parsed(stack), 180)
            campaigns = _dags_parsed(stack)
            timings["stack_up_s"] = time.perf_counter() - t0
            say(f"stack up after {timings['stack_up_s']:.0f}s; {len(campaigns)} campaign DAGs")
            for dag_id in STAGES:
                t = time.perf_counter()
                _wait_runs(stack, {dag_id: _trigger(stack, dag_id, run_date)}, timeout)
                timings[f"{dag_id}_s"] = time.perf_counter() - t
                say(f"  {dag_id:<24} success {timings[f'{dag_id}_s']:5.1f}s")
            t = time.perf_counter()
            _wait_runs(stack, {dag_id: _trigger(stack, dag_id, run_date) for dag_id in campaigns}, timeout)
            timings["campaigns_s"] = time.perf_counter() - t
            say(f"  {len(campaigns)} campaign DAGs{'':<7} success {timings['campaigns_s']:5.1f}s")
            per_host = _task_instances(stack)
            rows = _warehouse_counts(stack)
        except BaseException:
            say(f"failed; component logs in {run_dir}")
            raise
        finally:
            stack.stop()
            with contextlib.suppress(Exception):
                stack.clear_queue()
    timings["wall_s"] = time.perf_counter() - t0
    return {"dags": [*STAGES, *campaigns], "task_instances": per_host, "rows": rows, "slots": slots(),
            "timings": timings, "queue": stack.queue, "databases": [stack.meta_db, stack.warehouse_db],
            "pids": [p.pid for p in stack.procs.values()], "run_date": run_date.isoformat(), "customers": customers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--date", type=dt.date.fromisoformat, default=RUN_DATE)
    parser.add_argument("--keep-logs", action="store_true", help="keep the component logs after a success")
    args = parser.parse_args(argv)
    missing = missing_services()
    if missing:
        print(f"cannot run: {'; '.join(missing)} not answering")
        return 1
    # Stop cleanly (every process group, both databases) on Ctrl-C or SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run_dir = Path(tempfile.mkdtemp(prefix="martech-celery-"))
    try:
        result = run(run_dir, customers=args.customers, run_date=args.date)
    except StackFailed as exc:
        print(f"CELERY RUN FAILED: {exc}")
        return 1
    print("task instances per worker (task_instance.hostname):")
    for host, per_dag in result["task_instances"].items():
        print(f"  {host:<10} {sum(per_dag.values()):3d}  " + ", ".join(f"{d} {n}" for d, n in per_dag.items()))
    print("rows: " + ", ".join(f"{t} {n}" for t, n in result["rows"].items()))
    print(f"wall time {result['timings']['wall_s']:.0f}s (stack up after {result['timings']['stack_up_s']:.0f}s)")
    if args.keep_logs:
        print(f"logs: {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
