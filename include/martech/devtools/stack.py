"""Airflow's own processes on this machine, for the stack checks (``docker/celery_local.py``,
:mod:`martech.devtools.scheduler_check`): throwaway databases on a PostgreSQL server, one process group
per component, the REST API to unpause and trigger DAGs and to watch their runs.

Only the standard library at module level (psycopg2 inside functions): a Celery worker's task processes
import the Celery script, which imports this.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from martech import paths

ROOT = paths.PROJECT_ROOT
BIN = Path(sys.executable).parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The DAGs every check needs parsed before it triggers anything.
CHAIN_DAGS = frozenset({"ingest", "staging", "customer_models", "email_events", "kpis"})


class StackFailed(RuntimeError):
    pass


class DagImportError(StackFailed):
    """A DAG file does not parse: waiting longer will not help."""


def checked_run(missing: Sequence[str], prefix: str, run: Callable[[Path], dict[str, Any]],
                failure: str) -> tuple[dict[str, Any], Path] | None:
    """What ``run`` returns for a fresh temporary folder (named ``prefix``...), and that folder; None, said on
    stdout, when a service is not answering or the stack failed (``failure: <why>``; the folder is kept)."""
    if missing:
        print(f"cannot run: {'; '.join(missing)} not answering")
        return None
    run_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return run(run_dir), run_dir
    except StackFailed as exc:
        print(f"{failure}: {exc}")
        return None


def with_db(url: str, dbname: str) -> str:
    return f"{url.rpartition('/')[0]}/{dbname}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def not_answering(name: str, url: str, default_port: int) -> str | None:
    """Why the service at ``url`` does not accept a connection, or None when it does."""
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return None
    except OSError as exc:
        return f"{name} at {parts.hostname}:{parts.port or default_port} ({exc.strerror or exc})"


@contextlib.contextmanager
def throwaway_databases(server_url: str, *names: str) -> Iterator[None]:
    """Create the databases on the server, and drop them (their sessions ended first) afterwards."""
    import psycopg2

    admin = psycopg2.connect(server_url)
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
    """The processes of one run and the settings they share; ``settings`` are the executor's own."""

    run_dir: Path
    server_url: str
    meta_db: str
    settings: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.api_port = free_port()
        self.health_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        # One signing secret for every component: a task's token must verify at the api-server.
        self.jwt_secret = secrets.token_urlsafe(32)
        self.api_secret = secrets.token_urlsafe(32)
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)

    @property
    def meta_url(self) -> str:
        return with_db(self.server_url, self.meta_db)

    def env(self) -> dict[str, str]:
        meta = self.meta_url.replace("postgresql://", "postgresql+psycopg2://", 1)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MARTECH_", "PYTEST"))}
        base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
        return {
            **base,
            "AIRFLOW_HOME": str(self.run_dir / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__API__SECRET_KEY": self.api_secret,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            # Cron and asset schedules off: unpaused DAGs would start runs of their own for today's date.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.health_port),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.run_dir / "logs"),
            "MARTECH_HOME": str(self.run_dir / "home"),
            **self.settings,
        }

    def start(self, name: str, args: list[str], extra: dict[str, str] | None = None) -> None:
        log = open(self.run_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        env = {**self.env(), **(extra or {})}
        self.procs[name] = subprocess.Popen(args, env=env, cwd=self.run_dir, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def start_core(self, *, scheduler_args: tuple[str, ...] = ()) -> None:
        """api-server, scheduler and dag-processor (an executor's workers are the caller's)."""
        airflow = str(BIN / "airflow")
        self.start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port),
                                  "--workers", "1"])
        self.start("scheduler", [airflow, "scheduler", "--skip-serve-logs", *scheduler_args])
        self.start("dag-processor", [airflow, "dag-processor"])

    def wait_until_up(self) -> list[str]:
        """Wait for the api-server, the scheduler and the parsed DAGs; returns the campaign DAG ids."""
        self.wait_for("the api-server", lambda: self.answers(f"{self.api}/api/v2/version"), 120)
        self.wait_for("the scheduler's health check",
                      lambda: self.answers(f"http://127.0.0.1:{self.health_port}/health"), 120)
        self.wait_for("the DAGs to be parsed", lambda: bool(dags_parsed(self)), 180)
        return dags_parsed(self)

    def run(self, args: list[str], timeout: float = 300, extra: dict[str, str] | None = None) -> str:
        res = subprocess.run(args, env={**self.env(), **(extra or {})}, cwd=self.run_dir, capture_output=True,
                             text=True, timeout=timeout)
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
        """SIGTERM every process group, wait up to 20 s (a running task finishes), SIGKILL the rest."""
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

    # The REST API (all users are admins in a throwaway stack).
    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """One REST call. A read that times out (a loaded machine) is asked again, twice; a write is
        given two minutes, once (asked again, a trigger could start a second run)."""
        data = json.dumps(body).encode() if body is not None else None
        attempts = 3 if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            req = urllib.request.Request(f"{self.api}/api/v2{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60 if method == "GET" else 120) as resp:
                    return dict(json.loads(resp.read() or b"{}"))
            except urllib.error.HTTPError as exc:
                raise StackFailed(f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from exc
            except (TimeoutError, urllib.error.URLError) as exc:
                if attempt == attempts:
                    raise StackFailed(f"{method} {path}: no answer from the api-server ({exc})") from exc
        raise AssertionError("unreachable")

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float) -> None:
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

    def answers(self, url: str) -> bool:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bool(resp.status == 200)


def dags_parsed(stack: Stack) -> list[str]:
    """The campaign DAG ids once the chain's DAGs and at least one campaign are parsed (else empty)."""
    errors = stack.call("GET", "/importErrors")
    if errors.get("import_errors"):
        first = errors["import_errors"][0]
        raise DagImportError(f"DAG import error in {first.get('filename')}: {first.get('stack_trace', '')[-1500:]}")
    dag_ids = [d["dag_id"] for d in stack.call("GET", "/dags?limit=1000")["dags"]]
    campaigns = [d for d in dag_ids if d.startswith("campaign_")]
    return sorted(campaigns) if set(CHAIN_DAGS) <= set(dag_ids) and campaigns else []


def unpause(stack: Stack, dag_id: str) -> None:
    stack.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})


def trigger(stack: Stack, dag_id: str, run_date: dt.date, hour: int = 2) -> str:
    """Unpause ``dag_id`` and start its run for ``run_date`` (logical date that day at ``hour``:00 UTC)."""
    unpause(stack, dag_id)
    logical = dt.datetime.combine(run_date, dt.time(hour), tzinfo=dt.timezone.utc).isoformat()
    run = stack.call("POST", f"/dags/{dag_id}/dagRuns",
                     {"logical_date": logical, "conf": {"run_date": run_date.isoformat()}})
    return str(run["dag_run_id"])


def run_state(stack: Stack, dag_id: str, run_id: str) -> tuple[str, list[str]]:
    """The run's state and the tasks of it that failed (a failed try counts: retries would wait minutes)."""
    path = f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    state = str(stack.call("GET", path)["state"])
    if state == "success":
        return state, []
    tis = stack.call("GET", f"{path}/taskInstances")["task_instances"]
    return state, [t["task_id"] for t in tis if t["state"] in ("failed", "upstream_failed", "up_for_retry")]


def wait_runs(stack: Stack, runs: dict[str, str], timeout: float) -> None:
    """Wait until every ``dag_id: run_id`` succeeded; the first failed task fails the wait with its log."""
    pending = dict(runs)
    deadline = time.monotonic() + timeout
    while pending:
        stack.check_alive()
        for dag_id, run_id in list(pending.items()):
            if succeeded(stack, dag_id, run_id, f"{dag_id} run {run_id}"):
                del pending[dag_id]
        if time.monotonic() > deadline:
            raise StackFailed(f"timed out after {timeout:.0f}s waiting for {sorted(pending)}")
        time.sleep(1)


def succeeded(stack: Stack, dag_id: str, run_id: str, what: str) -> bool:
    """Whether the run has succeeded; raises StackFailed (with the failed tasks' log tails) once it failed."""
    state, failed = run_state(stack, dag_id, run_id)
    if state != "success" and (failed or state == "failed"):
        raise StackFailed(f"{what} {state}, failed tasks {failed}: {task_log_tail(stack, dag_id, failed)}")
    return state == "success"


def task_log_tail(stack: Stack, dag_id: str, task_ids: list[str]) -> str:
    logs = sorted((stack.run_dir / "logs" / f"dag_id={dag_id}").glob(f"run_id=*/task_id={task_ids[0]}/*.log")) \
        if task_ids else []
    return logs[-1].read_text(errors="replace")[-3000:] if logs else f"(no task log; see {stack.run_dir})"


def metadata_rows(stack: Stack, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query on the stack's metadata database."""
    import psycopg2

    conn = psycopg2.connect(stack.meta_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()
