"""The freshness gate: a campaign run sends only when the marts it reads and the suppressions are as of
its run date, and otherwise says which table is stale and as of when."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.campaigns import runner
from martech.campaigns.freshness import (
    StaleInputsError,
    marts_read_by,
    record_suppression_refresh,
    require_fresh,
    stale_inputs,
)
from martech.campaigns.spec import load_campaigns
from martech.campaigns.transports import OutboxTransport
from martech.runs import Run

pytestmark = pytest.mark.integration

RUN = dt.date(2026, 11, 2)
SPECS = {s.id: s for s in load_campaigns()}
NOW = dt.datetime(2026, 11, 2, 10, tzinfo=dt.timezone.utc)


def _rfm_as_of(conn, day: dt.date) -> None:
    conn.execute(sa.text(
        "insert into marts.customer_rfm values (:d, 1, 3, 2, 80, :d - 30, :d - 3, 5, 3, 3, '533', 'champions')"),
        {"d": day})


def test_marts_read_by_finds_each_mart_of_an_audience_once() -> None:
    assert marts_read_by(SPECS["winback"].audience_sql_text()) == ("marts.clv_predictions", "marts.customer_rfm")
    assert marts_read_by(SPECS["birthday"].audience_sql_text()) == ()


def test_stale_mart_and_unrefreshed_suppressions_are_named_with_their_as_of(clean_warehouse) -> None:
    with clean_warehouse.begin() as conn:
        _rfm_as_of(conn, RUN - dt.timedelta(days=3))
        problems = stale_inputs(conn, SPECS["vip"].audience_sql_text(), RUN)
    assert problems == [
        "marts.customer_rfm is as of 2026-10-30, older than the run date 2026-11-02; run customer_models for"
        " 2026-11-02 first.",
        "campaigns.suppressions is as of never (no email-events run), older than 2026-11-02; run email_events"
        " for 2026-11-02 first.",
    ]


def test_fresh_inputs_pass_and_an_hourly_series_accepts_yesterdays_suppressions(clean_warehouse) -> None:
    with clean_warehouse.begin() as conn:
        _rfm_as_of(conn, RUN)
        record_suppression_refresh(conn, RUN - dt.timedelta(days=1), 0, NOW)
    with pytest.raises(StaleInputsError, match=r"campaigns\.suppressions is as of 2026-11-01"):
        require_fresh(clean_warehouse, SPECS["vip"], RUN)
    require_fresh(clean_warehouse, SPECS["abandoned_cart"], RUN)  # hourly: the previous day's refresh will do
    with clean_warehouse.begin() as conn:
        record_suppression_refresh(conn, RUN, 2, NOW)
    require_fresh(clean_warehouse, SPECS["vip"], RUN)
    with clean_warehouse.connect() as conn:
        assert conn.execute(sa.text("select run_date, added from campaigns.suppression_refreshes"
                                    " order by run_date")).all() == [(RUN - dt.timedelta(days=1), 0), (RUN, 2)]


def test_a_stale_run_refuses_before_sending_anything(clean_warehouse, warehouse, tmp_path: Path) -> None:
    with clean_warehouse.begin() as conn:
        _rfm_as_of(conn, RUN - dt.timedelta(days=1))
        record_suppression_refresh(conn, RUN, 0, NOW)
    with pytest.raises(StaleInputsError) as caught:
        runner.dispatch(warehouse, "vip", Run.daily(RUN), NOW, transport=OutboxTransport(tmp_path))
    assert str(caught.value) == ("campaign 'vip' does not send for 2026-11-02: marts.customer_rfm is as of"
                                 " 2026-11-01, older than the run date 2026-11-02; run customer_models for"
                                 " 2026-11-02 first.")
    with clean_warehouse.connect() as conn:
        assert conn.execute(sa.text("select count(*) from campaigns.send_ledger")).scalar_one() == 0
    assert not list(tmp_path.rglob("*.eml"))


def test_the_email_events_stage_records_its_refresh(clean_warehouse, warehouse, tmp_path: Path) -> None:
    pipeline.ingest_events(warehouse, RUN, folder=tmp_path)
    with clean_warehouse.connect() as conn:
        assert conn.execute(sa.text("select run_date, refreshed_at from campaigns.suppression_refreshes")).one() == (
            RUN, dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc))
