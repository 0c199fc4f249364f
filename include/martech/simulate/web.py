"""Web analytics: sessions on the shop's site and the products viewed in them.

Four kinds of session, all drawn without a Python loop over sessions:

- **buying** — one per order, shortly before it (before its cart, when the order went through one); the
  ordered products are among the views;
- **cart** — one per abandoned (or still open) cart, holding views of the cart's products;
- **browsing** — customers look around without buying, from their signup on, about
  ``BROWSE_PER_ORDER`` sessions per order they placed (plus one); viewed categories follow their
  preferences (:func:`martech.simulate.catalog.preference_matrix`);
- **lead** — sessions of CRM leads identified by an e-mail click (``contact_id`` set, no
  ``customer_id``), before they converted; their page views add up to exactly the ``page_views``
  property the CRM exports for the lead;
- **anonymous** — visitors nobody knows (both ids null), viewing products by popularity.

A session's ``page_views`` is at least its number of product views. ``updated_at`` is the end of the
session (when the tracker writes it), the column the incremental ingest reads by.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from martech.simulate.catalog import CATEGORIES, preference_matrix
from martech.simulate.purchases import time_of_day

BROWSE_PER_ORDER = 0.4  # customers' browsing sessions: Poisson(BROWSE_PER_ORDER × (orders + 1))
ANONYMOUS_PER_ORDER = 0.15  # anonymous sessions per order in the history
EXTRA_VIEWS_BUYING = 1.0  # Poisson mean of products looked at besides the ones bought
VIEWS_BROWSING = 2.2  # Poisson mean (plus one) of products viewed while browsing
LEAD_SESSION_SPLIT = 0.35  # each further page view of a lead starts a new session with this chance
LEAD_PRODUCT_VIEW_P = 0.5  # share of a lead's page views that are product pages
SECONDS_PER_PAGE = (20, 120)


def _products_in(rng: np.random.Generator, products: pd.DataFrame, category: np.ndarray) -> np.ndarray:
    """A catalog row per entry of ``category`` (category index), by popularity within the category."""
    cat_idx = products["category_idx"].to_numpy()
    cdf = cat_idx + products.groupby("category_idx")["popularity"].cumsum().to_numpy()
    pick = np.searchsorted(cdf, category + rng.random(len(category)) * 0.999999, side="right")
    return np.minimum(pick, len(products) - 1)


def _categories(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None]
    return np.minimum((u >= cum).sum(axis=1), probs.shape[1] - 1)


def _uniform_time(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, utc_offset_h: np.ndarray) -> np.ndarray:
    """A second in ``[lo, hi)`` per entry, on a uniformly drawn day at a plausible local hour."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.maximum(np.asarray(hi, dtype=np.int64), lo + 1)
    day0 = lo // 86_400
    days = np.maximum(hi // 86_400 - day0, 0) + 1
    day = day0 + np.floor(rng.random(len(lo)) * days).astype(np.int64)
    ts = day * 86_400 + time_of_day(rng, utc_offset_h)
    # The drawn hour can fall outside the window on its first or last day: fall back to uniform.
    outside = (ts < lo) | (ts >= hi)
    ts[outside] = lo[outside] + np.floor(rng.random(int(outside.sum())) * (hi - lo)[outside]).astype(np.int64)
    return ts


def build_sessions(rng: np.random.Generator, *, customers: pd.DataFrame, contacts: pd.DataFrame,
                   products: pd.DataFrame, orders: pd.DataFrame, items: pd.DataFrame, carts: pd.DataFrame,
                   cart_items: pd.DataFrame, end_s: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(sessions, product_views)``; times are unix seconds, all before ``end_s``."""
    pref = preference_matrix()
    offset_by_customer = customers["utc_offset_h"].to_numpy()
    n_cat = len(CATEGORIES)
    parts: list[pd.DataFrame] = []  # per session: kind, customer_id, contact_id, start, end hint
    views: list[pd.DataFrame] = []  # per view: part-local session index, product row, kind

    prod_row = pd.Series(np.arange(len(products)), index=products["product_id"].to_numpy())

    # Buying sessions: one per order, starting before the order (and its cart, if any).
    o_ts = orders["order_ts"].to_numpy()
    first = o_ts.copy()
    conv = carts[carts["status"] == "converted"]
    if len(conv):
        pos = pd.Series(np.arange(len(orders)), index=orders["order_id"].to_numpy())
        at = pos.loc[conv["order_id"].to_numpy().astype(np.int64)].to_numpy()
        np.minimum.at(first, at, conv["created_at"].to_numpy())
    start = first - rng.integers(60, 1200, size=len(orders))
    parts.append(pd.DataFrame({"kind": "buying", "customer_id": orders["customer_id"].to_numpy(),
                               "contact_id": None, "started_at": start, "must_end": o_ts + 30}))
    o_idx = pd.Series(np.arange(len(orders)), index=orders["order_id"].to_numpy())
    bought = pd.DataFrame({"session": o_idx.loc[items["order_id"].to_numpy()].to_numpy(),
                           "product": prod_row.loc[items["product_id"].to_numpy()].to_numpy()})
    n_extra = rng.poisson(EXTRA_VIEWS_BUYING, size=len(orders))
    extra_session = np.repeat(np.arange(len(orders)), n_extra)
    cust_idx = orders["customer_id"].to_numpy() - 1
    primary = customers["primary_idx"].to_numpy()
    extra_cat = _categories(rng, pref[primary[cust_idx[extra_session]]])
    extra = pd.DataFrame({"session": extra_session, "product": _products_in(rng, products, extra_cat)})
    views.append(pd.concat([bought, extra], ignore_index=True))

    # Abandoned carts: the session in which the products were put into the cart.
    ab = carts[carts["status"] != "converted"].reset_index(drop=True)
    c_start = ab["created_at"].to_numpy() - rng.integers(60, 1200, size=len(ab))
    parts.append(pd.DataFrame({"kind": "cart", "customer_id": ab["customer_id"].to_numpy(),
                               "contact_id": None, "started_at": c_start,
                               "must_end": ab["updated_at"].to_numpy()}))
    a_idx = pd.Series(np.arange(len(ab)), index=ab["cart_id"].to_numpy())
    ab_lines = cart_items[cart_items["cart_id"].isin(ab["cart_id"])]
    views.append(pd.DataFrame({"session": a_idx.loc[ab_lines["cart_id"].to_numpy()].to_numpy(),
                               "product": prod_row.loc[ab_lines["product_id"].to_numpy()].to_numpy()}))

    # Browsing: customers look around between signup and the end (or their erasure).
    n_orders = customers["orders"].to_numpy()
    n_browse = rng.poisson(BROWSE_PER_ORDER * (n_orders + 1))
    who = np.repeat(np.arange(len(customers)), n_browse)
    lo = customers["created_at"].to_numpy()[who]
    stop = np.where(customers["deleted_at"].isna(), end_s, customers["deleted_at"].fillna(0)).astype(np.int64)
    hi = np.minimum(stop[who], end_s) - 3600
    b_start = _uniform_time(rng, lo, hi, offset_by_customer[who])
    parts.append(pd.DataFrame({"kind": "browsing", "customer_id": customers["customer_id"].to_numpy()[who],
                               "contact_id": None, "started_at": b_start, "must_end": b_start}))
    k = 1 + rng.poisson(VIEWS_BROWSING - 1, size=len(who))
    b_session = np.repeat(np.arange(len(who)), k)
    b_cat = _categories(rng, pref[primary[who[b_session]]])
    views.append(pd.DataFrame({"session": b_session, "product": _products_in(rng, products, b_cat)}))

    # Leads: sessions before conversion whose page views add up to the CRM's page_views property.
    lead_pv = contacts["page_views"].to_numpy()
    has = lead_pv > 0
    lead = contacts[has].reset_index(drop=True)
    pv = lead_pv[has].astype(np.int64)
    n_sess = 1 + rng.binomial(pv - 1, LEAD_SESSION_SPLIT)
    first_sess = np.cumsum(n_sess) - n_sess
    owner = np.repeat(np.arange(len(lead)), n_sess)
    # Each session gets one page view; the rest fall into the lead's sessions at random.
    rest_owner = np.repeat(np.arange(len(lead)), pv - n_sess)
    rest_session = first_sess[rest_owner] + np.floor(rng.random(len(rest_owner)) * n_sess[rest_owner]).astype(
        np.int64)
    pages = 1 + np.bincount(rest_session, minlength=len(owner))
    l_lo = lead["created_at"].to_numpy()[owner]
    conv_at = lead["converted_at"].to_numpy(dtype=float)
    l_hi = np.where(np.isnan(conv_at), end_s, np.nan_to_num(conv_at)).astype(np.int64)[owner]
    l_start = _uniform_time(rng, l_lo, np.minimum(l_hi, end_s - 3600), lead["utc_offset_h"].to_numpy()[owner])
    parts.append(pd.DataFrame({"kind": "lead", "customer_id": np.nan,
                               "contact_id": lead["contact_id"].to_numpy()[owner], "started_at": l_start,
                               "must_end": l_start, "pages": pages}))
    k = rng.binomial(pages, LEAD_PRODUCT_VIEW_P)
    l_session = np.repeat(np.arange(len(owner)), k)
    share = np.asarray([c.share for c in CATEGORIES])
    l_cat = np.minimum(np.searchsorted(np.cumsum(share) / share.sum(), rng.random(len(l_session))), n_cat - 1)
    views.append(pd.DataFrame({"session": l_session, "product": _products_in(rng, products, l_cat)}))

    # Anonymous visitors.
    n_anon = round(ANONYMOUS_PER_ORDER * len(orders))
    lo_all = int(customers["created_at"].min()) if len(customers) else end_s - 86_400
    an_start = _uniform_time(rng, np.full(n_anon, lo_all), np.full(n_anon, end_s - 3600),
                             rng.choice([-6, -5, 0, 1], size=n_anon, p=[0.1, 0.1, 0.2, 0.6]))
    parts.append(pd.DataFrame({"kind": "anonymous", "customer_id": np.nan, "contact_id": None,
                               "started_at": an_start, "must_end": an_start}))
    k = 1 + rng.poisson(1.0, size=n_anon)
    an_session = np.repeat(np.arange(n_anon), k)
    pop = products["popularity"].to_numpy(float)
    views.append(pd.DataFrame({"session": an_session,
                               "product": rng.choice(len(products), size=len(an_session), p=pop / pop.sum())}))

    # Stack the parts, numbering sessions globally; plain arrays from here on keep 1M customers in memory.
    base = np.cumsum([0] + [len(p) for p in parts[:-1]])
    sessions = pd.concat(parts, ignore_index=True)
    del parts
    vs = np.concatenate([v["session"].to_numpy() + b for v, b in zip(views, base)]).astype(np.int64)
    vp = np.concatenate([v["product"].to_numpy() for v in views]).astype(np.int32)
    del views
    n = len(sessions)
    n_views = np.bincount(vs, minlength=n)
    pages = sessions["pages"].to_numpy() if "pages" in sessions else np.full(n, np.nan)
    other_pages = 1 + rng.poisson(2.5, size=n)
    page_views = np.where(np.isnan(pages), n_views + other_pages, np.nan_to_num(pages)).astype(np.int64)
    page_views = np.maximum(page_views, n_views)
    started = sessions["started_at"].to_numpy().astype(np.int64)
    length = page_views * rng.integers(*SECONDS_PER_PAGE, size=n)
    ended = np.minimum(np.maximum(started + length, sessions["must_end"].to_numpy().astype(np.int64)), end_s - 1)
    started = np.minimum(started, ended)

    # Views spread over the session, numbered 1..k in time order.
    viewed = started[vs] + np.floor(rng.random(len(vs)) * (ended - started + 1)[vs]).astype(np.int64)
    order_v = np.lexsort((vp, viewed, vs))
    vs, vp, viewed = vs[order_v], vp[order_v], viewed[order_v]
    del order_v
    view_no = np.arange(len(vs)) - np.searchsorted(vs, vs, side="left") + 1

    # Session ids: random-looking and stable for a seed; sessions in time order.
    token = rng.integers(0, 2**62, size=n, dtype=np.int64)
    if len(np.unique(token)) != n:  # practically never; keep ids unique anyway
        token = token ^ np.arange(n, dtype=np.int64) << 40
    sid = pd.Series(token).map("{:016x}".format).to_numpy(dtype=object)
    order = np.lexsort((np.arange(n), started))
    out = pd.DataFrame({
        "session_id": sid[order],
        "customer_id": pd.array(sessions["customer_id"].to_numpy(dtype=float)[order], dtype="Float64").astype(
            "Int64"),
        "contact_id": sessions["contact_id"].to_numpy(dtype=object)[order],
        "started_at": started[order], "ended_at": ended[order], "page_views": page_views[order],
        "product_views": n_views[order], "kind": sessions["kind"].to_numpy()[order],
    })
    del sessions
    product_views = pd.DataFrame({
        "session_id": sid[vs], "view_no": view_no,
        "product_id": products["product_id"].to_numpy()[vp], "viewed_at": viewed,
    })
    return out, product_views
