"""The uplift statistics against textbook values and against their own coverage on known truth."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from martech.kpis import uplift


def test_wilson_and_newcombe_match_newcombes_worked_example():
    # Newcombe (1998), example (a) 56/70 − 48/80: method 10 gives 0.0524 .. 0.3339
    d, lo, hi = uplift.newcombe_interval(56, 70, 48, 80)
    assert (round(d, 4), round(lo, 4), round(hi, 4)) == (0.2, 0.0524, 0.3339)
    lo_w, hi_w = uplift.wilson_interval(0, 10)
    assert lo_w == 0 and 0.27 < hi_w < 0.28  # Wilson for 0/10: 0 .. 0.2775


def test_relative_interval_contains_the_point_and_needs_conversions():
    rel, lo, hi = uplift.relative_interval(60, 1000, 40, 1000)
    assert lo < rel < hi and rel == pytest.approx(0.5)
    assert uplift.relative_interval(0, 100, 5, 100) is None


def test_mde_shrinks_with_size_and_needs_a_rate():
    assert uplift.mde(0.0, 1000, 1000) is None and uplift.mde(None, 1000, 1000) is None
    assert uplift.mde(0.05, 1000, 1000) > uplift.mde(0.05, 10_000, 10_000)
    assert uplift.mde(0.05, 10_000, 10_000) == pytest.approx(2.8016 * np.sqrt(0.05 * 0.95 * 2 / 10_000), rel=1e-3)


def test_bootstrap_of_sparse_values_equals_the_plain_bootstrap_in_distribution():
    rng = np.random.default_rng(1)
    a = np.where(rng.random(4000) < 0.05, rng.lognormal(3, 1, 4000), 0.0)
    sparse = uplift._resampled_means(a, np.random.default_rng(2), 4000)
    plain = np.asarray([rng.choice(a, len(a)).mean() for _ in range(4000)])
    assert sparse.mean() == pytest.approx(a.mean(), rel=0.02)
    assert sparse.std() == pytest.approx(plain.std(), rel=0.08)


def test_prob_best_orders_the_groups():
    p = uplift.prob_best([50, 80], [1000, 1000], np.random.default_rng(0))
    assert p.sum() == pytest.approx(1) and p[1] > 0.99


def _world(seed: int, n: int, base: float, lift: float, value_mean: float) -> pd.DataFrame:
    """Members with a known uplift in conversion and a lognormal (heavy-tailed) order value."""
    rng = np.random.default_rng(seed)
    arm = np.where(rng.random(n) < 0.3, "holdout", "treatment")
    p = np.where(arm == "treatment", base + lift, base)
    converted = rng.random(n) < p
    sigma = 1.2
    revenue = np.where(converted, rng.lognormal(np.log(value_mean) - sigma ** 2 / 2, sigma, n), 0.0)
    return pd.DataFrame({"campaign_id": "c", "step": 1, "run_date": dt.date(2026, 1, 1), "arm": arm,
                         "variant": "a", "converted": converted, "revenue": revenue, "window_complete": True,
                         "target": 0.02})


@pytest.mark.parametrize("lift", [0.0, 0.03])
def test_intervals_cover_the_true_uplift(lift):
    covered_rate = covered_revenue = 0
    for seed in range(40):
        row = uplift.uplift_rows(_world(seed, 3000, 0.05, lift, 40.0), seed=seed)[0]
        covered_rate += row["uplift_low"] <= lift <= row["uplift_high"]
        covered_revenue += row["revenue_uplift_low"] <= lift * 40.0 <= row["revenue_uplift_high"]
    assert covered_rate >= 35 and covered_revenue >= 34
