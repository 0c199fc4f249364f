"""DAG integrity and policy: every DAG parses, follows the shared defaults, and parsing is cheap and
side-effect free (no heavy imports, no database, no connection or variable lookups)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from martech import paths

EXPECTED_STAGE_DAGS = {"ingest", "staging", "customer_models", "email_events", "kpis", "retention", "gdpr_erase",
                       "crm_sync"}
HEAVY = ("pandas", "sklearn", "great_expectations", "sendgrid", "scipy", "numpy", "psycopg2", "jinja2")

# Runs in a fresh interpreter so sys.modules shows exactly what parsing imported.
_PROBE = textwrap.dedent(
    """
    import json, sys
    import airflow.sdk  # baseline: what Airflow itself imports
    from airflow.dag_processing.dagbag import DagBag

    calls = []
    def forbid(what):
        def _raise(*a, **k):
            calls.append(what)
            raise RuntimeError(what + " at parse time")
        return _raise

    import sqlalchemy.engine.create as create
    from airflow.sdk import Connection, Variable, BaseHook
    Connection.get = classmethod(forbid("Connection.get"))
    Variable.get = staticmethod(forbid("Variable.get"))
    BaseHook.get_connection = classmethod(forbid("BaseHook.get_connection"))
    import socket
    socket.create_connection = forbid("socket.create_connection")

    before = set(sys.modules)
    bag = DagBag(dag_folder=sys.argv[1])
    new = sorted(m for m in set(sys.modules) - before)
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "tags": sorted(dag.tags),
            "doc_md": bool(dag.doc_md and dag.doc_md.strip()),
            "doc": dag.doc_md or "",
            "paused_upon_creation": bool(dag.is_paused_upon_creation),
            "tasks": {t.task_id: {"owner": t.owner, "retries": t.retries,
                                  "fails_fast": getattr(getattr(t, "python_callable", None), "fails_fast", False)}
                      for t in dag.tasks},
            "schedule": type(dag.timetable).__name__,
        }
    print(json.dumps({"errors": {k: v for k, v in bag.import_errors.items()}, "new_modules": new,
                      "calls": calls, "dags": dags}))
    """
)


def _parse(**env_extra: str) -> dict:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", _PROBE, str(paths.DAGS_DIR)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed() -> dict:
    return _parse()


def test_no_import_errors(parsed):
    assert parsed["errors"] == {}


def test_expected_dags_found(parsed):
    from martech.campaigns.spec import load_campaigns

    campaigns = {f"campaign_{c.id}" for c in load_campaigns() if c.enabled}
    assert len(campaigns) >= 3
    assert set(parsed["dags"]) == EXPECTED_STAGE_DAGS | campaigns


def test_parse_imports_nothing_heavy(parsed):
    heavy = [m for m in parsed["new_modules"] if m.split(".")[0] in HEAVY]
    assert heavy == []


def test_parse_touches_no_database_or_connection(parsed):
    assert parsed["calls"] == []


@pytest.mark.parametrize("policy", ["owner", "tags", "retries", "fails_fast", "doc_md"])
def test_every_dag_follows_policy(parsed, policy):
    for dag_id, dag in parsed["dags"].items():
        if policy == "tags":
            assert "martech" in dag["tags"], dag_id
        elif policy == "doc_md":
            assert dag["doc_md"], dag_id
        else:
            for task_id, t in dag["tasks"].items():
                if policy == "owner":
                    assert t["owner"] and t["owner"] != "airflow", f"{dag_id}.{task_id}"
                elif policy == "fails_fast":  # retries only for transient errors (dagkit.task)
                    assert t["fails_fast"], f"{dag_id}.{task_id}"
                else:
                    assert t["retries"] >= 2, f"{dag_id}.{task_id}"


def test_dag_files_are_thin():
    for path in paths.DAGS_DIR.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 100, f"{path.name}: move logic into include/martech"


def test_campaign_dags_are_created_paused_and_data_dags_are_not(parsed):
    paused = {dag_id for dag_id, dag in parsed["dags"].items() if dag["paused_upon_creation"]}
    assert paused == {d for d in parsed["dags"] if d.startswith("campaign_")}
    assert paused and not paused & EXPECTED_STAGE_DAGS


def test_dag_docs_have_no_raw_html_outside_code(parsed):
    for dag_id, dag in parsed["dags"].items():
        prose = re.sub(r"`[^`]*`", "", dag["doc"])
        assert not re.search(r"<[A-Za-z/]", prose), f"{dag_id}: a '<...>' outside backticks renders as HTML"
    assert "`campaign_<id>`" in parsed["dags"]["campaign_vip"]["doc"]


def test_a_broken_campaign_file_is_an_import_error_naming_it_and_the_others_keep_their_dags(tmp_path):
    folder = tmp_path / "campaigns"
    shutil.copytree(paths.CAMPAIGNS_DIR, folder)
    vip = folder / "vip.yml"
    vip.write_text(vip.read_text().replace("holdout_share:", "holdout_shar:", 1))
    parsed = _parse(MARTECH_CAMPAIGNS_DIR=str(folder))
    assert "campaign_vip" not in parsed["dags"]
    assert {"campaign_birthday", "campaign_winback", "campaign_abandoned_cart"} <= set(parsed["dags"])
    assert set(parsed["dags"]) >= EXPECTED_STAGE_DAGS
    [(where, message)] = parsed["errors"].items()
    assert where.endswith("campaign_spec_errors.py")
    assert "vip.yml" in message and "holdout_shar" in message
