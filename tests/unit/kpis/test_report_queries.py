"""Each report figure's shaping query on small inline data, with answers worked out by hand."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from martech.kpis.report import FIGURES, queries

D1, D2 = dt.date(2026, 5, 1), dt.date(2026, 5, 2)


def _daily() -> pd.DataFrame:
    cols = ["campaign_id", "step", "send_date", "arm", "variant", "members", "sent", "delivered", "opened",
            "clicked", "converted", "revenue", "attributed_revenue"]
    rows = [("a", 1, D1, "treatment", "x", 90, 90, 80, 40, 10, 5, 100.0, 60.0),
            ("a", 1, D1, "holdout", "", 10, 0, 0, 0, 0, 1, 10.0, 0.0),
            ("a", 1, D2, "treatment", "x", 45, 44, 40, 20, 6, 2, 50.0, 20.0),
            ("b", 1, D2, "treatment", "", 20, 20, 20, 5, 1, 1, 30.0, 0.0),
            ("b", 1, D2, "holdout", "", 5, 0, 0, 0, 0, 0, 0.0, 0.0)]
    return pd.DataFrame(rows, columns=cols)


def _exclusions() -> pd.DataFrame:
    cols = ["campaign_id", "step", "send_date", "reason", "contacts", "excluded", "audience"]
    rows = [("a", 1, D1, "unsubscribed", 3, 4, 104), ("a", 1, D1, "bounced", 2, 4, 104),
            ("a", 1, D2, "unsubscribed", 1, 1, 46), ("b", 1, D2, "frequency_cap", 7, 7, 32)]
    return pd.DataFrame(rows, columns=cols)


def _uplift() -> pd.DataFrame:
    cols = ["campaign_id", "step", "treatment", "control", "treatment_rate", "uplift", "uplift_low",
            "uplift_high", "p_value", "prob_best"]
    rows = [("a", 1, "*", "holdout", 0.05, 0.02, -0.01, 0.05, 0.2, None),
            ("a", 1, "x", "holdout", 0.06, 0.03, 0.0, 0.06, 0.1, 0.7),
            ("a", 1, "y", "holdout", 0.04, 0.01, -0.02, 0.04, 0.5, 0.3),
            ("a", 1, "y", "x", 0.04, -0.02, -0.05, 0.01, 0.3, None),
            ("s", 1, "*", "holdout", 0.1, 0.0, -0.1, 0.1, 1.0, None),
            ("s", 2, "*", "holdout", 0.2, 0.1, 0.0, 0.2, 0.04, None),
            ("s", 2, "v", "holdout", 0.2, 0.1, 0.0, 0.2, 0.04, 1.0)]
    return pd.DataFrame(rows, columns=cols)


def test_every_figure_has_a_query_a_drawing_and_named_tables():
    from martech.kpis.report.figures import DRAW

    for fig in FIGURES:
        assert callable(getattr(queries, fig.key)) and fig.key in DRAW
        assert all(t.startswith(("kpis.", "marts.")) for n in fig.loads for t in queries.SOURCES[n])


def test_funnel_counts_both_arms_and_the_excluded_in_the_audience():
    out = queries.funnel(_daily(), _exclusions())
    # a: members 90 + 10 + 45, excluded 4 (D1, distinct) + 1 (D2); stages from the treatment rows only.
    assert out.loc["a"].tolist() == [150, 134, 120, 60, 16, 7]
    assert out.loc["b"].tolist() == [32, 20, 20, 5, 1, 1]
    assert list(out.columns) == list(queries.FUNNEL_STAGES)


def test_funnel_without_exclusions_is_the_members():
    assert queries.funnel(_daily(), pd.DataFrame()).loc["b", "audience"] == 25


def test_uplift_forest_keeps_the_pooled_rows_and_labels_series_steps():
    out = queries.uplift_forest(_uplift())
    assert out["label"].tolist() == ["a", "s · step 1", "s · step 2"]
    assert out["uplift_low"].tolist() == [-0.01, -0.1, 0.0]


def test_revenue_per_member_by_arm():
    out = queries.revenue_by_arm(_daily())
    assert out.loc["a", "treatment"] == pytest.approx(150 / 135)
    assert out.loc["a", "holdout"] == pytest.approx(1.0)
    assert out.loc["b", "holdout"] == 0.0


def test_ab_variants_only_for_campaigns_with_two_or_more():
    out = queries.ab_variants(_uplift())
    assert out[["label", "variant", "prob_best"]].values.tolist() == [["a", "x", 0.7], ["a", "y", 0.3]]


def test_rfm_sizes_and_migration_pivot():
    seg = pd.DataFrame({"as_of": [D1, D1, D2], "segment": ["champions", "lost", "champions"],
                        "customers": [3, 5, 4]})
    sizes = queries.rfm_sizes(seg)
    assert sizes.to_dict("index") == {D1: {"champions": 3, "lost": 5}, D2: {"champions": 4, "lost": 0}}
    mig = pd.DataFrame({"from_segment": ["(none)", "lost", "lost"], "to_segment": ["lost", "lost", "champions"],
                        "customers": [2, 3, 1]})
    m = queries.migration_matrix(mig)
    assert m.loc["lost", "champions"] == 1 and m.loc["(none)", "champions"] == 0 and m.loc["lost", "lost"] == 3


def test_engagement_trend_over_delivered_and_members():
    out = queries.engagement_trend(_daily())
    assert out.loc[D1].tolist() == [0.5, 0.125, pytest.approx(5 / 90)]
    assert out.loc[D2].tolist() == [pytest.approx(25 / 60), pytest.approx(7 / 60), pytest.approx(3 / 65)]


def test_data_quality_trend_splits_failures_by_criticality():
    res = pd.DataFrame({"run_date": [D1, D1, D1, D2], "table_name": ["t"] * 4,
                        "success": [True, False, False, True], "critical": [True, True, False, False]})
    out = queries.data_quality_trend(res)
    assert out.loc[D1].tolist() == [1, 1, 1] and out.loc[D2].tolist() == [1, 0, 0]


def test_calibration_takes_the_latest_version():
    t1, t2 = pd.Timestamp("2026-04-01", tz="UTC"), pd.Timestamp("2026-05-01", tz="UTC")
    m = pd.DataFrame({"model_version": ["v1", "v1", "v2", "v2", "v2", "v2"],
                      "trained_at": [t1, t1, t2, t2, t2, t2],
                      "metric": ["calibration_mean_predicted", "calibration_observed"] * 3,
                      "slice": ["decile_01", "decile_01", "decile_01", "decile_01", "decile_02", "decile_02"],
                      "value": [0.9, 0.9, 0.1, 0.05, 0.3, 0.35]})
    out = queries.calibration(m)
    assert out.attrs["model_version"] == "v2"
    assert out.values.tolist() == [[0.1, 0.05], [0.3, 0.35]]


def test_clv_histogram_counts_every_customer():
    out = queries.clv_distribution(pd.DataFrame({"expected_revenue": [0, 0, 10, 40]}), bins=4)
    assert out["customers"].tolist() == [2, 1, 0, 1]
    assert out["low"].tolist() == [0, 10, 20, 30]


def test_exclusions_of_each_campaigns_latest_run():
    out = queries.exclusions_by_reason(_exclusions())
    assert out.to_dict("index") == {"frequency_cap": {"a": 0, "b": 7}, "unsubscribed": {"a": 1, "b": 0}}


@pytest.mark.parametrize("fig", FIGURES, ids=lambda f: f.key)
def test_every_figure_draws_an_empty_state(fig):
    from martech.kpis.report.figures import DRAW

    svg = DRAW[fig.key](getattr(queries, fig.key)(*(pd.DataFrame() for _ in fig.loads)))
    assert svg.startswith("<svg") and "<text" in svg
