"""The pre-send gate: a snapshot with a non-consented, suppressed, duplicate or invalid address, or an
unusual size, is stopped before anything is sent, and every check is recorded."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from martech.db import run_model
from martech.quality.audience import check_snapshot, size_bounds
from martech.quality.results import DataQualityError

pytestmark = pytest.mark.integration
RUN = dt.date(2026, 5, 4)


@pytest.fixture()
def wh(clean_warehouse):
    eng = clean_warehouse
    run_model(eng, "staging.contacts", {"run_date": RUN, "run_ts": dt.datetime(2026, 5, 4, tzinfo=dt.timezone.utc)})
    return eng


def plant(eng, members: list[tuple[str, str, str]], run: dt.date = RUN, campaign: str = "promo") -> None:
    """members: (contact_id, email, consent_status)."""
    with eng.begin() as conn:
        for cid, email, consent in members:
            conn.execute(sa.text("insert into staging.contacts (contact_id, email, consent_status) values (:c, :e, :s)"
                                 " on conflict do nothing"), {"c": cid, "e": email, "s": consent})
            conn.execute(sa.text(
                "insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email, arm,"
                " variant, definition_hash) values (:k, :r, :d, :c, :e, 'treatment', 'a', 'h')"),
                {"k": campaign, "r": run.isoformat(), "d": run, "c": cid, "e": email})


def snapshot(eng, run: dt.date, treatment: int, campaign: str = "promo") -> None:
    with eng.begin() as conn:
        conn.execute(sa.text(
            "insert into audiences.snapshots (campaign_id, run_id, run_date, definition_hash, priority, cooldown_days,"
            " frequency_cap_window_days, candidates, members, treatment, holdout, excluded, holdout_share,"
            " baseline_conversion, power_warning) values (:k, :r, :d, 'h', 100, 0, 7, :n, :n, :n, 0, 0, 0.1, 0.02,"
            " false)"), {"k": campaign, "r": run.isoformat(), "d": run, "n": treatment})


def good(n: int) -> list[tuple[str, str, str]]:
    return [(f"c{i}", f"user{i}@example.com", "opted_in") for i in range(n)]


def recorded(eng) -> dict[tuple[str, str], tuple[bool, bool]]:
    with eng.connect() as conn:
        rows = conn.execute(sa.text("select expectation, column_name, success, critical from kpis.data_quality"
                                    " where run_id = :r"), {"r": f"audience:promo:{RUN.isoformat()}"}).all()
    return {(e, c): (s, k) for e, c, s, k in rows}


def test_a_clean_snapshot_passes_and_every_check_is_recorded(wh) -> None:
    plant(wh, good(5))
    report = check_snapshot(wh, "promo", RUN.isoformat(), RUN)
    assert report.success
    results = recorded(wh)
    assert len(results) == 5 and all(s for s, _ in results.values())
    # Without history the size check is recorded but not enforced.
    assert results[("expect_table_row_count_to_be_between", "")] == (True, False)


@pytest.mark.parametrize("bad, words", [
    (("x1", "x1@example.com", "opted_out"), "consented"),
    (("x2", "USER1@example.com ", "opted_in"), "expect_column_values_to_be_unique"),
    (("x3", "not-an-address", "opted_in"), "expect_column_values_to_match_regex"),
])
def test_a_bad_member_blocks_the_send(wh, bad, words) -> None:
    plant(wh, [*good(3), bad])
    with pytest.raises(DataQualityError, match=words):
        check_snapshot(wh, "promo", RUN.isoformat(), RUN)
    assert not all(s for s, _ in recorded(wh).values())


def test_a_suppressed_member_blocks_the_send(wh) -> None:
    plant(wh, good(3))
    with wh.begin() as conn:
        conn.execute(sa.text("insert into campaigns.suppressions (email, contact_id, reason, source, created_at)"
                             " values ('user2@example.com', null, 'unsubscribe', 'test', now())"))
    with pytest.raises(DataQualityError, match="suppressed"):
        check_snapshot(wh, "promo", RUN.isoformat(), RUN)


def test_size_far_from_the_trailing_runs_blocks_the_send(wh) -> None:
    for weeks in (4, 3, 2, 1):
        snapshot(wh, RUN - dt.timedelta(weeks=weeks), 100)
    plant(wh, good(5))  # 5 against a trailing mean of 100: allowed 20..501
    assert size_bounds([100] * 4) == (20, 501) and size_bounds([100, 100]) is None
    with pytest.raises(DataQualityError, match="usual size"):
        check_snapshot(wh, "promo", RUN.isoformat(), RUN)
    assert recorded(wh)[("expect_table_row_count_to_be_between", "")] == (False, True)
