"""Which task errors Airflow retries: only what a later try may get past (lost connections, lock
timeouts, deadlocks, serialization failures, 5xx); a contract error fails the task in its first try."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import urllib.error

import pytest
import sqlalchemy as sa

from martech import dagkit

pytestmark = pytest.mark.integration


def _error_of(fn) -> BaseException:
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("expected an error")


def test_database_errors_are_told_apart(engine):
    def missing_column():
        with engine.connect() as conn:
            conn.execute(sa.text("select no_such_column from raw.ingest_batches"))

    def statement_timeout():
        with engine.connect() as conn:
            conn.execute(sa.text("set local statement_timeout = 20"))
            conn.execute(sa.text("select pg_sleep(2)"))

    def lock_timeout():
        holding = threading.Event()
        release = threading.Event()

        def hold():
            with engine.begin() as conn:
                conn.execute(sa.text("lock table raw.ingest_batches in access exclusive mode"))
                holding.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        holding.wait(10)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("set local lock_timeout = 50"))
                conn.execute(sa.text("select count(*) from raw.ingest_batches"))
        finally:
            release.set()
            holder.join()

    def refused():
        import psycopg2

        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        psycopg2.connect(host="127.0.0.1", port=port, dbname="x", connect_timeout=2)

    assert not dagkit.is_transient(_error_of(missing_column))
    assert dagkit.is_transient(_error_of(statement_timeout))
    assert dagkit.is_transient(_error_of(lock_timeout))
    assert dagkit.is_transient(_error_of(refused))


def test_contract_and_network_errors():
    from martech.campaigns.spec import CampaignSpecError
    from martech.ingest.connectors._http import ApiError, AuthError
    from martech.ingest.files import ContractError
    from martech.ingest.sources import SourcesError
    from martech.quality.results import DataQualityError

    for err in (ContractError("products/p.csv: missing: price"), CampaignSpecError("vip: bad field"),
                SourcesError("sources.yml: shop_db: unknown kind"), DataQualityError("raw gate failed"),
                AuthError("HubSpot rejected the credentials (401)", 401), ApiError("404", 404),
                KeyError("run_date"), urllib.error.HTTPError("http://x", 400, "Bad Request", None, None)):  # type: ignore[arg-type]
        assert not dagkit.is_transient(err), err
    for err in (ApiError("still failing after 8 attempts; last: 503", None), ApiError("502", 502),
                ConnectionResetError(), TimeoutError(), urllib.error.URLError("refused"),
                urllib.error.HTTPError("http://x", 503, "Unavailable", None, None)):  # type: ignore[arg-type]
        assert dagkit.is_transient(err), err
    # The causes count: an error raised because a connection was lost is transient too.
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as inner:
            raise RuntimeError("load failed") from inner
    except RuntimeError as outer:
        assert dagkit.is_transient(outer)


def test_a_catalog_row_updated_by_two_sessions_at_once_is_retried_other_internal_errors_not():
    """ALTER ROLE of the cluster-wide analyst role from two warehouses of one server: PostgreSQL
    answers XX000 "tuple concurrently updated" to the one that lost the race; the next try finds it done."""

    class InternalError(Exception):  # psycopg2.errors.InternalError_ carries the SQLSTATE as pgcode
        def __init__(self, message: str) -> None:
            super().__init__(message)
            self.pgcode = "XX000"

    assert dagkit.is_transient(InternalError("tuple concurrently updated"))
    assert not dagkit.is_transient(InternalError("could not open relation with OID 16384"))


def test_fail_fast_turns_contract_errors_into_airflow_failures():
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from martech.ingest.files import ContractError

    def contract():
        raise ContractError("products/p.csv: missing: price")

    def transient():
        raise ConnectionResetError("peer reset")

    def skip():
        raise AirflowSkipException("nothing to do")

    with pytest.raises(AirflowFailException, match=r"ContractError: products/p\.csv: missing: price") as info:
        dagkit.fail_fast(contract)()
    assert isinstance(info.value.__cause__, ContractError)
    with pytest.raises(ConnectionResetError):
        dagkit.fail_fast(transient)()
    with pytest.raises(AirflowSkipException):
        dagkit.fail_fast(skip)()
    assert dagkit.fail_fast(lambda a, b=2: a + b)(1, b=3) == 4


@pytest.mark.e2e
def test_ingest_with_a_config_error_fails_in_one_try(clean_warehouse, warehouse_url):
    """No shop database configured and none simulated: a SourcesError no retry can fix."""
    from martech.devtools import airflow_env, demo

    airflow_env.configure(warehouse_url)
    airflow_env.migrate_metadata()
    dag = demo._load_dags()["ingest"]
    run = dt.date(2026, 5, 4)
    dr = dag.test(logical_date=dt.datetime(2026, 5, 4, 2, tzinfo=dt.timezone.utc),
                  run_conf={"run_date": run.isoformat()})
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert str(dr.state).endswith("failed")
    assert str(tis["ingest_shop"].state).endswith("failed")
    assert tis["ingest_shop"].try_number == 1
    assert str(tis["validate_raw"].state).endswith("upstream_failed")
