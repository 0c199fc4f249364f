"""``kpis.campaign_uplift``: what each campaign caused, treatment against holdout, with honest intervals.

Per campaign, step and period (each send day, and all send days pooled) it compares the treatment arm
(all variants, and each variant) with the holdout, and A/B variants with each other:

- conversion rates; absolute uplift with Newcombe's hybrid score interval (Wilson intervals combined);
- relative uplift with the delta-method interval on the log risk ratio; a two-sided pooled z-test p-value;
- incremental conversions = absolute uplift × treatment members (interval scaled alike);
- revenue per member: a bootstrap percentile interval of the difference in means (revenue per member is
  mostly zeros with a long tail, where normal intervals undercover), Welch's p-value, and incremental revenue;
- the minimum detectable absolute uplift at the realised sizes (α = 0.05 two-sided, power 0.8) and whether
  it reaches the campaign's ``min_detectable_effect``;
- Bayesian probabilities: that the treatment group converts better than the control, and that a variant is
  the best of the campaign's variants (Beta(1 + x, 1 + n − x) posteriors, Monte Carlo).

The formulas and their sources are in docs/kpis.md. Draws use a seeded generator, so a rebuild is identical.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy import stats
from sqlalchemy.engine import Engine

__all__ = ["Comparison", "bootstrap_mean_diff", "build_uplift", "compare", "mde", "newcombe_interval",
           "prob_best", "relative_interval", "wilson_interval"]

ALPHA, POWER = 0.05, 0.8
Z = float(stats.norm.ppf(1 - ALPHA / 2))
BOOTSTRAP_RESAMPLES = 2000
POSTERIOR_DRAWS = 20_000


def wilson_interval(x: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval of a proportion x / n (Wilson 1927)."""
    if n == 0:
        return 0.0, 1.0
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1: int, n1: int, x0: int, n0: int, z: float = Z) -> tuple[float, float, float]:
    """p1 − p0 and Newcombe's hybrid score interval (Newcombe 1998, method 10)."""
    p1, p0 = x1 / n1, x0 / n0
    l1, u1 = wilson_interval(x1, n1, z)
    l0, u0 = wilson_interval(x0, n0, z)
    d = p1 - p0
    return d, d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)


def relative_interval(x1: int, n1: int, x0: int, n0: int, z: float = Z) -> tuple[float, float, float] | None:
    """p1 / p0 − 1 with the delta-method interval on log(p1 / p0) (Katz et al. 1978); None without conversions."""
    if x1 == 0 or x0 == 0:
        return None
    p1, p0 = x1 / n1, x0 / n0
    se = math.sqrt((1 - p1) / x1 + (1 - p0) / x0)
    log_rr = math.log(p1 / p0)
    return p1 / p0 - 1, math.exp(log_rr - z * se) - 1, math.exp(log_rr + z * se) - 1


def two_proportion_p(x1: int, n1: int, x0: int, n0: int) -> float | None:
    pooled = (x1 + x0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    if se == 0:
        return None
    return float(2 * stats.norm.sf(abs(x1 / n1 - x0 / n0) / se))


def mde(base_rate: float | None, n1: int, n0: int, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Smallest absolute uplift a two-sided test at ``alpha`` detects with ``power`` at these sizes.

    None without a usable base rate (no conversion observed and none assumed): a test of a rate of 0 has no MDE.
    """
    if base_rate is None or not 0 < base_rate < 1:
        return None
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z * math.sqrt(base_rate * (1 - base_rate) * (1 / n1 + 1 / n0)))


def _resampled_means(values: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Bootstrap means, drawing only the non-zero values: a resample holds Binomial(n, k / n) of them."""
    n = len(values)
    nonzero = values[values != 0]
    if not len(nonzero):
        return np.zeros(resamples)
    counts = rng.binomial(n, len(nonzero) / n, size=resamples)
    draws = rng.choice(nonzero, size=int(counts.sum()))
    sums = np.bincount(np.repeat(np.arange(resamples), counts), weights=draws, minlength=resamples)
    return sums / n


def bootstrap_mean_diff(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                        resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float, float]:
    """mean(a) − mean(b) and the percentile bootstrap interval, each arm resampled on its own (Efron–Tibshirani)."""
    diff = _resampled_means(a, rng, resamples) - _resampled_means(b, rng, resamples)
    low, high = np.quantile(diff, [ALPHA / 2, 1 - ALPHA / 2])
    return float(a.mean() - b.mean()), float(low), float(high)


def prob_best(successes: Sequence[int], trials: Sequence[int], rng: np.random.Generator,
              draws: int = POSTERIOR_DRAWS) -> np.ndarray:
    """P(group k has the highest rate) under independent Beta(1 + x, 1 + n − x) posteriors."""
    x, n = np.asarray(successes), np.asarray(trials)
    samples = rng.beta(1 + x[:, None], 1 + (n - x)[:, None], size=(len(x), draws))
    return np.bincount(samples.argmax(axis=0), minlength=len(x)) / draws


@dataclass(frozen=True)
class Comparison:
    treatment_n: int
    control_n: int
    treatment_conversions: int
    control_conversions: int
    treatment_rate: float
    control_rate: float
    uplift: float
    uplift_low: float
    uplift_high: float
    relative_uplift: float | None
    relative_uplift_low: float | None
    relative_uplift_high: float | None
    p_value: float | None
    incremental_conversions: float
    incremental_conversions_low: float
    incremental_conversions_high: float
    treatment_revenue_per_member: float
    control_revenue_per_member: float
    revenue_uplift_per_member: float
    revenue_uplift_low: float
    revenue_uplift_high: float
    revenue_p_value: float | None
    incremental_revenue: float
    incremental_revenue_low: float
    incremental_revenue_high: float
    mde: float | None
    prob_better: float


def compare(t_converted: np.ndarray, t_revenue: np.ndarray, c_converted: np.ndarray, c_revenue: np.ndarray,
            rng: np.random.Generator, assumed_base_rate: float | None = None) -> Comparison:
    """Treatment against control from per-member outcomes (converted 0/1, revenue).

    The MDE uses the pooled observed rate, or ``assumed_base_rate`` (the campaign's planning figure) when no
    member converted.
    """
    n1, n0 = len(t_converted), len(c_converted)
    x1, x0 = int(t_converted.sum()), int(c_converted.sum())
    d, lo, hi = newcombe_interval(x1, n1, x0, n0)
    rel = relative_interval(x1, n1, x0, n0)
    r, r_lo, r_hi = bootstrap_mean_diff(t_revenue, c_revenue, rng)
    welch = stats.ttest_ind(t_revenue, c_revenue, equal_var=False) if n1 > 1 and n0 > 1 else None
    revenue_p = float(welch.pvalue) if welch is not None and np.isfinite(welch.pvalue) else None
    better = prob_best([x1, x0], [n1, n0], rng)[0]
    return Comparison(
        treatment_n=n1, control_n=n0, treatment_conversions=x1, control_conversions=x0,
        treatment_rate=x1 / n1, control_rate=x0 / n0, uplift=d, uplift_low=lo, uplift_high=hi,
        relative_uplift=rel[0] if rel else None, relative_uplift_low=rel[1] if rel else None,
        relative_uplift_high=rel[2] if rel else None, p_value=two_proportion_p(x1, n1, x0, n0),
        incremental_conversions=d * n1, incremental_conversions_low=lo * n1, incremental_conversions_high=hi * n1,
        treatment_revenue_per_member=float(t_revenue.mean()), control_revenue_per_member=float(c_revenue.mean()),
        revenue_uplift_per_member=r, revenue_uplift_low=r_lo, revenue_uplift_high=r_hi, revenue_p_value=revenue_p,
        incremental_revenue=r * n1, incremental_revenue_low=r_lo * n1, incremental_revenue_high=r_hi * n1,
        mde=mde((x1 + x0) / (n1 + n0) if x1 + x0 else assumed_base_rate, n1, n0), prob_better=float(better))


_OUTCOMES = sa.text("""
select o.campaign_id, o.step, o.run_date, o.arm, o.variant, o.converted, o.revenue::float8 as revenue,
    o.run_date + o.conversion_window_days <= o.as_of_date as window_complete, s.min_detectable_effect::float8 as target,
    s.baseline_conversion::float8 as assumed_base_rate
from campaigns.member_outcomes as o
left join audiences.snapshots as s on o.campaign_id = s.campaign_id and o.run_id = s.run_id
where o.as_of_date = :d
order by o.campaign_id, o.step, o.run_date, o.contact_id
""")


def _rows(frame: pd.DataFrame, period: str, rng: np.random.Generator) -> Iterator[dict]:
    hold = frame[frame["arm"] == "holdout"]
    treat = frame[frame["arm"] == "treatment"]
    base = {"campaign_id": frame["campaign_id"].iat[0], "step": int(frame["step"].iat[0]), "period": period,
            "period_start": frame["run_date"].min(), "period_end": frame["run_date"].max(),
            "window_complete": bool(frame["window_complete"].all()),
            "min_detectable_effect": frame["target"].dropna().max() if frame["target"].notna().any() else None}
    assumed = frame["assumed_base_rate"].dropna().mean() if "assumed_base_rate" in frame else None

    def row(treatment: str, control: str, t: pd.DataFrame, c: pd.DataFrame, best: float | None) -> dict:
        cmp = compare(t["converted"].to_numpy(int), t["revenue"].to_numpy(float),
                      c["converted"].to_numpy(int), c["revenue"].to_numpy(float), rng,
                      None if assumed is None or pd.isna(assumed) else float(assumed))
        target = base["min_detectable_effect"]
        unknown = target is None or pd.isna(target) or cmp.mde is None
        return {**base, "treatment": treatment, "control": control, **asdict(cmp), "prob_best": best,
                "adequate": None if unknown else bool(cmp.mde is not None and cmp.mde <= target)}

    variants = sorted(treat["variant"].unique())
    if len(hold) and len(treat):
        yield row("*", "holdout", treat, hold, None)
    if len(variants) < 2:
        return
    sizes = [treat[treat["variant"] == v] for v in variants]
    best = prob_best([int(s["converted"].sum()) for s in sizes], [len(s) for s in sizes], rng)
    for k, v in enumerate(variants):
        if len(hold):
            yield row(v, "holdout", sizes[k], hold, float(best[k]))
        for j in range(k + 1, len(variants)):
            yield row(v, variants[j], sizes[k], sizes[j], float(best[k]))


def uplift_rows(outcomes: pd.DataFrame, seed: int = 0) -> list[dict]:
    """All comparison rows for per-member outcomes (columns as in ``campaigns.member_outcomes``)."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for _, campaign in outcomes.groupby(["campaign_id", "step"], sort=True):
        rows += _rows(campaign, "all", rng)
        for _, day in campaign.groupby("run_date", sort=True):
            rows += _rows(day, "day", rng)
    return rows


def build_uplift(engine: Engine, run_date: dt.date, *, seed: int = 0) -> int:
    """Rebuild kpis.campaign_uplift from campaigns.member_outcomes as of ``run_date``; returns its rows."""
    from martech.db import copy_rows, sql_file

    with engine.connect() as conn:
        outcomes = pd.read_sql_query(_OUTCOMES, conn, params={"d": run_date})
    rows = uplift_rows(outcomes, seed)
    columns = list(sql_file("kpis.campaign_uplift").column_comments())  # the table is created by migrate
    with engine.begin() as conn:
        conn.execute(sa.text("truncate kpis.campaign_uplift"))
        copy_rows(conn, "kpis.campaign_uplift", columns,
                  ([_value(r.get(c, run_date if c == "as_of_date" else None)) for c in columns] for r in rows))
    return len(rows)


def _value(v: object) -> object:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
