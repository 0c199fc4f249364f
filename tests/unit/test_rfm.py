"""RFM scoring and segmentation on tiny hand-made order lists."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pandas as pd
import pytest

from martech import paths
from martech.models.rfm import _GRID, OUTPUT_COLUMNS, SEGMENTS, quintile_scores, score_rfm, segment_for

AS_OF = dt.date(2026, 4, 1)
UTC = dt.timezone.utc


def ts(days_before: float, hour: int = 12) -> pd.Timestamp:
    """An order time ``days_before`` days before AS_OF, at ``hour`` UTC that day."""
    day = AS_OF - dt.timedelta(days=days_before)
    return pd.Timestamp(dt.datetime(day.year, day.month, day.day, hour, tzinfo=UTC))


def orders(*rows: tuple[int, float, float]) -> pd.DataFrame:
    """Rows of (customer_id, days before AS_OF, net_amount)."""
    return pd.DataFrame(
        [(c, ts(d), a) for c, d, a in rows], columns=["customer_id", "order_ts", "net_amount"]
    )


def by_customer(scores: pd.DataFrame) -> dict[int, dict]:
    return {int(r["customer_id"]): r for r in scores.to_dict("records")}


# -- segment map ---------------------------------------------------------------------------------------


def test_segments_are_the_eleven_names_in_order():
    assert SEGMENTS == ("Champions", "Loyal", "Potential Loyalist", "New Customers", "Promising",
                        "Need Attention", "About To Sleep", "At Risk", "Can't Lose Them", "Hibernating",
                        "Lost")


def test_every_triple_maps_to_one_segment_and_all_eleven_are_reachable():
    seen = {segment_for(r, f, m) for r, f, m in itertools.product(range(1, 6), repeat=3)}
    assert seen == set(SEGMENTS)


@pytest.mark.parametrize(("rfm", "segment"), [
    ((5, 5, 5), "Champions"),
    ((5, 4, 4), "Champions"),
    ((4, 5, 5), "Loyal"),
    ((3, 4, 4), "Loyal"),
    ((5, 3, 3), "Potential Loyalist"),
    ((4, 2, 2), "Potential Loyalist"),
    ((5, 1, 1), "New Customers"),
    ((5, 1, 2), "New Customers"),      # FM = floor(1.5) = 1
    ((4, 1, 1), "Promising"),
    ((3, 3, 3), "Need Attention"),
    ((3, 1, 1), "About To Sleep"),
    ((3, 2, 2), "About To Sleep"),
    ((2, 5, 5), "At Risk"),
    ((1, 3, 3), "At Risk"),
    ((1, 5, 5), "Can't Lose Them"),
    ((1, 4, 4), "Can't Lose Them"),
    ((2, 1, 1), "Hibernating"),
    ((1, 2, 2), "Hibernating"),
    ((1, 1, 1), "Lost"),
    ((1, 1, 2), "Lost"),
])
def test_known_triples(rfm, segment):
    assert segment_for(*rfm) == segment


@pytest.mark.parametrize("bad", [(0, 3, 3), (6, 3, 3), (3, 3, 7), (3, 2.5, 3), (True, 3, 3)])
def test_scores_outside_one_to_five_are_rejected(bad):
    with pytest.raises(ValueError, match="must be an integer from 1 to 5"):
        segment_for(*bad)


def test_the_documented_grid_is_the_grid_in_code():
    text = (paths.PROJECT_ROOT / "docs" / "rfm-segments.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([1-5]) \| (.+) \|$", text, flags=re.MULTILINE)
    doc_grid = {int(fm): tuple(c.strip() for c in cells.split("|")) for fm, cells in rows}
    assert doc_grid == {5 - i: row for i, row in enumerate(_GRID)}


# -- scores --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "expected"), [
    ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]),
    ([10, 20], [1, 5]),
    ([1, 2, 3], [1, 3, 5]),
    ([7], [3]),                                  # a single customer: neutral
    ([4, 4, 4, 4], [3, 3, 3, 3]),                # no spread: neutral
    ([1, 1, 1, 1, 1, 1, 1, 1, 2, 3], [1, 1, 1, 1, 1, 1, 1, 1, 5, 5]),   # heavy ties at the bottom
    ([1, 1, 1, 2, 2, 2], [1, 1, 1, 4, 4, 4]),    # fewer than 5 distinct values
    ([5, 5, 1, 3], [4, 4, 1, 2]),                # tie at the top: each beats 2 of 4
])
def test_quintile_scores(values, expected):
    assert quintile_scores(pd.Series(values)).tolist() == expected


def test_quintile_scores_lower_is_better():
    assert quintile_scores(pd.Series([1, 30, 300]), higher_is_better=False).tolist() == [5, 3, 1]


def test_quintile_scores_spread_evenly_without_ties():
    scores = quintile_scores(pd.Series(range(100)))
    assert scores.value_counts().sort_index().tolist() == [20, 20, 20, 20, 20]


def test_output_columns_and_values():
    out = score_rfm(orders((1, 1, 10.0), (1, 5, 20.0), (2, 30, 5.0)), AS_OF)
    assert tuple(out.columns) == OUTPUT_COLUMNS
    rows = by_customer(out)
    one = rows[1]
    assert (one["recency_days"], one["frequency"], one["monetary"]) == (1, 2, 30.0)
    assert one["first_order_at"] == ts(5) and one["last_order_at"] == ts(1)
    assert (one["r_score"], one["f_score"], one["m_score"], one["rfm_score"]) == (5, 5, 5, "555")
    assert one["segment"] == "Champions"
    two = rows[2]
    assert (two["recency_days"], two["frequency"], two["monetary"]) == (30, 1, 5.0)
    assert two["rfm_score"] == "111" and two["segment"] == "Lost"


def test_ties_get_equal_scores():
    # customers 1-3 identical; 4 and 5 identical; 6 different
    out = by_customer(score_rfm(orders(
        (1, 3, 10.0), (2, 3, 10.0), (3, 3, 10.0), (4, 9, 50.0), (5, 9, 50.0), (6, 40, 1.0),
    ), AS_OF))
    for group in ([1, 2, 3], [4, 5]):
        assert len({out[c]["rfm_score"] for c in group}) == 1
        assert len({out[c]["segment"] for c in group}) == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_inputs_give_equal_scores_whatever_the_row_order(seed):
    rows = [(c, 1 + c % 3, float(c % 2)) for c in range(1, 13)]
    base = score_rfm(orders(*rows), AS_OF)
    shuffled = score_rfm(orders(*rows).sample(frac=1, random_state=seed), AS_OF)
    pd.testing.assert_frame_equal(base, shuffled)
    groups = base.groupby(["recency_days", "frequency", "monetary"])["rfm_score"].nunique()
    assert (groups == 1).all()


def test_mostly_single_order_customers():
    rows = [(c, c, 20.0) for c in range(1, 19)] + [(19, 2, 20.0), (19, 4, 20.0), (20, 1, 20.0),
                                                   (20, 3, 20.0), (20, 6, 20.0)]
    out = by_customer(score_rfm(orders(*rows), AS_OF))
    assert {out[c]["frequency"] for c in range(1, 19)} == {1}
    assert {out[c]["f_score"] for c in range(1, 19)} == {1}
    assert out[19]["f_score"] == 5 and out[20]["f_score"] == 5


def test_single_customer_gets_neutral_scores():
    out = score_rfm(orders((42, 3, 99.0)), AS_OF)
    assert len(out) == 1
    assert out.loc[0, "rfm_score"] == "333" and out.loc[0, "segment"] == "Need Attention"


@pytest.mark.parametrize("amounts", [[0.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 12.5]])
def test_zero_value_orders(amounts):
    out = score_rfm(orders(*[(i + 1, i + 1, a) for i, a in enumerate(amounts)]), AS_OF)
    assert out["frequency"].tolist() == [1, 1, 1]
    assert out["monetary"].tolist() == amounts
    zero = out[out["monetary"] == 0]
    assert zero["m_score"].nunique() == 1
    if len(zero) < len(out):
        assert zero["m_score"].iloc[0] < out["m_score"].max()


def test_refund_netting_to_zero_still_counts_as_an_order():
    out = by_customer(score_rfm(orders((1, 2, 0.0), (1, 3, 40.0), (2, 2, 10.0)), AS_OF))
    assert out[1]["frequency"] == 2 and out[1]["monetary"] == 40.0


def test_cents_rounding_makes_equal_spends_equal():
    out = by_customer(score_rfm(orders((1, 2, 0.1), (1, 3, 0.2), (2, 2, 0.3), (3, 2, 1.0)), AS_OF))
    assert out[1]["monetary"] == out[2]["monetary"] == 0.3
    assert out[1]["m_score"] == out[2]["m_score"]


@pytest.mark.parametrize(("window_days", "expected"), [
    (None, {1: 3, 2: 1, 3: 1}),
    (30, {1: 2, 2: 1}),      # the order 30 days before counts, the one 31 days before does not
    (7, {1: 1}),
    (1, {1: 1}),             # the day before as_of
])
def test_window_filter(window_days, expected):
    out = score_rfm(orders((1, 1, 5.0), (1, 30, 5.0), (1, 200, 5.0), (2, 30, 5.0), (3, 31, 5.0)),
                    AS_OF, window_days=window_days)
    assert dict(zip(out["customer_id"], out["frequency"], strict=True)) == expected


def test_as_of_is_exclusive():
    at_midnight = pd.Timestamp(dt.datetime(2026, 4, 1, tzinfo=UTC))
    late = pd.DataFrame({"customer_id": [1, 2, 2], "order_ts": [at_midnight, at_midnight, ts(1, 23)],
                         "net_amount": [5.0, 5.0, 7.0]})
    out = score_rfm(late, AS_OF)
    assert out["customer_id"].tolist() == [2]
    assert out.loc[0, "frequency"] == 1 and out.loc[0, "recency_days"] == 1


def test_order_times_in_other_time_zones_use_the_utc_date():
    cet = dt.timezone(dt.timedelta(hours=2))
    # 2026-03-31 01:00 +02:00 is 2026-03-30 23:00 UTC: two days before as_of
    df = pd.DataFrame({"customer_id": [1], "order_ts": [pd.Timestamp(dt.datetime(2026, 3, 31, 1, tzinfo=cet))],
                       "net_amount": [1.0]})
    assert score_rfm(df, AS_OF).loc[0, "recency_days"] == 2


@pytest.mark.parametrize("days", [[1, 2, 3, 4, 5, 6, 7], [1, 1, 5, 5, 90, 90, 365], [3, 3, 3, 10]])
def test_more_recent_never_scores_lower(days):
    out = score_rfm(orders(*[(i + 1, d, 10.0) for i, d in enumerate(days)]), AS_OF)
    ordered = out.sort_values("recency_days")
    assert ordered["r_score"].is_monotonic_decreasing


def test_more_orders_and_more_money_never_score_lower():
    rows = [(c, 5, float(c)) for c in range(1, 9)] + [(c, 6, 1.0) for c in range(1, 9) for _ in range(c % 4)]
    out = score_rfm(orders(*rows), AS_OF)
    assert out.sort_values("frequency")["f_score"].is_monotonic_increasing
    assert out.sort_values("monetary")["m_score"].is_monotonic_increasing


def test_no_orders_gives_an_empty_frame_with_the_columns():
    out = score_rfm(orders(), AS_OF)
    assert out.empty and tuple(out.columns) == OUTPUT_COLUMNS
    assert score_rfm(orders((1, 100, 1.0)), AS_OF, window_days=10).empty


@pytest.mark.parametrize("window_days", [0, -3, 2.5])
def test_bad_window_is_rejected(window_days):
    with pytest.raises(ValueError, match="window_days"):
        score_rfm(orders((1, 1, 1.0)), AS_OF, window_days=window_days)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="net_amount"):
        score_rfm(pd.DataFrame({"customer_id": [1], "order_ts": [ts(1)]}), AS_OF)


# -- writing -------------------------------------------------------------------------------------------


@pytest.mark.db
def test_write_rfm_replaces_one_as_of_date(engine):
    import sqlalchemy as sa

    from martech.db import migrate
    from martech.models.rfm import write_rfm

    migrate(engine)
    day, other = dt.date(1999, 1, 1), dt.date(1999, 1, 2)
    first = score_rfm(orders((1, 1, 10.0), (1, 5, 20.005), (2, 30, 5.0), (3, 2, 0.0)), AS_OF)
    second = score_rfm(orders((1, 1, 10.0)), AS_OF)
    try:
        assert write_rfm(engine, first, day) == 3
        assert write_rfm(engine, first, other) == 3
        assert write_rfm(engine, first, day) == 3              # a rerun replaces, never duplicates
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "select customer_id, recency_days, frequency, monetary, first_order_at, last_order_at,"
                " r_score, f_score, m_score, rfm_score, segment from marts.customer_rfm"
                " where as_of_date = :d order by customer_id"), {"d": day}).all()
        assert len(rows) == 3
        got = rows[0]
        want = first.iloc[0]
        assert (got.customer_id, got.recency_days, got.frequency, float(got.monetary)) == (
            1, want["recency_days"], 2, want["monetary"])
        assert got.first_order_at == want["first_order_at"] and got.last_order_at == want["last_order_at"]
        assert (got.r_score, got.f_score, got.m_score, got.rfm_score, got.segment) == (
            want["r_score"], want["f_score"], want["m_score"], want["rfm_score"], want["segment"])
        assert write_rfm(engine, second, day) == 1
        with engine.connect() as conn:
            counts = dict(conn.execute(sa.text(
                "select as_of_date, count(*) from marts.customer_rfm where as_of_date in (:a, :b)"
                " group by 1"), {"a": day, "b": other}).all())
        assert counts == {day: 1, other: 3}
        assert write_rfm(engine, score_rfm(orders(), AS_OF), day) == 0
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("delete from marts.customer_rfm where as_of_date in (:a, :b)"),
                         {"a": day, "b": other})
