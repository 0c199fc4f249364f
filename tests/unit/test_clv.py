"""BG/NBD and Gamma-Gamma against the published CDNOW figures, and the summary's edge cases."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest

from martech.models import clv

CALIBRATION_END = dt.date(1997, 10, 1)  # a run date: the calibration ends on 1997-09-30 (week 39)


@pytest.fixture(scope="module")
def cdnow():
    tx = clv.load_cdnow_sample()
    summary = clv.summarize(tx, as_of=CALIBRATION_END)
    return tx, summary, clv.fit_bgnbd(summary)


def test_cdnow_bgnbd_parameters_match_fader_hardie_lee_2005(cdnow):
    _, summary, bg = cdnow
    assert len(summary) == 2357
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert getattr(bg, name) == pytest.approx(value, rel=0.01), name


def test_cdnow_gamma_gamma_parameters_match_fader_hardie(cdnow):
    _, summary, _ = cdnow
    gg = clv.fit_gamma_gamma(summary["x"], summary["m"])
    for name, value in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
        assert getattr(gg, name) == pytest.approx(value, rel=0.01), name


def test_cdnow_holdout_forecast_tracks_the_actual_purchases(cdnow):
    tx, summary, bg = cdnow
    pred = clv.expected_purchases(bg, 39.0, summary["x"], summary["t_x"], summary["T"])
    days = tx.assign(day=tx["order_ts"].dt.floor("D")).drop_duplicates(["customer_id", "day"])
    hold = days[(days["day"] > "1997-09-30") & (days["day"] <= "1998-06-30")]
    actual = hold.groupby("customer_id").size().reindex(summary.index, fill_value=0)
    # Aggregate error of the 39-week holdout forecast (measured -12.1 %; docs/clv.md).
    assert abs(pred.sum() / actual.sum() - 1) < 0.2
    # Conditional expectations rise with calibration frequency, as the actual purchases do.
    by_x = pd.Series(pred).groupby(summary["x"].to_numpy()).mean()
    assert by_x.loc[0] < by_x.loc[1] < by_x.loc[3] < by_x.loc[6]
    assert np.corrcoef(pred, actual)[0, 1] > 0.5


def test_p_alive_rules():
    bg = clv.BgNbdParams(0.243, 4.414, 0.793, 2.426)
    # No repeat purchase: alive by assumption.
    assert clv.p_alive(bg, [0], [0.0], [30.0])[0] == 1.0
    # Same history, long silence since the last purchase: less likely alive.
    recent, silent = clv.p_alive(bg, [3, 3], [29.0, 5.0], [30.0, 30.0])
    assert 0 < silent < recent < 1
    assert list(clv.churn_band(np.array([0.1, 0.5, 0.9]))) == ["high", "medium", "low"]


def test_expected_purchases_grow_with_the_horizon_and_match_the_population_curve():
    bg = clv.BgNbdParams(0.243, 4.414, 0.793, 2.426)
    e = [clv.expected_purchases(bg, t, [2], [20.0], [30.0])[0] for t in (4, 13, 39, 78)]
    assert all(a < b for a, b in itertools.pairwise(e))
    # A customer observed only at their first purchase (x=0, T=0) is a new customer: E = eq. 7.
    new = clv.expected_purchases(bg, 39.0, [0], [0.0], [0.0])[0]
    assert new == pytest.approx(float(clv.expected_purchases_new(bg, 39.0)), rel=1e-9)


def test_summary_merges_same_day_purchases_and_respects_the_as_of_date():
    tx = pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 2],
        "order_ts": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 18:00", "2024-01-15 10:00",
                                    "2024-03-01 10:00", "2024-01-08 12:00"]),
        "amount": [10.0, 5.0, 30.0, 99.0, 20.0],
    })
    s = clv.summarize(tx, as_of=dt.date(2024, 2, 1))
    assert list(s.index) == [1, 2]
    assert s.loc[1, "x"] == 1 and s.loc[1, "t_x"] == pytest.approx(2.0) and s.loc[1, "T"] == pytest.approx(30 / 7)
    assert s.loc[1, "m"] == pytest.approx(30.0)  # repeat purchases only; the March order is after as-of
    assert s.loc[2, "x"] == 0 and s.loc[2, "m"] == 0.0
    # T counts to the last observed day (2024-01-31), whether as_of is that day's end or the next midnight.
    late = clv.summarize(tx, as_of=dt.datetime(2024, 1, 31, 23, 59))
    assert late.loc[1, "T"] == s.loc[1, "T"] and late.loc[2, "T"] == pytest.approx(23 / 7)


def test_fits_refuse_what_they_cannot_fit():
    with pytest.raises(ValueError, match="empty"):
        clv.fit_bgnbd(pd.DataFrame(columns=["x", "t_x", "T"]))
    with pytest.raises(ValueError, match="at least 10"):
        clv.fit_gamma_gamma([1, 2], [10.0, 20.0])
