"""The campaign DAGs' dispatch: once-per-run tasks around one task mapped over the customer hash partitions."""

from __future__ import annotations

import pytest

from martech import paths
from martech.dagkit import SENDS


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(paths.DAGS_DIR / "campaigns.py"))
    assert bag.import_errors == {}
    return bag


@pytest.mark.parametrize("dag_id", ["campaign_winback", "campaign_abandoned_cart"])
def test_the_dispatch_is_mapped_over_partitions_between_once_per_run_tasks(bag, dag_id):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag = bag.dags[dag_id]
    mapped = [t.task_id for t in dag.tasks if isinstance(t, MappedOperator)]
    assert mapped == ["dispatch_partition"]
    partition = dag.get_task("dispatch_partition")
    # one task instance per assignment prepare_dispatch returns (dispatch.partitions of them)
    [(name, source)] = partition.op_kwargs_expand_input.value.items()
    assert name == "assignment" and source.operator.task_id == "prepare_dispatch"
    assert partition.upstream_task_ids == {"prepare_dispatch"}
    assert partition.max_active_tis_per_dagrun and partition.retries >= 2
    assert dag.get_task("prepare_dispatch").upstream_task_ids == {"validate_audience"}
    assert dag.get_task("validate_audience").upstream_task_ids == {"build_audience"}
    final = dag.get_task("dispatch")
    # the run's row and the asset event come once, after every partition, failed or not
    assert final.upstream_task_ids == {"prepare_dispatch", "dispatch_partition"}
    assert final.trigger_rule == "all_done" and final.outlets == [SENDS]
    assert [t.task_id for t in dag.tasks if t.outlets] == ["dispatch"]
    assert dag.get_task("build_audience").upstream_task_ids == (
        {"refresh_shop"} if dag_id == "campaign_abandoned_cart" else set())
