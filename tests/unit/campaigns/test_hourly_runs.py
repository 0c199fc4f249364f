"""Hourly run ids, the run's instant and what a DAG task derives from its context."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from martech.campaigns import hourly
from martech.campaigns.audience import run_id_for, run_instant, step_run_id
from martech.campaigns.spec import load_campaigns
from martech.dagkit import run_hour_of

UTC = dt.timezone.utc
SPECS = {s.id: s for s in load_campaigns()}


def test_hourly_series_get_one_run_id_per_hour_and_step() -> None:
    cart = SPECS["abandoned_cart"]
    at = dt.datetime(2026, 11, 2, 13, 37, 5, tzinfo=UTC)
    assert [run_id_for(cart, at, s) for s in (1, 2, 3)] == ["2026-11-02T13", "2026-11-02T13.step2",
                                                            "2026-11-02T13.step3"]
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert run_id_for(cart, dt.datetime(2026, 11, 2, 14, 0, tzinfo=berlin), 2) == "2026-11-02T13.step2"
    assert run_id_for(cart, dt.date(2026, 11, 2)) == "2026-11-02T00"  # a date is its 00:00 run
    with pytest.raises(ValueError, match="timezone-aware"):
        run_id_for(cart, dt.datetime(2026, 11, 2, 13))


def test_daily_campaigns_keep_date_run_ids_and_refuse_an_instant() -> None:
    assert run_id_for(SPECS["welcome"], dt.date(2026, 3, 10), 2) == "2026-03-10.step2" == step_run_id("2026-03-10", 2)
    with pytest.raises(TypeError, match="runs daily"):
        run_id_for(SPECS["welcome"], dt.datetime(2026, 3, 10, 9, tzinfo=UTC))
    assert run_instant("2026-03-10") == dt.datetime(2026, 3, 10, tzinfo=UTC)


@pytest.mark.parametrize(("run_id", "expected"), [
    ("2026-11-02T13", (dt.datetime(2026, 11, 2, 13, tzinfo=UTC), 1)),
    ("2026-11-02T00.step3", (dt.datetime(2026, 11, 2, 0, tzinfo=UTC), 3)),
    ("2026-11-02", None), ("2026-11-02.step2", None),
])
def test_parse_run_id(run_id: str, expected) -> None:
    assert hourly.parse_run_id(run_id) == expected


def test_hourly_batches_belong_to_the_daily_run_whose_cutoff_covers_them() -> None:
    assert hourly.daily_run_date(dt.datetime(2026, 11, 2, 13, tzinfo=UTC)) == dt.date(2026, 11, 3)
    assert hourly.daily_run_date(dt.datetime(2026, 11, 3, 0, tzinfo=UTC)) == dt.date(2026, 11, 3)
    assert hourly.batch_tag(dt.datetime(2026, 11, 2, 13, 59, tzinfo=UTC)) == "2026-11-02T13"


def _context(logical: dt.datetime | None, **params) -> dict:
    return {"params": params, "logical_date": logical,
            "dag_run": SimpleNamespace(run_after=dt.datetime(2026, 11, 2, 9, 0, 12, tzinfo=UTC))}


@pytest.mark.parametrize(("context", "expected"), [
    (_context(dt.datetime(2026, 11, 2, 13, 0, 2, tzinfo=UTC)), dt.datetime(2026, 11, 2, 13, tzinfo=UTC)),
    (_context(None), dt.datetime(2026, 11, 2, 9, tzinfo=UTC)),  # manual trigger: when it was due
    (_context(dt.datetime(2026, 11, 2, 13, tzinfo=UTC), run_ts="2026-11-01T22:30:00Z"),
     dt.datetime(2026, 11, 1, 22, tzinfo=UTC)),
    (_context(dt.datetime(2026, 11, 2, 13, tzinfo=UTC), run_date="2026-11-02"),
     dt.datetime(2026, 11, 2, 13, tzinfo=UTC)),
    (_context(dt.datetime(2026, 11, 2, 13, tzinfo=UTC), run_date="2026-10-30"),
     dt.datetime(2026, 10, 30, tzinfo=UTC)),
])
def test_run_hour_of_a_task_context(context: dict, expected: dt.datetime) -> None:
    assert run_hour_of(context) == expected
