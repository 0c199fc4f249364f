"""Behavioural clusters: k-means on standardized RFM and category shares, k chosen by silhouette.

Features per customer (as of the run date): log recency days, log order count, log net revenue, and the
share of each category in the customer's units bought. All standardized, so no feature dominates by its
unit. k runs over ``K_RANGE``; the silhouette score (on a fixed-seed sample of at most
``SILHOUETTE_SAMPLE`` customers) picks it. Every cluster gets a profile — size, medians, top category — and
a generated description such as "frequent, high-spend, recent buyers of Coffee".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from martech.models.customers import contact_of_customer

K_RANGE = range(3, 9)
SILHOUETTE_SAMPLE = 5_000
SEED = 7
FIT_SAMPLE = 100_000  # k-means is fitted on at most this many customers, then every customer is assigned


@dataclass
class Clustering:
    k: int
    silhouette: dict[int, float]
    labels: pd.Series  # cluster id per customer_id
    profiles: pd.DataFrame


def features(rfm: pd.DataFrame, category_units: pd.DataFrame) -> pd.DataFrame:
    """``rfm``: customer_id, recency_days, frequency, monetary; ``category_units``: customer_id, category, units."""
    shares = category_units.pivot_table(index="customer_id", columns="category", values="units", aggfunc="sum",
                                        fill_value=0)
    shares = shares.div(shares.sum(axis=1).replace(0, 1), axis=0).add_prefix("share_")
    base = rfm.set_index("customer_id")[["recency_days", "frequency", "monetary"]].astype(float)
    out = pd.DataFrame({"log_recency": np.log1p(base["recency_days"]), "log_frequency": np.log1p(base["frequency"]),
                        "log_monetary": np.log1p(base["monetary"].clip(lower=0))}, index=base.index)
    return out.join(shares, how="left").fillna(0.0).sort_index()


def fit(feats: pd.DataFrame, rfm: pd.DataFrame, *, k_range: range = K_RANGE) -> Clustering:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    if len(feats) < max(k_range) * 2:
        raise ValueError(f"clustering needs at least {max(k_range) * 2} customers, got {len(feats)}")
    x = StandardScaler().fit_transform(feats.to_numpy())
    rng = np.random.default_rng(SEED)
    sample = rng.choice(len(x), size=min(SILHOUETTE_SAMPLE, len(x)), replace=False)
    fit_rows = x[rng.choice(len(x), size=FIT_SAMPLE, replace=False)] if len(x) > FIT_SAMPLE else x
    scores: dict[int, float] = {}
    fitted: dict[int, Any] = {}
    for k in k_range:
        km = KMeans(n_clusters=k, n_init=4, random_state=SEED).fit(fit_rows)
        scores[k] = float(silhouette_score(x[sample], km.predict(x[sample])))
        fitted[k] = km
    best = max(scores, key=lambda k: (scores[k], -k))
    # Stable ids: clusters numbered by descending size.
    raw = pd.Series(fitted[best].predict(x), index=feats.index)
    order = raw.value_counts().sort_index().sort_values(ascending=False, kind="stable").index
    relabel = {old: new for new, old in enumerate(order, start=1)}
    labels = raw.map(relabel).rename("cluster_id")
    return Clustering(best, scores, labels, profile(labels, feats, rfm))


def profile(labels: pd.Series, feats: pd.DataFrame, rfm: pd.DataFrame) -> pd.DataFrame:
    base = rfm.set_index("customer_id").loc[labels.index]
    share_cols = [c for c in feats.columns if c.startswith("share_")]
    overall = base[["recency_days", "frequency", "monetary"]].median()
    rows = []
    for cid, members in labels.groupby(labels):
        b = base.loc[members.index]
        med = b[["recency_days", "frequency", "monetary"]].median()
        shares = feats.loc[members.index, share_cols].mean()
        top = shares.idxmax().removeprefix("share_") if len(share_cols) else None
        freq = "frequent" if med["frequency"] > max(overall["frequency"], 1) else (
            "one-time" if med["frequency"] <= 1 else "occasional")
        spend = "high-spend" if med["monetary"] > 1.5 * overall["monetary"] else (
            "low-spend" if med["monetary"] < 0.67 * overall["monetary"] else "mid-spend")
        recency = "recent" if med["recency_days"] < 0.67 * overall["recency_days"] else (
            "dormant" if med["recency_days"] > 1.5 * overall["recency_days"] else "lapsing")
        focus = f" of {top}" if top and shares.max() >= 0.4 else " across categories"
        name = f"{freq} {spend} {recency}" + (f" {top}" if top and shares.max() >= 0.4 else " mixed")
        rows.append({"cluster_id": int(cid), "name": name, "customers": len(members),
                     "median_recency_days": float(med["recency_days"]), "median_frequency": float(med["frequency"]),
                     "median_monetary": float(med["monetary"]), "top_category": top,
                     "top_category_share": float(shares.max()) if len(share_cols) else None,
                     "description": f"{freq}, {spend}, {recency} buyers{focus}: {len(members):,} customers,"
                                    f" median {med['frequency']:.0f} orders, {med['monetary']:.0f} revenue,"
                                    f" last order {med['recency_days']:.0f} days ago"})
    return pd.DataFrame(rows)


def build_segments(engine: Any, as_of: dt.date) -> dict[str, Any]:
    """Fit clusters on marts.customer_rfm of ``as_of``; write marts.cluster_profiles and marts.customer_segments."""
    import sqlalchemy as sa

    from martech.db import copy_rows

    with engine.connect() as conn:
        rfm = pd.read_sql_query(sa.text(
            "select customer_id, recency_days, frequency, monetary, segment from marts.customer_rfm"
            " where as_of_date = :d"), conn, params={"d": as_of})
        units = pd.read_sql_query(sa.text(
            "select o.customer_id, p.category, sum(i.quantity) as units from staging.orders o"
            " join staging.order_items i using (order_id) join staging.products p using (product_id)"
            " where o.status = 'completed' and o.order_ts < :d group by 1, 2"), conn, params={"d": as_of})
        link = contact_of_customer(conn)
        stages = pd.read_sql_query(sa.text(
            "select customer_id, min(lifecycle_stage) as lifecycle_stage from marts.customer_lifecycle"
            " where as_of_date = :d and customer_id is not null group by customer_id"), conn, params={"d": as_of})
    with engine.begin() as conn:
        conn.execute(sa.text("delete from marts.cluster_profiles where as_of = :d"), {"d": as_of})
        conn.execute(sa.text("delete from marts.customer_segments where as_of = :d"), {"d": as_of})
    if len(rfm) < max(K_RANGE) * 2:
        return {"k": 0, "customers": 0, "silhouette": {}}
    feats = features(rfm, units)
    result = fit(feats, rfm)
    prof = result.profiles.assign(as_of=as_of.isoformat(), k=result.k,
                                  silhouette=result.silhouette[result.k])
    seg = (rfm.set_index("customer_id")[["segment"]].join(result.labels).join(link.set_index("customer_id"))
           .join(stages.set_index("customer_id")).reset_index())
    names = prof.set_index("cluster_id")["name"]
    with engine.begin() as conn:
        copy_rows(conn, "marts.cluster_profiles",
                  ("as_of", "cluster_id", "name", "description", "customers", "median_recency_days",
                   "median_frequency", "median_monetary", "top_category", "top_category_share", "k", "silhouette"),
                  ((r.as_of, r.cluster_id, r.name, r.description, r.customers, r.median_recency_days,
                    r.median_frequency, r.median_monetary, r.top_category, r.top_category_share, r.k, r.silhouette)
                   for r in prof.itertuples(index=False)))
        n = copy_rows(conn, "marts.customer_segments",
                      ("as_of", "customer_id", "contact_id", "rfm_segment", "lifecycle_stage", "cluster_id",
                       "cluster_name"),
                      ((as_of.isoformat(), int(r.customer_id), r.contact_id if isinstance(r.contact_id, str) else None,
                        r.segment, r.lifecycle_stage if isinstance(r.lifecycle_stage, str) else None,
                        int(r.cluster_id), names[int(r.cluster_id)]) for r in seg.itertuples(index=False)))
    return {"k": result.k, "customers": n, "silhouette": result.silhouette}
