"""The README's hand-runs of a DAG work on a fresh MARTECH_HOME: Airflow's metadata is migrated first."""

from __future__ import annotations

import re

from martech.paths import PROJECT_ROOT


def test_every_hand_run_of_a_dag_migrates_airflow_first():
    text = (PROJECT_ROOT / "README.md").read_text()
    runs = [m.start() for m in re.finditer(r"airflow dags test ", text)]
    assert runs, "the README shows no hand-run of a DAG"
    for at in runs:
        before = text[:at]
        env = before.rfind("martech airflow-env")
        assert env != -1 and "airflow db migrate" in before[env:], text[max(env, 0):at + 40]
