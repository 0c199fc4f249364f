"""The daily chain under the real scheduler, concurrently: two days, every DAG unpaused (the campaigns
too, on the outbox transport), LocalExecutor with ``[core] parallelism`` 4 on a throwaway PostgreSQL
metadata database; each run triggered as soon as what it reads is written (``scheduler_check.needs``).
No task may fail or retry (a deadlock fails a try), every run must succeed, and the public tables must
equal those of the same two days run one ``dag.test()`` at a time — once on the embedded warehouse,
once on a throwaway database of the server at 127.0.0.1:5432.

Needs the PostgreSQL server (the metadata database lives there): without it the test skips, loudly,
and fails instead when MARTECH_REQUIRE_SERVICES=1 (set by .ci/run, whose machine has one).
"""

from __future__ import annotations

import pytest

from martech.devtools import scheduler_check


def test_the_run_graph_lets_days_and_stages_overlap():
    graph = scheduler_check.needs(["campaign_a", "campaign_b"])
    day1, day2 = scheduler_check.DATES
    assert graph[("ingest", day1)] == set() and graph[("email_events", day1)] == set()
    assert graph[("ingest", day2)] == {("ingest", day1)}  # beside day 1's staging, models and campaigns
    assert ("kpis", day1) in graph[("staging", day2)]
    assert graph[("campaign_a", day1)] == graph[("campaign_b", day1)]  # the campaigns of a day together
    order = scheduler_check.sequential_order(graph)
    assert order[0] == ("ingest", day1) and order[-1] == ("kpis", day2)


@pytest.mark.stack
@pytest.mark.timeout(2400)
@pytest.mark.parametrize("warehouse", ["embedded", "server"])
def test_two_days_under_the_scheduler_equal_the_sequential_run(warehouse, tmp_path, require_services,
                                                               assert_nothing_left):
    require_services("SCHEDULER CONCURRENCY", scheduler_check.missing_services())

    result = scheduler_check.run(tmp_path, warehouse=warehouse, say=print)
    print(result["timings"], result["most_at_once"], result["task_states"])

    assert len(result["campaigns"]) >= 2
    assert result["dag_run_states"] == {"success": result["runs"]}
    assert set(result["task_states"]) <= {"success", "skipped"}, result["task_states"]
    assert result["retried"] == 0  # a deadlock or lock timeout would have failed a try
    # It ran concurrently: up to the executor's parallelism, across DAGs and across the two days.
    most = result["most_at_once"]
    assert 3 <= most["tasks"] <= scheduler_check.PARALLELISM, most
    assert most["dag_count"] >= 3 and most["days_overlapped"], most
    concurrent, sequential = result["concurrent"], result["sequential"]
    assert concurrent["marts.customer_rfm"]["rows"] > 100
    assert concurrent["campaigns.send_ledger"]["rows"] > 0
    assert result["differences"] == []
    assert concurrent == sequential

    assert_nothing_left(result, scheduler_check.pg_url())
