"""Product pairs and per-customer recommendations ("bought X, customers who buy X buy Y").

Baskets are customers: everything a customer bought (completed orders before the as-of date) is one set.
From the customer × product matrix ``B`` the co-occurrence ``C = BᵀB`` gives, for products x and y,
support = C[x, y] / customers, confidence P(y | x) = C[x, y] / C[x, x] and lift = confidence / P(y).

A customer's score for a product y they have not bought is Σ_x P(y | x) over the products x they bought
(item-to-item collaborative filtering); the explanation names the x contributing most. Customers with
nothing to go on get the most popular products (reason "popular"). ``hit_rate`` checks the ranking
against the first purchase after a cutoff, next to a popularity baseline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

TOP_N = 5
MIN_PAIR_CUSTOMERS = 5  # product pairs bought by fewer customers are noise, not affinity
CHUNK = 20_000  # customers scored at once (memory: CHUNK × products floats)


@dataclass
class Baskets:
    customers: np.ndarray  # customer id per row
    products: np.ndarray  # product id per column
    matrix: sparse.csr_matrix  # 1 where the customer bought the product

    @classmethod
    def from_lines(cls, lines: pd.DataFrame) -> Baskets:
        """``lines``: customer_id, product_id (one row per order line; duplicates are fine)."""
        cust_codes, customers = pd.factorize(lines["customer_id"], sort=True)
        prod_codes, products = pd.factorize(lines["product_id"], sort=True)
        m = sparse.csr_matrix((np.ones(len(lines), dtype=np.float32), (cust_codes, prod_codes)),
                              shape=(len(customers), len(products)))
        m.data[:] = 1.0  # duplicates summed above: back to 0/1
        m.sum_duplicates()
        m.data[:] = 1.0
        return cls(np.asarray(customers), np.asarray(products), m)


def cooccurrence(b: Baskets) -> np.ndarray:
    return (b.matrix.T @ b.matrix).toarray()


def product_pairs(b: Baskets, *, min_customers: int = MIN_PAIR_CUSTOMERS) -> pd.DataFrame:
    """Ordered product pairs (antecedent → consequent) with pair count, support, confidence and lift."""
    c = cooccurrence(b)
    n = b.matrix.shape[0]
    singles = np.diag(c).copy()
    x, y = np.nonzero(c >= min_customers)
    keep = x != y
    x, y = x[keep], y[keep]
    pair = c[x, y]
    conf = pair / singles[x]
    return pd.DataFrame({
        "antecedent": b.products[x], "consequent": b.products[y], "pair_count": pair.astype(int),
        "support": pair / n, "confidence": conf, "lift": conf / (singles[y] / n),
    }).sort_values(["antecedent", "lift"], ascending=[True, False], ignore_index=True)


def recommend(b: Baskets, *, n: int = TOP_N, min_customers: int = MIN_PAIR_CUSTOMERS) -> pd.DataFrame:
    """Top ``n`` products per customer not yet bought, each with the product that explains it."""
    c = cooccurrence(b).astype(np.float64)
    singles = np.diag(c).copy()
    c[c < min_customers] = 0.0
    np.fill_diagonal(c, 0.0)
    cond = np.divide(c, singles[:, None], out=np.zeros_like(c), where=singles[:, None] > 0)  # P(y | x)
    popularity = singles / max(singles.max(), 1.0) * 1e-6  # tiny tiebreak towards popular products
    frames = []
    for start in range(0, b.matrix.shape[0], CHUNK):
        rows = b.matrix[start:start + CHUNK]
        scores = np.asarray(rows @ cond) + popularity
        bought = rows.toarray().astype(bool)
        scores[bought] = -np.inf
        k = min(n, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        for r in range(k):
            # The bought product x with the largest P(recommended | x) explains the recommendation.
            contrib = np.where(bought, cond[:, top[:, r]].T, 0.0)
            best = contrib.argmax(axis=1)
            has = contrib[np.arange(len(best)), best] > 0
            ok = np.isfinite(top_scores[:, r])
            frames.append(pd.DataFrame({
                "customer_id": b.customers[start:start + rows.shape[0]][ok], "rank": r + 1,
                "product_id": b.products[top[ok, r]], "score": top_scores[ok, r],
                "because_product_id": np.where(has, b.products[best], None)[ok],
                "reason": np.where(has, "bought_together", "popular")[ok]}))
    if not frames:
        return pd.DataFrame(columns=["customer_id", "rank", "product_id", "score", "because_product_id", "reason"])
    return pd.concat(frames, ignore_index=True).sort_values(["customer_id", "rank"], ignore_index=True)


def hit_rate(lines: pd.DataFrame, cutoff: dt.datetime, *, k: int = TOP_N) -> dict[str, float]:
    """Fit on lines before ``cutoff``; for each customer, is a product of their first order after it
    (one they had not bought before) among their top ``k``? Returns the model's and popularity's rate."""
    ts = pd.to_datetime(lines["order_ts"], utc=True)
    cut = pd.Timestamp(cutoff)
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut
    before, after = lines[ts < cut], lines[ts >= cut].assign(_ts=ts[ts >= cut])
    b = Baskets.from_lines(before)
    first = after.sort_values(["_ts", "order_id"]).groupby("customer_id")["order_id"].first()
    target = after[after["order_id"].isin(first.to_numpy())]
    known = set(b.customers.tolist())
    history = before.groupby("customer_id")["product_id"].agg(set)
    wanted: dict[Any, set] = {}
    for cust, prods in target.groupby("customer_id")["product_id"]:
        if cust in known:
            new = set(prods) - history.get(cust, set())
            if new:
                wanted[cust] = new
    recs = recommend(b, n=k)
    recs = recs[recs["customer_id"].isin(wanted)]
    model_top = recs.groupby("customer_id")["product_id"].agg(set)
    popular = pd.Series(np.asarray(b.matrix.sum(axis=0)).ravel(), index=b.products).sort_values(
        ascending=False, kind="stable")
    hits_model = hits_pop = 0
    for cust, new in wanted.items():
        hits_model += bool(model_top.get(cust, set()) & new)
        have = history.get(cust, set())
        pop_top = [p for p in popular.index[: k + len(have)] if p not in have][:k]
        hits_pop += bool(set(pop_top) & new)
    n = len(wanted)
    return {"customers": n, "model_hit_rate": hits_model / n if n else 0.0,
            "popularity_hit_rate": hits_pop / n if n else 0.0}


# -- warehouse -----------------------------------------------------------------------------------------


def load_lines(engine: Any, before: dt.date | None = None) -> pd.DataFrame:
    import sqlalchemy as sa

    sql = ("select o.customer_id, o.order_id, o.order_ts, i.product_id from staging.orders o"
           " join staging.order_items i using (order_id) where o.status = 'completed'")
    params: dict[str, Any] = {}
    if before is not None:
        sql += " and o.order_ts < :d"
        params["d"] = before
    with engine.connect() as conn:
        return pd.read_sql_query(sa.text(sql), conn, params=params)


def build_recommendations(engine: Any, as_of: dt.date, *, n: int = TOP_N) -> dict[str, int]:
    """Product-level rows of marts.product_affinity and marts.recommendations for ``as_of``."""
    import sqlalchemy as sa

    from martech.db import copy_rows

    lines = load_lines(engine, as_of)
    if lines.empty:
        return {"pairs": 0, "recommendations": 0}
    b = Baskets.from_lines(lines)
    pairs = product_pairs(b)
    recs = recommend(b, n=n)
    with engine.connect() as conn:
        names = dict(conn.execute(sa.text("select product_id, name from staging.products")).all())
        contacts = dict(conn.execute(sa.text(
            "select customer_id, min(contact_id) from staging.contacts where customer_id is not null"
            " group by customer_id")).all())

    def reason(row: Any) -> str:
        if row.reason == "popular":
            return f"popular: {names.get(row.product_id, row.product_id)} is among our most bought products"
        return (f"bought {names.get(row.because_product_id, row.because_product_id)}; customers who buy it"
                f" buy {names.get(row.product_id, row.product_id)}")

    with engine.begin() as conn:
        conn.execute(sa.text("delete from marts.product_affinity where level = 'product'"))
        n_pairs = copy_rows(conn, "marts.product_affinity",
                            ("level", "antecedent", "consequent", "pair_count", "support", "confidence", "lift",
                             "as_of_date"),
                            (("product", str(r.antecedent), str(r.consequent), int(r.pair_count),
                              f"{r.support:.6f}", f"{r.confidence:.6f}", f"{r.lift:.4f}", as_of.isoformat())
                             for r in pairs.itertuples(index=False)))
        conn.execute(sa.text("delete from marts.recommendations where as_of = :d"), {"d": as_of})
        n_recs = copy_rows(conn, "marts.recommendations",
                           ("as_of", "customer_id", "contact_id", "rank", "product_id", "score",
                            "because_product_id", "reason"),
                           ((as_of.isoformat(), int(r.customer_id), contacts.get(int(r.customer_id)), int(r.rank),
                             int(r.product_id), repr(float(r.score)),
                             None if r.because_product_id is None or pd.isna(r.because_product_id)
                             else int(r.because_product_id), reason(r))
                            for r in recs.itertuples(index=False)))
    return {"pairs": n_pairs, "recommendations": n_recs}
