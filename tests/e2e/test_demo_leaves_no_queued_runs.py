"""The demo's ``dag.test()`` runs leave asset events queued for the DAGs scheduled on them; the demo
clears that queue, so a scheduler started afterwards (``make airflow``) replays nothing."""

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
    demo._run_dag(dags, "ingest", DAY, 2, tmp_path / "airflow.log")
    assert _queued() >= 1  # staging is scheduled on the checked raw asset
    assert airflow_env.clear_asset_queue() >= 1
    assert _queued() == 0
