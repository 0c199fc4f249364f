"""The purchase process: seasonality, signups, BG/NBD-style repeat buying and basket contents.

Times are ``int64`` unix seconds throughout; days are counted from 1970-01-01 (``epoch days``).
Customers buy as a Poisson process whose rate follows the calendar (:func:`day_intensity`); after each
purchase they drop out for good with their own probability. The whole history is drawn per customer
at once with order statistics, so there is no Python loop over orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from martech.simulate.catalog import CATEGORIES, partner_matrix, preference_matrix

DAY = 86_400

# Weekly pattern, Monday first: a quiet weekend day and a Sunday-evening browsing peak.
WEEKLY = np.asarray([1.00, 0.98, 0.97, 1.00, 0.93, 0.88, 1.24])
# Local hour-of-day shopping profile (midnight first).
DIURNAL = np.asarray([0.25, 0.12, 0.08, 0.06, 0.06, 0.12, 0.3, 0.6, 0.85, 1.0, 1.1, 1.2,
                      1.35, 1.25, 1.1, 1.05, 1.15, 1.35, 1.6, 1.85, 2.05, 1.9, 1.4, 0.7])

# BG/NBD-like heterogeneity, calibrated so two years of history give ≈7.5 orders per customer on
# average while the median customer has bought only a few times.
RATE_SHAPE = 0.55  # gamma shape: small → many rare buyers, a few very frequent ones
RATE_MEAN_PER_DAY = 0.052
RATE_MAX_PER_DAY = 0.4  # the gamma tail would otherwise produce a few daily shoppers
DROPOUT_A, DROPOUT_B = 0.7, 6.0  # beta: mean drop-out ≈ 10% after each purchase, many near 0 or high
BUYS_AT_SIGNUP = 0.97  # the rest registered without ordering (yet)
SIGNUP_GROWTH = (0.6, 1.4)  # relative signup volume at the start and the end of the history
DELETED_SHARE = 0.005

LINE_COUNT_P = np.asarray([0.50, 0.30, 0.14, 0.06])  # 1–4 lines
PARTNER_LINE_P, SAME_CATEGORY_LINE_P = 0.45, 0.20  # extra lines: partner / anchor category / prefs
QTY_CONSUMABLE_P = np.asarray([0.55, 0.28, 0.10, 0.07])
QTY_OTHER_P = np.asarray([0.88, 0.09, 0.02, 0.01])
SALE_LINE_SHARE = 0.05
COUPON_SHARE = 0.06
STATUS_P = {"completed": 0.96, "refunded": 0.03, "cancelled": 0.01}


def _yearly(epoch_days: np.ndarray) -> np.ndarray:
    d64 = epoch_days.astype("datetime64[D]")
    doy = (d64 - d64.astype("datetime64[Y]")).astype(np.int64)
    # A soft winter high, a summer low and the run-up to Christmas on top (peaking mid-December).
    return (1.0 + 0.10 * np.cos(2 * np.pi * (doy - 345) / 365.25)
            + 0.65 * np.exp(-0.5 * ((doy - 346) / 9.0) ** 2))


def _raw_intensity(epoch_days: np.ndarray) -> np.ndarray:
    return WEEKLY[(epoch_days + 3) % 7] * _yearly(epoch_days)


# Normalise over a whole leap cycle so that a rate means "orders per average day".
_NORM = float(_raw_intensity(np.arange(10_957, 10_957 + 1461)).mean())


def day_intensity(epoch_days: np.ndarray) -> np.ndarray:
    """Relative purchase intensity of each calendar day (mean 1 over a year)."""
    return _raw_intensity(np.asarray(epoch_days, dtype=np.int64)) / _NORM


def time_of_day(rng: np.random.Generator, utc_offset_h: np.ndarray) -> np.ndarray:
    """Seconds into the UTC day for purchases made at a plausible local hour."""
    n = len(utc_offset_h)
    cum = np.cumsum(DIURNAL) / DIURNAL.sum()
    hour = np.minimum(np.searchsorted(cum, rng.random(n), side="right"), 23)
    local = hour * 3600 + rng.integers(0, 3600, size=n)
    return (local - np.asarray(utc_offset_h, dtype=np.int64) * 3600) % DAY


@dataclass(frozen=True)
class History:
    """The calendar of a simulated history: ``n_days`` whole days ending just before ``end_s``."""

    start_day: int  # epoch day of the first day
    n_days: int

    @property
    def start_s(self) -> int:
        return self.start_day * DAY

    @property
    def end_s(self) -> int:
        return (self.start_day + self.n_days) * DAY

    def intensity(self) -> np.ndarray:
        return day_intensity(np.arange(self.start_day, self.start_day + self.n_days))

    def warped(self, ts: np.ndarray) -> np.ndarray:
        """Cumulative intensity up to each time (in "average days" since the start)."""
        s = self.intensity()
        cum = np.concatenate([[0.0], np.cumsum(s)])
        rel = (np.asarray(ts, dtype=np.int64) - self.start_s) / DAY
        i = np.clip(np.floor(rel).astype(np.int64), 0, self.n_days - 1)
        return cum[i] + s[i] * (rel - i)

    def unwarp_day(self, w: np.ndarray) -> np.ndarray:
        """The day index (0-based) at which cumulative intensity ``w`` is reached."""
        cum = np.concatenate([[0.0], np.cumsum(self.intensity())])
        return np.clip(np.searchsorted(cum, w, side="right") - 1, 0, self.n_days - 1)


def sample_signups(rng: np.random.Generator, history: History, utc_offset_h: np.ndarray) -> np.ndarray:
    """Signup times: a growing shop (more signups later) with the calendar's seasonality."""
    n = len(utc_offset_h)
    growth = np.linspace(*SIGNUP_GROWTH, history.n_days)
    w = growth * history.intensity()
    day = rng.choice(history.n_days, size=n, p=w / w.sum())
    return history.start_s + day * DAY + time_of_day(rng, utc_offset_h)


@dataclass(frozen=True)
class Behaviour:
    """Each customer's latent buying behaviour and the purchase times it produced."""

    purchase_rate: np.ndarray  # orders per average day while alive
    dropout_p: np.ndarray  # probability of leaving for good after each purchase
    alive: np.ndarray  # still buying at the end of the history
    order_customer: np.ndarray  # index into the customer arrays, one entry per order
    order_ts: np.ndarray  # unix seconds, one per order
    first_order: np.ndarray  # whether the order is that customer's first


def sample_behaviour(rng: np.random.Generator, history: History, signup_s: np.ndarray,
                     utc_offset_h: np.ndarray) -> Behaviour:
    """Draw rates, drop-out probabilities and every purchase up to the end of the history."""
    n = len(signup_s)
    rate = np.minimum(rng.gamma(RATE_SHAPE, RATE_MEAN_PER_DAY / RATE_SHAPE, size=n), RATE_MAX_PER_DAY)
    dropout = rng.beta(DROPOUT_A, DROPOUT_B, size=n)
    at_signup = rng.random(n) < BUYS_AT_SIGNUP
    # The checkout that created the account, a few minutes after it (and never after the history).
    first_ts = np.minimum(signup_s + rng.integers(120, 1800, size=n), history.end_s - 1)
    t0 = np.where(at_signup, first_ts, signup_s)
    w0 = history.warped(t0)
    exposure = np.maximum(float(history.warped(np.asarray([history.end_s - 1]))[0]) - w0, 0.0)
    possible = rng.poisson(rate * exposure)  # purchases the process offers after t0
    lifetime = rng.geometric(dropout)  # purchases made before dropping out, counting the first
    total = np.minimum(lifetime, at_signup + possible)
    alive = lifetime > at_signup + possible
    k = total - at_signup  # how many of the offered purchases happen

    # The first k of `possible` uniform points, in order, via exponential spacings: the j-th of n
    # sorted uniforms is S_j / S_{n+1}; the spacings beyond k only enter through one gamma draw.
    owner = np.repeat(np.arange(n), k)
    spacing = rng.exponential(size=len(owner))
    csum = np.cumsum(spacing)
    seg_start = np.concatenate([[0], np.cumsum(k)[:-1]])
    before = np.concatenate([[0.0], csum])[seg_start]  # csum just before each customer's segment
    within = csum - np.repeat(before, k)
    seg_total = np.zeros(n)
    has = k > 0
    seg_total[has] = within[np.cumsum(k)[has] - 1]
    rest = np.zeros(n)
    rest[has] = rng.gamma(possible[has] + 1 - k[has], 1.0)
    u = within / np.repeat(seg_total + rest, k)
    w = np.repeat(w0, k) + u * np.repeat(exposure, k)
    day = history.unwarp_day(w)
    ts = history.start_s + day * DAY + time_of_day(rng, utc_offset_h[owner])
    # A repeat purchase on the day of the first one must come after it.
    t0_rep = np.repeat(t0, k)
    early = ts <= t0_rep
    if early.any():
        day_end = history.start_s + (day[early] + 1) * DAY
        room = day_end - t0_rep[early] - 1
        ts[early] = t0_rep[early] + 1 + np.floor(rng.random(int(early.sum())) * room).astype(np.int64)
    first_owner = np.flatnonzero(at_signup & (total > 0))
    order_customer = np.concatenate([first_owner, owner])
    order_ts = np.concatenate([first_ts[first_owner], ts]).astype(np.int64)
    # Orders sorted by time (customer as tiebreak): order ids then rise with time, as in a real shop.
    order = np.lexsort((order_customer, order_ts))
    order_customer, order_ts = order_customer[order], order_ts[order]
    seen = pd.Series(order_customer).duplicated().to_numpy()
    return Behaviour(purchase_rate=rate, dropout_p=dropout, alive=alive, order_customer=order_customer,
                     order_ts=order_ts, first_order=~seen)


def _draw_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category per row of ``probs`` (n × k), by inverse CDF."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None]
    return np.minimum((u >= cum).sum(axis=1), probs.shape[1] - 1)


def build_items(rng: np.random.Generator, primary_category: np.ndarray, products: pd.DataFrame,
                discount_pct: np.ndarray) -> pd.DataFrame:
    """Order lines for orders whose customers have the given main categories.

    Returns ``order_idx`` (position in the inputs), ``line_no``, ``product_id``, ``quantity`` and
    ``unit_price_cents``. An order's first line comes from the customer's preferences; further lines
    favour the first line's partner categories (the planted same-basket affinity). ``discount_pct``
    (per order, 0 for none) is a coupon; without one, a few lines are on sale.
    """
    n = len(primary_category)
    pref = preference_matrix()
    partners = partner_matrix()
    lines = 1 + np.searchsorted(np.cumsum(LINE_COUNT_P), rng.random(n) * LINE_COUNT_P.sum(), side="right")
    lines = np.minimum(lines, len(LINE_COUNT_P))
    order_idx = np.repeat(np.arange(n), lines)
    line_no = np.arange(len(order_idx)) - np.repeat(np.cumsum(lines) - lines, lines) + 1

    anchor = _draw_rows(rng, pref[primary_category])
    line_anchor = anchor[order_idx]
    from_prefs = _draw_rows(rng, pref[primary_category[order_idx]])
    partner_rows = partners[line_anchor]
    from_partner = _draw_rows(rng, partner_rows / partner_rows.sum(axis=1, keepdims=True))
    r = rng.random(len(order_idx))
    category = np.where(r < PARTNER_LINE_P, from_partner,
                        np.where(r < PARTNER_LINE_P + SAME_CATEGORY_LINE_P, line_anchor, from_prefs))
    category = np.where(line_no == 1, line_anchor, category)

    # Products within the category by popularity: catalog rows are grouped by category and each
    # category's popularity sums to one, so "category index + within-category CDF" is one sorted axis.
    cat_idx = products["category_idx"].to_numpy()
    cdf = cat_idx + products.groupby("category_idx")["popularity"].cumsum().to_numpy()
    pick = np.searchsorted(cdf, category + rng.random(len(category)) * 0.999999, side="right")
    pick = np.minimum(pick, len(products) - 1)

    items = pd.DataFrame({"order_idx": order_idx, "pick": pick})
    # The same product twice in one basket becomes one line; then number the lines again.
    items = items.drop_duplicates(["order_idx", "pick"]).reset_index(drop=True)
    items["line_no"] = items.groupby("order_idx").cumcount() + 1
    pick = items["pick"].to_numpy()
    consumable = np.asarray([c.consumable for c in CATEGORIES])[cat_idx[pick]]
    q_cons = 1 + np.searchsorted(np.cumsum(QTY_CONSUMABLE_P), rng.random(len(pick)), side="right")
    q_other = 1 + np.searchsorted(np.cumsum(QTY_OTHER_P), rng.random(len(pick)), side="right")
    items["quantity"] = np.minimum(np.where(consumable, q_cons, q_other), 4)
    price = products["price_cents"].to_numpy()[pick]
    coupon = np.asarray(discount_pct, dtype=np.int64)[items["order_idx"].to_numpy()]
    sale = np.where(rng.random(len(pick)) < SALE_LINE_SHARE, rng.choice([10, 15, 20], size=len(pick)), 0)
    pct = np.where(coupon > 0, coupon, sale)
    items["unit_price_cents"] = np.round(price * (100 - pct) / 100).astype(np.int64)
    items["product_id"] = products["product_id"].to_numpy()[pick]
    return items.drop(columns=["pick"])


def order_status(rng: np.random.Generator, order_ts: np.ndarray, end_s: int) -> tuple[np.ndarray, np.ndarray]:
    """Status and ``updated_at`` per order: refunds days later, cancellations within hours."""
    n = len(order_ts)
    names = np.asarray(list(STATUS_P), dtype=object)
    p = np.asarray(list(STATUS_P.values()))
    status = names[rng.choice(len(p), size=n, p=p / p.sum())]
    delay = np.where(status == "refunded", rng.integers(2 * DAY, 21 * DAY, size=n),
                     np.where(status == "cancelled", rng.integers(600, 6 * 3600, size=n), 0))
    updated = order_ts + delay
    # A refund or cancellation due after the history ends has not happened yet.
    pending = updated >= end_s
    status[pending] = "completed"
    updated[pending] = order_ts[pending]
    return status, updated


def coupons(rng: np.random.Generator, order_ts: np.ndarray, first_order: np.ndarray) -> tuple[np.ndarray,
                                                                                                np.ndarray]:
    """Coupon code (``None`` for most orders) and its discount percentage per order."""
    n = len(order_ts)
    has = rng.random(n) < COUPON_SHARE
    month = (order_ts.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) % 12) + 1
    other = np.asarray(["FRIENDS20", "COMEBACK15", "SPRING10"], dtype=object)[rng.integers(0, 3, size=n)]
    code = np.where(first_order, "WELCOME10", np.where(month == 12, "XMAS15", other)).astype(object)
    code[~has] = None
    pct = np.zeros(n, dtype=np.int64)
    for c in ("WELCOME10", "XMAS15", "FRIENDS20", "COMEBACK15", "SPRING10"):
        pct[code == c] = int(c[-2:])
    return code, pct
