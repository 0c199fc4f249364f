"""Predicted customer lifetime value and churn: BG/NBD for repeat buying, Gamma-Gamma for spend.

The two models of Fader, Hardie & Lee ("Counting your customers the easy way", 2005; "RFM and CLV", 2005),
implemented from their published likelihoods with SciPy (``docs/clv.md`` says why not a library):

* **BG/NBD**: while alive, a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after each
  purchase they drop out with probability p ~ Beta(a, b). Fitted by maximum likelihood on each
  customer's ``(x, t_x, T)`` — repeat purchases, time of the last one and age, all measured from the
  first purchase — it gives the expected number of purchases in the next ``t`` periods and P(alive).
* **Gamma-Gamma**: the average order value of a customer with ``x`` repeat purchases and mean spend
  ``m`` is Gamma(p, ν) with ν ~ Gamma(q, γ), independent of the purchase process; the conditional
  expectation shrinks each customer's mean towards the population mean.

Time unit: weeks (``DAYS_PER_PERIOD``), as in the papers, so the CDNOW parameters compare directly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

from martech.models.customers import contact_of_customer, nothing_to_model, read_orders

DAYS_PER_PERIOD = 7.0
MODEL_VERSION = "bgnbd-gg-1"
HORIZON_DAYS = 90
# The models are refitted once a week and every run in between scores with the stored fit
# (marts.clv_fits): the parameters describe the whole population and move slowly, the scores do not.
REFIT_DAYS = 7
FITS_TABLE = "marts.clv_fits"
# Churn risk bands on P(alive): documented in docs/clv.md.
CHURN_BANDS = ((0.3, "high"), (0.7, "medium"))  # p_alive < 0.3 → high, < 0.7 → medium, else low


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float


# -- summaries -----------------------------------------------------------------------------------------


def summarize(transactions: pd.DataFrame, *, as_of: dt.datetime | dt.date, customer_col: str = "customer_id",
              ts_col: str = "order_ts", amount_col: str = "amount") -> pd.DataFrame:
    """Per customer ``x`` (repeat purchase days), ``t_x``, ``T`` (weeks) and mean repeat spend ``m``.

    Purchases on the same calendar day count as one (their amounts add up), as in the papers: BG/NBD
    counts purchase days, RFM counts orders (docs/clv.md). Only transactions strictly before ``as_of`` are
    used. ``T`` runs from the first purchase day to the last observed day (the day before a midnight
    ``as_of``, the day of any other), the same day convention as ``t_x`` and the BTYD literature, so a run
    date of 1997-10-01 gives the CDNOW calibration period ending on 1997-09-30. ``m`` is the mean value of
    the *repeat* purchases (0 when there are none), the quantity Gamma-Gamma models.
    """
    as_of_ts = pd.Timestamp(as_of)
    ts = pd.to_datetime(transactions[ts_col])
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    if as_of_ts.tzinfo is not None:
        as_of_ts = as_of_ts.tz_convert("UTC").tz_localize(None)
    frame = pd.DataFrame({"customer": transactions[customer_col].to_numpy(), "day": ts.dt.floor("D"),
                          "amount": transactions[amount_col].astype(float).to_numpy()})
    frame = frame[frame["day"] < as_of_ts]
    last_day = as_of_ts.ceil("D") - pd.Timedelta(days=1)
    daily = frame.groupby(["customer", "day"], sort=True, as_index=False)["amount"].sum()
    g = daily.groupby("customer", sort=True)
    first, last, n = g["day"].min(), g["day"].max(), g["day"].size()
    total, first_amount = g["amount"].sum(), g["amount"].first()
    x = (n - 1).astype(int)
    out = pd.DataFrame({
        "x": x,
        "t_x": (last - first).dt.days / DAYS_PER_PERIOD,
        "T": (last_day - first).dt.days / DAYS_PER_PERIOD,
        "m": np.where(x > 0, (total - first_amount) / x.clip(lower=1), 0.0),
        "first_purchase": first,
        "last_purchase": last,
    })
    out.index.name = customer_col
    return out


# -- BG/NBD --------------------------------------------------------------------------------------------


def _bgnbd_terms(r, alpha, a, b, x, t_x, T):
    """log of the two likelihood parts (the second only where x > 0)."""
    common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    log_a = (special.betaln(a, b + x) - special.betaln(a, b) + common - (r + x) * np.log(alpha + T))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_b = np.where(
            x > 0,
            special.betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - special.betaln(a, b) + common
            - (r + x) * np.log(alpha + t_x),
            -np.inf)
    return log_a, log_b


def bgnbd_log_likelihood(params: BgNbdParams | np.ndarray, x, t_x, T) -> np.ndarray:
    """Per-customer log-likelihood of BG/NBD (Fader, Hardie & Lee 2005, eq. 6)."""
    r, alpha, a, b = asdict(params).values() if isinstance(params, BgNbdParams) else params
    log_a, log_b = _bgnbd_terms(r, alpha, a, b, np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float))
    return np.logaddexp(log_a, log_b)


def fit_bgnbd(summary: pd.DataFrame, *, penalizer: float = 0.0) -> BgNbdParams:
    """Maximum likelihood fit (L-BFGS-B on log parameters); customers with identical (x, t_x, T) are pooled."""
    if summary.empty:
        raise ValueError("BG/NBD needs at least one customer with a purchase; the summary is empty")
    keys = summary[["x", "t_x", "T"]].round(6)
    pooled = keys.groupby(["x", "t_x", "T"], sort=False).size().reset_index(name="w")
    x, t_x, T, w = (pooled[c].to_numpy(float) for c in ("x", "t_x", "T", "w"))
    n = w.sum()

    def negll(logp: np.ndarray) -> float:
        p = np.exp(logp)
        ll = bgnbd_log_likelihood(p, x, t_x, T)
        return -(w @ ll) / n + penalizer * float(p @ p)

    scale = max(float(np.average(T, weights=w)), 1e-3)
    start = np.log([0.5, scale / 4, 1.0, 2.0])
    res = optimize.minimize(negll, start, method="L-BFGS-B", bounds=[(-12, 12)] * 4,
                            options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9})
    if not np.isfinite(res.fun):
        raise RuntimeError(f"BG/NBD fit did not converge: {res.message}")
    r, alpha, a, b = np.exp(res.x)
    return BgNbdParams(float(r), float(alpha), float(a), float(b))


def p_alive(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    """P(still alive at T | x, t_x, T); 1 for customers without a repeat purchase (they cannot have dropped)."""
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = (np.log(params.a) - np.log(np.maximum(params.b + x - 1, 1e-12))
                     + (params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + t_x)))
        out = 1.0 / (1.0 + np.exp(log_ratio))
    return np.where(x > 0, out, 1.0)


def expected_purchases(params: BgNbdParams, t: float, x, t_x, T) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T] (eq. 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    # The closed form holds for any a != 1 (for a < 1 both factors are negative).
    if abs(a - 1) < 1e-9:
        a = 1 + 1e-9
    first = (a + b + x - 1) / (a - 1)
    body = 1.0 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t))) * special.hyp2f1(
        r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    return first * body * p_alive(params, x, t_x, T)


def expected_purchases_new(params: BgNbdParams, t: np.ndarray | float) -> np.ndarray:
    """E[X(t)] for a customer just acquired (eq. 7): the population's expected repeat purchases by t."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.asarray(t, float)
    z = t / (alpha + t)
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * special.hyp2f1(r, b, a + b - 1, z))


# -- Gamma-Gamma ---------------------------------------------------------------------------------------


def fit_gamma_gamma(x, m) -> GammaGammaParams:
    """Maximum likelihood fit on customers with at least one repeat purchase and positive mean spend."""
    x, m = np.asarray(x, float), np.asarray(m, float)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < 10:
        raise ValueError(f"Gamma-Gamma needs at least 10 repeat customers with positive spend, got {len(x)}")

    def negll(logp: np.ndarray) -> float:
        p, q, g = np.exp(logp)
        ll = (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * np.log(g)
              + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(g + m * x))
        return -float(ll.mean())

    start = np.log([1.0, 2.0, float(np.mean(m))])
    res = optimize.minimize(negll, start, method="L-BFGS-B", bounds=[(-12, 15)] * 3)
    p, q, g = np.exp(res.x)
    return GammaGammaParams(float(p), float(q), float(g))


def expected_spend(params: GammaGammaParams, x, m) -> np.ndarray:
    """E[average order value | x, m]; the population mean for customers without repeat purchases."""
    x, m = np.asarray(x, float), np.asarray(m, float)
    p, q, g = params.p, params.q, params.gamma
    population = p * g / (q - 1) if q > 1 else np.nan
    cond = (g + m * x) * p / (p * x + q - 1)
    return np.where(x > 0, cond, population)


# -- predictions ---------------------------------------------------------------------------------------


def churn_band(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, float)
    return np.where(p < CHURN_BANDS[0][0], CHURN_BANDS[0][1], np.where(p < CHURN_BANDS[1][0], CHURN_BANDS[1][1], "low"))


def predict(summary: pd.DataFrame, bg: BgNbdParams, gg: GammaGammaParams | None, *, as_of: dt.date,
            horizon_days: int = HORIZON_DAYS) -> pd.DataFrame:
    """One row per customer: P(alive), churn band, expected purchases / revenue and next order date."""
    x, t_x, T = (summary[c].to_numpy(float) for c in ("x", "t_x", "T"))
    t = horizon_days / DAYS_PER_PERIOD
    alive = p_alive(bg, x, t_x, T)
    purchases = expected_purchases(bg, t, x, t_x, T)
    spend = expected_spend(gg, x, summary["m"].to_numpy(float)) if gg else np.full(len(x), np.nan)
    # Expected next order: the horizon divided by the expected count, from the as-of date; none when the
    # customer is expected to buy less than once in a year.
    year = expected_purchases(bg, 365 / DAYS_PER_PERIOD, x, t_x, T)
    with np.errstate(divide="ignore"):
        gap_days = np.where(year >= 1.0, 365.0 / np.maximum(year, 1e-9), np.nan)
    as_of_ts = pd.Timestamp(as_of)
    next_date = [None if np.isnan(d) else (as_of_ts + pd.Timedelta(days=float(d))).date() for d in gap_days]
    return pd.DataFrame({
        "frequency": x.astype(int),
        "recency_days": np.round(t_x * DAYS_PER_PERIOD).astype(int),
        "t_days": np.round(T * DAYS_PER_PERIOD).astype(int),
        "monetary_avg": np.round(summary["m"].to_numpy(float), 2),
        "p_alive": alive,
        "churn_risk": churn_band(alive),
        "expected_purchases": purchases,
        "expected_revenue": np.round(purchases * np.nan_to_num(spend), 2),
        "horizon_days": horizon_days,
        "expected_next_order_date": next_date,
    }, index=summary.index)


# -- CDNOW reference data ------------------------------------------------------------------------------


def load_cdnow_sample() -> pd.DataFrame:
    """The CDNOW sample (2,357 customers' purchases 1997-01 .. 1998-06) from the lifetimes wheel's data file."""
    from importlib import resources

    path = resources.files("lifetimes") / "datasets" / "CDNOW_sample.txt"
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    frame = pd.DataFrame(rows, columns=["customer_id", "new_id", "date", "cds", "amount"])
    return pd.DataFrame({"customer_id": frame["customer_id"].astype(int),
                         "order_ts": pd.to_datetime(frame["date"], format="%Y%m%d"),
                         "amount": frame["amount"].astype(float)})


# -- warehouse -----------------------------------------------------------------------------------------

TABLE = "marts.clv_predictions"
_COLUMNS = ("as_of", "customer_id", "contact_id", "frequency", "recency_days", "t_days", "monetary_avg",
            "p_alive", "churn_risk", "expected_purchases", "expected_revenue", "horizon_days",
            "expected_next_order_date", "model_version")
_INT_COLUMNS = ["customer_id", "frequency", "recency_days", "t_days", "horizon_days"]
_CENTS = {"monetary_avg": 2, "expected_revenue": 2}  # numeric(14, 2), rounded as f"{x:.2f}"


def model_version(bg: BgNbdParams, gg: GammaGammaParams | None) -> str:
    parts = [MODEL_VERSION, *(f"{k}={v:.4g}" for k, v in asdict(bg).items())]
    if gg:
        parts += [f"{k}={v:.4g}" for k, v in asdict(gg).items()]
    return " ".join(parts)


def _stored_fit(conn, as_of: dt.date, refit_days: int) -> tuple[BgNbdParams, GammaGammaParams | None, dt.date] | None:
    """The newest fit of this code version on a history at most ``refit_days - 1`` days older than ``as_of``."""
    import sqlalchemy as sa

    if refit_days <= 0:
        return None
    row = conn.execute(sa.text(
        f"select * from {FITS_TABLE} where code_version = :v and fitted_as_of <= :d"
        " and fitted_as_of > cast(:d as date) - :n order by fitted_as_of desc limit 1"),
        {"v": MODEL_VERSION, "d": as_of, "n": refit_days}).mappings().first()
    if row is None:
        return None
    bg = BgNbdParams(r=row["bgnbd_r"], alpha=row["bgnbd_alpha"], a=row["bgnbd_a"], b=row["bgnbd_b"])
    gg = None if row["gg_p"] is None else GammaGammaParams(p=row["gg_p"], q=row["gg_q"], gamma=row["gg_gamma"])
    return bg, gg, row["fitted_as_of"]


def _fit(conn, summary: pd.DataFrame, as_of: dt.date) -> tuple[BgNbdParams, GammaGammaParams | None]:
    """Fit both models on ``summary`` and record the fit in marts.clv_fits (replacing one of the same day)."""
    import sqlalchemy as sa

    bg = fit_bgnbd(summary)
    try:
        gg: GammaGammaParams | None = fit_gamma_gamma(summary["x"], summary["m"])
    except ValueError:
        gg = None
    conn.execute(sa.text(
        f"insert into {FITS_TABLE} (fitted_as_of, code_version, bgnbd_r, bgnbd_alpha, bgnbd_a, bgnbd_b,"
        " gg_p, gg_q, gg_gamma, customers) values (:d, :v, :r, :alpha, :a, :b, :p, :q, :gamma, :n)"
        " on conflict (code_version, fitted_as_of) do update set (bgnbd_r, bgnbd_alpha, bgnbd_a, bgnbd_b, gg_p,"
        " gg_q, gg_gamma, customers, trained_at) = (excluded.bgnbd_r, excluded.bgnbd_alpha,"
        " excluded.bgnbd_a, excluded.bgnbd_b, excluded.gg_p, excluded.gg_q, excluded.gg_gamma, excluded.customers,"
        " now())"),
        {"d": as_of, "v": MODEL_VERSION, **asdict(bg), **(asdict(gg) if gg else {"p": None, "q": None, "gamma": None}),
         "n": len(summary)})
    return bg, gg


def build_clv_predictions(engine, as_of: dt.date, *, horizon_days: int = HORIZON_DAYS,
                          refit_days: int = REFIT_DAYS, orders: pd.DataFrame | None = None) -> dict[str, object]:
    """Score every customer on staging.orders before ``as_of`` and replace that as_of in marts.clv_predictions.

    The parameters come from the newest stored fit less than ``refit_days`` old (marts.clv_fits); without
    one (or with ``refit_days=0``) both models are fitted on this history and the fit is stored.
    Cancelled orders are ignored and refunded ones count with their net amount (0 after a full refund).
    Gamma-Gamma needs repeat buyers; with fewer than 10 the revenue column is 0 and the version says so.
    ``orders`` (:func:`~martech.models.customers.read_orders` of ``as_of``) saves reading them again.
    """
    import sqlalchemy as sa

    from martech.db import copy_frame

    with engine.connect() as conn:
        if orders is None:
            orders = read_orders(conn, as_of)
        contacts = contact_of_customer(conn)
        stored = _stored_fit(conn, as_of, refit_days)
    if orders.empty:
        return nothing_to_model(engine, TABLE, as_of)
    summary = summarize(orders.rename(columns={"net_amount": "amount"}), as_of=pd.Timestamp(as_of))
    if stored is None:
        with engine.begin() as conn:
            bg, gg = _fit(conn, summary, as_of)
        fitted_as_of = as_of
    else:
        bg, gg, fitted_as_of = stored
    pred = predict(summary, bg, gg, as_of=as_of, horizon_days=horizon_days)
    version = model_version(bg, gg) + ("" if gg else " no-spend-model")
    link = contacts.set_index("customer_id")["contact_id"]
    pred["contact_id"] = link.reindex(pred.index).to_numpy()

    out = pred.assign(as_of=pd.Timestamp(as_of), customer_id=pred.index, model_version=version)
    out[_INT_COLUMNS] = out[_INT_COLUMNS].astype("int64")

    with engine.begin() as conn:
        conn.execute(sa.text(f"delete from {TABLE} where as_of = :d"), {"d": as_of})
        n = copy_frame(conn, TABLE, out, _COLUMNS, decimals=_CENTS)
    bands = pred["churn_risk"].value_counts().to_dict()
    return {"rows": n, "model_version": version, "fitted_as_of": fitted_as_of.isoformat(), "refitted": stored is None,
            "churn_risk": {str(k): int(v) for k, v in bands.items()}}
