"""The simulator's web sessions and product views: consistent with orders, carts, leads and preferences."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from martech.simulate.catalog import CATEGORIES
from martech.simulate.sources import build_world

AS_OF = dt.date(2026, 6, 1)
END_S = int(pd.Timestamp(AS_OF).timestamp())


@pytest.fixture(scope="module")
def world():
    return build_world(as_of=AS_OF, customers=1200, seed=21)


def test_sessions_are_well_formed(world) -> None:
    s, v = world.sessions, world.product_views
    assert s["session_id"].is_unique and not v.duplicated(["session_id", "view_no"]).any()
    assert (s["started_at"] <= s["ended_at"]).all() and (s["ended_at"] < END_S).all()
    assert (s["page_views"] >= s["product_views"]).all() and (s["page_views"] >= 1).all()
    m = v.merge(s, on="session_id", validate="many_to_one")
    assert len(m) == len(v)
    assert ((m["viewed_at"] >= m["started_at"]) & (m["viewed_at"] <= m["ended_at"])).all()
    counts = v.groupby("session_id").size().reindex(s["session_id"], fill_value=0).to_numpy()
    np.testing.assert_array_equal(counts, s["product_views"].to_numpy())
    # Views are numbered 1..k in time order within each session.
    v_sorted = v.sort_values(["session_id", "view_no"])
    assert (v_sorted.groupby("session_id")["viewed_at"].diff().dropna() >= 0).all()
    assert set(s["kind"]) == {"buying", "cart", "browsing", "lead", "anonymous"}
    # Identity: customers are logged in, leads are known by contact only, anonymous visitors by neither.
    lead = s["kind"] == "lead"
    assert s.loc[lead, "customer_id"].isna().all() and s.loc[lead, "contact_id"].notna().all()
    assert s.loc[~lead, "contact_id"].isna().all()
    anon = s["kind"] == "anonymous"
    assert s.loc[anon, "customer_id"].isna().all() and s.loc[~anon & ~lead, "customer_id"].notna().all()


def test_every_order_has_a_session_that_viewed_what_was_bought(world) -> None:
    s, v, o, i = world.sessions, world.product_views, world.orders, world.items
    buying = s[s["kind"] == "buying"]
    assert len(buying) == len(o)
    # Each order's bought products were viewed, before the order, in a session of its customer.
    seen = v.merge(s[["session_id", "customer_id", "started_at", "ended_at"]], on="session_id")
    lines = i.merge(o[["order_id", "customer_id", "order_ts"]], on="order_id")
    hit = lines.merge(seen, on=["customer_id", "product_id"])
    hit = hit[(hit["started_at"] <= hit["order_ts"]) & (hit["ended_at"] >= hit["order_ts"])]
    assert hit[["order_id", "line_no"]].drop_duplicates().shape[0] == len(lines)


def test_abandoned_cart_products_were_viewed_by_the_cart_owner(world) -> None:
    carts, ci, s, v = world.carts, world.cart_items, world.sessions, world.product_views
    ab = carts[carts["status"] != "converted"]
    lines = ci[ci["cart_id"].isin(ab["cart_id"])].merge(ab[["cart_id", "customer_id", "created_at"]], on="cart_id")
    seen = v.merge(s[s["kind"] == "cart"][["session_id", "customer_id", "started_at"]], on="session_id")
    hit = lines.merge(seen, on=["customer_id", "product_id"])
    hit = hit[hit["started_at"] <= hit["created_at"]]
    assert hit[["cart_id", "line_no"]].drop_duplicates().shape[0] == len(lines)


def test_lead_sessions_add_up_to_the_crm_page_views(world) -> None:
    c, s = world.contacts, world.sessions
    per_lead = s[s["kind"] == "lead"].groupby("contact_id")["page_views"].sum()
    expected = c.loc[c["page_views"] > 0].set_index("contact_id")["page_views"]
    pd.testing.assert_series_equal(per_lead.sort_index(), expected.sort_index().astype(per_lead.dtype),
                                   check_names=False)
    # A converted lead browsed before it became a customer.
    first = s[s["kind"] == "lead"].groupby("contact_id")["started_at"].min()
    conv = c[c["converted"] & (c["page_views"] > 0)].set_index("contact_id")["converted_at"]
    assert len(conv) > 20 and (first.loc[conv.index] < conv).all()


def test_browsing_follows_category_preferences(world) -> None:
    s, v, cust, p = world.sessions, world.product_views, world.customers, world.products
    m = (v.merge(s[s["kind"] == "browsing"][["session_id", "customer_id"]], on="session_id")
         .merge(cust[["customer_id", "primary_category"]], on="customer_id")
         .merge(p[["product_id", "category"]], on="product_id"))
    own = (m["category"] == m["primary_category"]).mean()
    # Without preferences a view would hit the customer's main category at about the population mix.
    base = sum(c.share ** 2 for c in CATEGORIES) / sum(c.share for c in CATEGORIES) ** 2
    assert own > 0.4 > 2 * base


def test_same_seed_same_sessions() -> None:
    a = build_world(as_of=AS_OF, customers=300, seed=5)
    b = build_world(as_of=AS_OF, customers=300, seed=5)
    pd.testing.assert_frame_equal(a.sessions, b.sessions)
    pd.testing.assert_frame_equal(a.product_views, b.product_views)
