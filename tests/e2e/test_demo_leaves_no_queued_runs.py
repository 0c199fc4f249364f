"""What the demo's ``dag.test()`` runs leave in Airflow's metadata: asset events queued for the DAGs
scheduled on them, which the demo clears, so a scheduler started afterwards (``make airflow``) replays
nothing; and runs that carry their real start and end times."""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = pytest.mark.e2e

DAY = dt.date(2026, 5, 4)


def _queued() -> int:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return int(session.scalar(select(func.count()).select_from(AssetDagRunQueue)) or 0)


def test_the_queue_the_demo_runs_leave_is_cleared(clean_warehouse, warehouse_url, tmp_path):
    from martech import paths
    from martech.devtools import airflow_env, demo
    from martech.simulate import generate_sources

    airflow_env.configure(warehouse_url)
    airflow_env.migrate_metadata()
    generate_sources(clean_warehouse, paths.landing_dir(), as_of=DAY, customers=60, seed=3, defect_rate=0)
    dags = demo._load_dags()
    airflow_env.clear_asset_queue()
    before = dt.datetime.now(dt.timezone.utc)
    took = demo._run_dag(dags, "ingest", DAY, 2, tmp_path / "airflow.log")
    after = dt.datetime.now(dt.timezone.utc)
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == "ingest")
                              .order_by(DagRun.id.desc()).limit(1)).one()
        assert before <= run.start_date <= run.end_date <= after
        assert (run.end_date - run.start_date).total_seconds() <= took + 5  # not weeks
    # The demo's progress bar counts from the same place: every task of the run finished.
    logical = dt.datetime.combine(DAY, dt.time(2), tzinfo=dt.timezone.utc)
    assert demo._tasks_finished("ingest", logical) == (len(dags["ingest"].tasks), None)
    assert _queued() >= 1  # staging is scheduled on the checked raw asset
    assert airflow_env.clear_asset_queue() >= 1
    assert _queued() == 0
