"""The team stack's distributed path for real: CeleryExecutor with two workers on Redis and PostgreSQL.

Runs ``docker/celery_local.py`` (also ``make celery-demo``): api-server, scheduler, dag-processor and two
``airflow celery worker`` processes; the daily chain of one run date goes through the scheduler and must
land task instances on both workers. Needs Redis at 127.0.0.1:6379 and a PostgreSQL server at
127.0.0.1:5432; without them it skips, loudly — and fails instead when MARTECH_REQUIRE_SERVICES=1
(set by .ci/run, whose machine has both).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.stack, pytest.mark.celery, pytest.mark.timeout(900)]

MODULE = Path(__file__).resolve().parents[2] / "docker" / "celery_local.py"


def _stack_module():
    spec = importlib.util.spec_from_file_location("celery_local", MODULE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_daily_chain_runs_through_the_scheduler_on_two_celery_workers(tmp_path, require_services,
                                                                     assert_nothing_left):
    stack = _stack_module()
    require_services("CELERY STACK", stack.missing_services())

    result = stack.run(tmp_path / "stack", customers=300, say=lambda msg: None)
    print(result["timings"], result["task_instances"])

    per_host = result["task_instances"]
    assert set(per_host) == set(stack.WORKERS), per_host
    assert all(sum(per_dag.values()) > 0 for per_dag in per_host.values())
    # Every DAG of the chain had its tasks done by the workers.
    assert set().union(*per_host.values()) == set(result["dags"])
    assert {"ingest", "staging", "customer_models"} < set(result["dags"])
    assert any(d.startswith("campaign_") for d in result["dags"])
    rows = result["rows"]
    assert rows["marts.customer_rfm"] > 100
    assert rows["campaigns.send_ledger"] > 0

    # Nothing left behind: no process group, no database, no queue.
    assert_nothing_left(result, stack.pg_url())
    import redis

    client = redis.Redis.from_url(stack.redis_url())
    assert not list(client.scan_iter(match=f"*{result['queue']}*"))
    client.close()
