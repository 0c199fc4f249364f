"""The run vocabulary: cutoffs, run ids, batch tags and ordering of daily and hourly runs."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from martech.runs import Run

UTC = dt.timezone.utc
days = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))
instants = st.datetimes(min_value=dt.datetime(2000, 1, 2), max_value=dt.datetime(2099, 12, 30),
                        timezones=st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=-5)),
                                                   dt.timezone(dt.timedelta(hours=5, minutes=30))]))
runs = st.one_of(days.map(Run.daily), instants.map(Run.hour))
steps = st.integers(min_value=1, max_value=12)


@given(runs, steps)
def test_a_run_id_parses_back_to_its_run_and_step(run: Run, step: int) -> None:
    assert Run.parse(run.run_id(step)) == (run, step)


@given(runs, runs)
def test_runs_order_by_cutoff_and_run_ids_of_the_same_kind_sort_the_same(a: Run, b: Run) -> None:
    assert (a < b) == ((a.cutoff, a.hourly) < (b.cutoff, b.hourly))
    if a.hourly == b.hourly:
        assert (a.run_id() < b.run_id()) == (a < b)


@given(days)
def test_a_daily_cutoff_is_the_start_of_its_day_in_utc(day: dt.date) -> None:
    run = Run.daily(day)
    assert run.cutoff == dt.datetime.combine(day, dt.time(0), tzinfo=UTC)
    assert (run.date, run.run_id(), run.batch_run_date) == (day, day.isoformat(), day)
    assert Run.of(day.isoformat()) == run == Run.of(day)


@given(instants)
def test_an_hourly_cutoff_is_the_top_of_the_hour_the_instant_falls_in(at: dt.datetime) -> None:
    run = Run.hour(at)
    assert run.cutoff <= at < run.cutoff + dt.timedelta(hours=1)
    assert run.cutoff.tzinfo == UTC and run.cutoff.minute == 0
    assert run.batch_tag == run.cutoff.strftime("%Y-%m-%dT%H") == run.run_id()
    # its rows are first covered by the daily run of the next midnight at or after the hour
    assert Run.daily(run.batch_run_date).cutoff >= run.cutoff > Run.daily(run.batch_run_date).cutoff - dt.timedelta(
        days=1)
    assert Run.of(at) == run == Run.of(at.isoformat())


def test_the_run_id_shapes_and_what_is_refused() -> None:
    hour = Run.hour(dt.datetime(2026, 11, 2, 13, 45, tzinfo=UTC))
    assert (hour.run_id(), hour.run_id(2)) == ("2026-11-02T13", "2026-11-02T13.step2")
    assert Run.daily(dt.date(2026, 11, 2)).run_id(3) == "2026-11-02.step3"
    assert hour.days_before(1).run_id(2) == "2026-11-01T13.step2"
    assert Run.hour(dt.datetime(2026, 11, 2, 0, tzinfo=UTC)).batch_run_date == dt.date(2026, 11, 2)
    assert Run.daily("2026-11-02") < Run.hour(dt.datetime(2026, 11, 2, 0, tzinfo=UTC))  # a tie: daily first
    with pytest.raises(TypeError, match="not a datetime"):
        Run.daily(dt.datetime(2026, 11, 2, tzinfo=UTC))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        Run.hour(dt.datetime(2026, 11, 2, 13))
    with pytest.raises(ValueError, match="starts on the day"):
        Run(dt.datetime(2026, 11, 2, 13, tzinfo=UTC))
    for bad in ("2026-11-02T1", "2026-11-02.step0", "yesterday"):
        with pytest.raises(ValueError, match="is not a run id"):
            Run.parse(bad)
