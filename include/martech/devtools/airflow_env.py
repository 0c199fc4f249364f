"""A local Airflow for martech: SQLite metadata under ``.martech/airflow``, this project's DAGs.

Used by ``martech demo`` and ``make airflow``. Must run before ``airflow`` is imported, because
Airflow reads its configuration at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from martech import paths


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or paths.home() / "airflow")


def configure(warehouse_url: str | None = None) -> dict[str, str]:
    """Set the environment for a local Airflow and return the variables that were set."""
    home = airflow_home()
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(paths.DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(paths.PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    }
    if warehouse_url:
        env["MARTECH_WAREHOUSE_URL"] = warehouse_url
    os.environ.update(env)
    return env


def migrate_metadata(log_file: Path | None = None) -> None:
    """``airflow db migrate`` in a subprocess (idempotent; fast when already migrated)."""
    marker = airflow_home() / ".migrated"
    if marker.exists() and (airflow_home() / "airflow.db").exists():
        return
    res = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True,
                         env=os.environ.copy())
    if log_file:
        with open(log_file, "a") as fh:
            fh.write(res.stdout + res.stderr)
    if res.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    marker.write_text("ok\n")


def clear_asset_queue() -> int:
    """Forget the asset events no scheduler has acted on yet; returns how many queued triggers went.

    ``dag.test()`` runs (the demo's) record their asset events, and each queues a run of every DAG
    scheduled on that asset, although the demo already ran those DAGs itself. Left queued, the first
    scheduler started on this metadata database would replay them. The events stay, as history.
    """
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        result = session.execute(delete(AssetDagRunQueue))
        return int(getattr(result, "rowcount", 0) or 0)
