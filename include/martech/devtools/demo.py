"""``martech demo``: the whole chain through Airflow, for a send day and a day one attribution
window later, then a summary of what happened.

Day 1 (the send day): ingest → staging → customer_models → email_events (the suppressions a campaign
needs as of its run date) → every enabled campaign_<id>. Then the
simulator plays the recipients (deliveries, opens, clicks and the orders that follow, with a true
effect in the treatment arm). Day 2 (send day + 7): ingest → staging → customer_models →
email_events → kpis, so conversions and revenue are observed.

Each DAG runs through ``dag.test()`` in this one process (Airflow start-up is paid once); Airflow's
metadata is SQLite under ``.martech/airflow``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from martech import paths

DEMO_DATE = dt.date(2026, 11, 2)
ATTRIBUTION_DAYS = 7
DEMO_SCHEMAS = ("shop", "sim_truth", "raw", "staging", "marts", "audiences", "campaigns", "kpis")


class StageFailed(RuntimeError):
    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"stage {stage} failed: {reason}")
        self.stage = stage
        self.reason = reason


def _print(msg: str = "") -> None:
    print(msg, flush=True)


def reset(url: str) -> None:
    """Drop the demo's schemas and local outputs, so every demo starts from the same state."""
    import sqlalchemy as sa

    from martech.db import make_engine

    eng = make_engine(url)
    with eng.begin() as conn:
        for schema in DEMO_SCHEMAS:
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
    eng.dispose()
    for folder in (paths.landing_dir(), paths.outbox_dir()):
        shutil.rmtree(folder, ignore_errors=True)


def _load_dags() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(paths.DAGS_DIR))
    if bag.import_errors:
        errors = "; ".join(f"{k}: {v.strip().splitlines()[-1]}" for k, v in bag.import_errors.items())
        raise StageFailed("parse", errors)
    return bag.dags


@contextlib.contextmanager
def _output_to(log_file: Path):
    """Send everything written to stdout/stderr (Airflow's task logs included) to the log file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _run_dag(dags: dict, dag_id: str, run_date: dt.date, hour: int, log_file: Path) -> float:
    dag = dags[dag_id]
    logical = dt.datetime.combine(run_date, dt.time(hour), tzinfo=dt.timezone.utc)
    start = time.perf_counter()
    started = dt.datetime.now(dt.timezone.utc)
    with _task_progress(dag, logical), _output_to(log_file):
        dr = dag.test(logical_date=logical, run_conf={"run_date": run_date.isoformat()})
    took = time.perf_counter() - start
    _record_wall_clock(dr, started, dt.datetime.now(dt.timezone.utc))
    state = str(getattr(dr, "state", "unknown"))
    if not state.endswith("success"):
        failed = [ti.task_id for ti in dr.get_task_instances() if str(ti.state).endswith("failed")]
        raise StageFailed(dag_id, f"run for {run_date} ended {state}; failed tasks: "
                                  f"{', '.join(failed) or '?'} (details in {log_file})")
    return took


_FINISHED = ("success", "skipped", "failed", "upstream_failed", "removed")


def _tasks_finished(dag_id: str, logical: dt.datetime) -> tuple[int, str | None]:
    """How many task instances of the run at ``logical`` have finished, and one that is running."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.state).join(
                DagRun, (DagRun.dag_id == TaskInstance.dag_id) & (DagRun.run_id == TaskInstance.run_id))
            .where(DagRun.dag_id == dag_id, DagRun.logical_date == logical)).all()
    done = sum(1 for _task, state in rows if str(state or "") in _FINISHED)
    running = next((task for task, state in rows if str(state or "") == "running"), None)
    return done, running


@contextlib.contextmanager
def _task_progress(dag: Any, logical: dt.datetime):
    """A progress bar of the run's tasks (finished / total, and the one running) while ``dag.test()`` works.

    Drawn on the terminal the demo started on (inside the block, stdout and stderr go to the log file);
    nothing when that is not a terminal.
    Polls the metadata database from a thread; a poll that fails (SQLite busy) just waits for the next.
    """
    import threading

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    console = Console(file=terminal)
    if not console.is_terminal:  # a log or a pipe gets the one line per DAG the caller prints
        terminal.close()
        yield
        return
    total = max(1, len(dag.tasks))
    stop = threading.Event()
    with Progress(TextColumn("      {task.fields[dag]:<24}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                  TextColumn("tasks {task.fields[running]}"), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        job = bar.add_task(dag.dag_id, total=total, dag=dag.dag_id, running="")

        def poll() -> None:
            while not stop.wait(0.5):
                try:
                    done, running = _tasks_finished(dag.dag_id, logical)
                except Exception:  # a busy SQLite: the next poll sees it
                    continue
                bar.update(job, completed=min(done, total), running=f"· {running}" if running else "")

        watcher = threading.Thread(target=poll, name="demo-progress", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join(timeout=5)
    terminal.close()


def _record_wall_clock(dag_run: Any, started: dt.datetime, ended: dt.datetime) -> None:
    """``dag.test()`` starts a run at its logical date, so a past run date shows as a run of weeks in
    the UI; record when it really started and ended."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagRun).where(DagRun.id == dag_run.id).values(start_date=started, end_date=ended))


def run(*, run_date: dt.date = DEMO_DATE, customers: int = 20_000, seed: int = 42, fresh: bool = True,
        warehouse_url: str | None = None) -> int:
    """Run the demo; returns a process exit code."""
    from martech.devtools import airflow_env
    from martech.warehouse import resolve_url

    t0 = time.perf_counter()
    url = resolve_url(warehouse_url)
    _print(f"warehouse: {url}")
    log_file = paths.home() / "demo.log"
    log_file.write_text("")
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    airflow_used = False
    try:
        if fresh:
            reset(url)
        _print(f"[1/5] simulating a shop and CRM: {customers} customers, 2 years to {run_date} ...")
        from martech.pipeline import prepare_warehouse
        from martech.simulate import generate_sources
        from martech.warehouse import Warehouse

        eng = _engine(url)
        # A little dirt, so quarantine and quality have work; MARTECH_DEFECT_RATE=0 gives clean sources.
        summary = generate_sources(eng, paths.landing_dir(), as_of=run_date, customers=customers, seed=seed,
                                   defect_rate=float(os.environ.get("MARTECH_DEFECT_RATE", "0.01")))
        for line in summary.lines():
            _print(f"      {line}")
        with Warehouse(url) as wh:
            prepare_warehouse(wh)

        _print("[2/5] starting Airflow (SQLite metadata, this project's DAGs) ...")
        airflow_env.configure(url)
        airflow_env.migrate_metadata(log_file)
        airflow_used = True
        with _output_to(log_file):
            dags = _load_dags()
        campaign_dags = sorted(d for d in dags if d.startswith("campaign_"))
        _quiet_airflow_console()

        day1 = ["ingest", "staging", "customer_models", "email_events", *campaign_dags]
        _print(f"[3/5] send day {run_date}: {' → '.join(day1)}")
        for dag_id in day1:
            took = _run_dag(dags, dag_id, run_date, 2, log_file)
            _print(f"      {dag_id:<24} ok  {took:5.1f}s")

        _print(f"[4/5] recipients react over {ATTRIBUTION_DAYS} days (simulated opens, clicks, orders;"
               " events posted, signed, to the event webhook) ...")
        from martech.simulate import play_responses
        from martech.simulate.webhook import webhook_poster

        responses = play_responses(eng, paths.landing_dir(), send_date=run_date, days=ATTRIBUTION_DAYS,
                                   seed=seed, post_events=webhook_poster(eng))
        for line in responses.lines():
            _print(f"      {line}")

        day2_date = run_date + dt.timedelta(days=ATTRIBUTION_DAYS)
        day2 = ["ingest", "staging", "customer_models", "email_events", "kpis"]
        _print(f"[5/5] one attribution window later, {day2_date}: {' → '.join(day2)}")
        for dag_id in day2:
            took = _run_dag(dags, dag_id, day2_date, 3, log_file)
            _print(f"      {dag_id:<24} ok  {took:5.1f}s")

        from martech.devtools.summaries import summary_lines

        _print()
        for line in summary_lines(eng):
            _print(line)
        eng.dispose()
        _print()
        _print(f"outbox:    {paths.outbox_dir()}  (an .eml per message, index.html per campaign run)")
        _print(f"warehouse: {url}   (martech warehouse url; psql \"{url}\")")
        _print(f"log:       {log_file}")
        _print(f"demo finished in {time.perf_counter() - t0:.0f}s")
        return 0
    except StageFailed as exc:
        _print(f"\nDEMO FAILED at {exc.stage}: {exc.reason}")
        _tail(log_file)
        return 1
    except Exception as exc:
        _print(f"\nDEMO FAILED: {type(exc).__name__}: {exc}")
        _tail(log_file)
        return 1
    finally:
        if airflow_used:
            # The demo ran the DAGs itself: a scheduler started later (make airflow) must not run them
            # again from the asset events the demo's runs left queued.
            airflow_env.clear_asset_queue()
        root.removeHandler(handler)


def _engine(url: str):
    from martech.db import make_engine

    return make_engine(url)


def _quiet_airflow_console() -> None:
    # dag.test() logs every task line to the console; the demo keeps them in its log file instead.
    for name in ("airflow", "airflow.task", "airflow.processor", "sqlalchemy", "task", "martech"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                lg.removeHandler(h)
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            h.setLevel(logging.ERROR)


def _tail(log_file: Path, lines: int = 25) -> None:
    try:
        text = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return
    errors = [line for line in text if "ERROR" in line or "Error" in line]
    shown = errors[-lines:] if errors else text[-lines:]
    if shown:
        _print(f"--- last lines of {log_file} ---")
        for line in shown:
            _print(line[:400])


def customers_from_env() -> int:
    """The demo's scale: MARTECH_DEMO_CUSTOMERS when set (``make demo`` passes the environment on)."""
    raw = os.environ.get("MARTECH_DEMO_CUSTOMERS", "").strip()
    if not raw:
        return 20_000
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"MARTECH_DEMO_CUSTOMERS must be a whole number of at least 1, got {raw!r}"
                         " (unset it for the default of 20000)")
    return int(raw)


def main() -> None:  # pragma: no cover - thin entry point
    sys.exit(run(customers=customers_from_env()))
