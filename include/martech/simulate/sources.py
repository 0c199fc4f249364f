"""``generate_sources``: the shop database, the CRM export and the simulator's ground truth.

:func:`build_world` draws everything in memory (numpy/pandas, no database); :func:`generate_sources`
then (re)creates the ``shop`` tables, bulk-loads them with COPY, records the truth and writes the CRM
export. The same seed always produces the same rows and the same file bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from martech.simulate import people
from martech.simulate._common import Lazy, epoch_day, iso, load, money, rng_for, write_atomically
from martech.simulate.catalog import CATEGORIES, CATEGORY_NAMES, PARTNER_PAIRS, build_products
from martech.simulate.dirty import LABEL_COLUMNS, Written, plant_defects
from martech.simulate.leads import LEAD_FIRST_BY_COUNTRY, add_lead_activity
from martech.simulate.purchases import (
    DAY,
    DELETED_SHARE,
    History,
    build_items,
    coupons,
    order_status,
    sample_behaviour,
    sample_signups,
)
from martech.simulate.replenishment import sample_habits
from martech.simulate.web import build_sessions

LEAD_SHARE = 0.30  # extra CRM contacts per shop customer who never bought
CUSTOMER_PROFILE_EDITS = 0.25
CONTACT_EDITS = 0.20

CRM_COLUMNS: tuple[str, ...] = (
    "contact_id", "email", "first_name", "last_name", "birthday", "country", "timezone", "consent_status",
    "consent_updated_at", "lifecycle_status", "shop_customer_id", "created_at", "updated_at",
    "lead_source", "page_views", "email_opens", "form_submissions", "region", "language",
)
SHOP_TABLES: tuple[str, ...] = ("customers", "products", "orders", "order_items", "carts", "cart_items",
                                 "web_sessions", "product_views")

# Random stream ids: one per purpose (see rng_for).
_S_CATALOG, _S_PEOPLE, _S_SIGNUP, _S_BEHAVIOUR, _S_ORDERS, _S_ITEMS, _S_CRM, _S_EDITS, _S_LEADS, _S_CARTS = range(1, 11)
_S_WEB, _S_DEFECTS, _S_HABITS = 11, 12, 13
CONVERTED_CART_SHARE = 0.6  # orders placed through a tracked cart
ABANDONED_PER_ORDER = 0.35  # abandoned (or still open) carts per order
OPEN_CART_S = 3600  # a cart untouched for this long counts as abandoned


@dataclass(frozen=True)
class SourceSummary:
    """What :func:`generate_sources` produced."""

    as_of: dt.date
    seed: int
    years: float
    customers: int
    contacts: int
    leads: int
    products: int
    orders: int
    order_items: int
    alive_customers: int
    carts: int
    web_sessions: int
    product_views: int
    defects: int  # planted defects (natural ones — refunds, empty birthdays — are labelled too)
    files: tuple[str, ...]
    seconds: float = field(compare=False)  # wall-clock, so not part of equality

    @property
    def files_written(self) -> int:
        return len(self.files)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        per = self.orders / self.customers if self.customers else 0.0
        return [
            f"shop: {self.customers:,} customers, {self.products:,} products, {self.orders:,} orders "
            f"({per:.1f} per customer), {self.order_items:,} order lines, before {self.as_of}",
            f"web:  {self.carts:,} carts, {self.web_sessions:,} sessions, {self.product_views:,} product views",
            f"crm:  {self.contacts:,} contacts ({self.leads:,} leads) → "
            + ", ".join(Path(f).name for f in self.files),
            f"truth: {self.alive_customers:,} customers still buying at {self.as_of}; seed {self.seed}; "
            f"generated in {self.seconds:.1f}s",
        ]


@dataclass(frozen=True)
class World:
    """Every generated table as a DataFrame; times are unix seconds (``int64``, NaN where missing)."""

    as_of: dt.date
    seed: int
    years: float
    customers: pd.DataFrame
    products: pd.DataFrame
    orders: pd.DataFrame
    items: pd.DataFrame
    contacts: pd.DataFrame
    carts: pd.DataFrame = field(default_factory=pd.DataFrame)
    cart_items: pd.DataFrame = field(default_factory=pd.DataFrame)
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)
    product_views: pd.DataFrame = field(default_factory=pd.DataFrame)
    # Replenishment habits (empty unless build_world got replenishment > 0): customer_id, product_id,
    # unit_cycle_days, first_ts, purchases, stopped.
    habits: pd.DataFrame = field(default_factory=pd.DataFrame)


def _history(as_of: dt.date, years: float) -> History:
    n_days = max(round(years * 365.25), 1)
    return History(start_day=epoch_day(as_of) - n_days, n_days=n_days)


def _uniform_between(rng: np.random.Generator, lo: np.ndarray, hi: int | np.ndarray) -> np.ndarray:
    """Integer seconds in ``[lo, hi)`` (``lo`` itself when the interval is empty)."""
    lo = np.asarray(lo, dtype=np.int64)
    width = np.maximum(np.asarray(hi, dtype=np.int64) - lo, 1)
    return lo + np.floor(rng.random(len(lo)) * width).astype(np.int64)


def build_world(*, as_of: dt.date, customers: int = 20_000, seed: int = 42, years: float = 2.0,
                replenishment: float = 0.0) -> World:
    """Draw the whole simulated world in memory.

    ``replenishment``: share of the ordering customers who also re-buy one consumable product on a habit
    of their own (:mod:`martech.simulate.replenishment`); 0 leaves every other draw as it was.
    """
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    if not 0.0 <= replenishment <= 1.0:
        raise ValueError(f"replenishment must be a share between 0 and 1, got {replenishment}")
    history = _history(as_of, years)
    end_s = history.end_s
    products = build_products(rng_for(seed, _S_CATALOG), np.datetime64(history.start_s, "s"),
                              np.datetime64(end_s, "s"))

    # People first (customers and leads together, so e-mails are unique across both).
    n_leads = round(customers * LEAD_SHARE)
    n_people = customers + n_leads
    rng = rng_for(seed, _S_PEOPLE)
    folks = people.sample_people(rng, n_people)
    folks["email"] = people.make_emails(rng, folks["first_name"], folks["last_name"]).to_numpy()

    # Customers, numbered in signup order.
    rng = rng_for(seed, _S_SIGNUP)
    cust = folks.iloc[:customers].reset_index(drop=True)
    signup = sample_signups(rng, history, cust["utc_offset_h"].to_numpy())
    order = np.argsort(signup, kind="stable")
    cust = cust.iloc[order].reset_index(drop=True)
    cust["created_at"] = signup[order]
    cust.insert(0, "customer_id", np.arange(1, customers + 1, dtype=np.int64))
    shares = np.asarray([c.share for c in CATEGORIES])
    cust["primary_idx"] = people.pick(rng, customers, shares)
    cust["primary_category"] = np.asarray(CATEGORY_NAMES, dtype=object)[cust["primary_idx"].to_numpy()]

    behaviour = sample_behaviour(rng_for(seed, _S_BEHAVIOUR), history, cust["created_at"].to_numpy(),
                                 cust["utc_offset_h"].to_numpy())
    cust["purchase_rate"] = behaviour.purchase_rate
    cust["dropout_p"] = behaviour.dropout_p
    cust["alive"] = behaviour.alive

    # Orders.
    rng = rng_for(seed, _S_ORDERS)
    oc = behaviour.order_customer
    n_orders = len(oc)
    code, pct = coupons(rng, behaviour.order_ts, behaviour.first_order)
    status, o_updated = order_status(rng, behaviour.order_ts, end_s)
    country = cust["country"].to_numpy()[oc]
    orders = pd.DataFrame({
        "order_id": np.arange(1, n_orders + 1, dtype=np.int64),
        "customer_id": oc + 1,
        "order_ts": behaviour.order_ts,
        "status": status,
        "currency": pd.Series(country).map(people.CURRENCY).fillna("EUR").to_numpy(),
        "coupon_code": code,
        "updated_at": o_updated,
    })
    items = build_items(rng_for(seed, _S_ITEMS), cust["primary_idx"].to_numpy()[oc], products, pct)
    items.insert(0, "order_id", orders["order_id"].to_numpy()[items["order_idx"].to_numpy()])
    items["updated_at"] = behaviour.order_ts[items["order_idx"].to_numpy()]
    line_total = items["quantity"].to_numpy() * items["unit_price_cents"].to_numpy()
    orders["total_cents"] = np.bincount(items["order_idx"].to_numpy(), weights=line_total,
                                        minlength=n_orders).astype(np.int64)
    items = items.drop(columns=["order_idx"])
    habits = pd.DataFrame()
    if replenishment > 0:
        orders, items, habits = _add_habits(rng_for(seed, _S_HABITS), history, cust, products, orders, items,
                                            replenishment)
        oc = orders["customer_id"].to_numpy() - 1
    cust["orders"] = np.bincount(oc, minlength=customers)

    # Profile edits and a few erasures (GDPR): an erased customer buys no more.
    rng = rng_for(seed, _S_EDITS)
    created = cust["created_at"].to_numpy()
    updated = created.copy()
    edited = rng.random(customers) < CUSTOMER_PROFILE_EDITS
    updated[edited] = _uniform_between(rng, created[edited], end_s)
    last_activity = created.copy()
    np.maximum.at(last_activity, oc, orders["updated_at"].to_numpy())
    erase_at = last_activity + rng.integers(DAY, 90 * DAY, size=customers)
    # Only erasures that happened before the history ends count.
    erased = (rng.random(customers) < DELETED_SHARE) & (erase_at < end_s)
    deleted = np.where(erased, erase_at, np.nan)
    cust["deleted_at"] = deleted
    cust["updated_at"] = np.where(erased, np.maximum(updated, np.nan_to_num(deleted)), updated).astype(np.int64)
    cust.loc[erased, "alive"] = False

    contacts = _build_contacts(rng_for(seed, _S_CRM), folks.iloc[customers:].reset_index(drop=True), cust,
                               history, as_of)
    signup_by_customer = pd.Series(cust["created_at"].to_numpy(), index=cust["customer_id"].to_numpy())
    contacts = add_lead_activity(rng_for(seed, _S_LEADS), contacts,
                                 contacts["customer_id"].map(signup_by_customer))
    cust = cust.merge(contacts.loc[contacts["customer_id"].notna(), ["contact_id", "customer_id"]]
                      .astype({"customer_id": np.int64}), on="customer_id", how="left")
    carts, cart_items = _build_carts(rng_for(seed, _S_CARTS), cust, products, orders, items, history)
    sessions, views = build_sessions(rng_for(seed, _S_WEB), customers=cust, contacts=contacts, products=products,
                                     orders=orders, items=items, carts=carts, cart_items=cart_items, end_s=end_s)
    return World(as_of=as_of, seed=seed, years=years, customers=cust, products=products, orders=orders,
                 items=items, contacts=contacts, carts=carts, cart_items=cart_items, sessions=sessions,
                 product_views=views, habits=habits)


def _add_habits(rng: np.random.Generator, history: History, cust: pd.DataFrame, products: pd.DataFrame,
                orders: pd.DataFrame, items: pd.DataFrame,
                share: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The habits' purchases as one-line orders among the others, ids renumbered in time order."""
    first = orders.groupby("customer_id")["order_ts"].min()
    first_ts = first.reindex(cust["customer_id"].to_numpy()).to_numpy(dtype=float)
    habits = sample_habits(rng, history, share=share, primary_idx=cust["primary_idx"].to_numpy(),
                           first_order_ts=first_ts, utc_offset_h=cust["utc_offset_h"].to_numpy(),
                           products=products)
    h = habits.orders
    m = len(h)
    ts = h["order_ts"].to_numpy(dtype=np.int64)
    status, updated = order_status(rng, ts, history.end_s)
    price = products.set_index("product_id")["price_cents"].reindex(h["product_id"].to_numpy()).to_numpy()
    temp_ids = -np.arange(1, m + 1, dtype=np.int64)
    extra = pd.DataFrame({
        "order_id": temp_ids, "customer_id": h["customer_idx"].to_numpy() + 1, "order_ts": ts, "status": status,
        "currency": pd.Series(cust["country"].to_numpy()[h["customer_idx"].to_numpy()]).map(people.CURRENCY)
        .fillna("EUR").to_numpy(),
        "coupon_code": None, "updated_at": updated, "total_cents": h["quantity"].to_numpy() * price})
    both = pd.concat([orders, extra[orders.columns]], ignore_index=True)
    both = both.iloc[np.lexsort((both["customer_id"].to_numpy(), both["order_ts"].to_numpy()))].reset_index(drop=True)
    new_id = pd.Series(np.arange(1, len(both) + 1, dtype=np.int64), index=both["order_id"].to_numpy())
    both["order_id"] = new_id.to_numpy()
    extra_items = pd.DataFrame({"order_id": temp_ids, "line_no": 1, "product_id": h["product_id"].to_numpy(),
                                "quantity": h["quantity"].to_numpy(), "unit_price_cents": price, "updated_at": ts})
    lines = pd.concat([items, extra_items[items.columns]], ignore_index=True)
    lines["order_id"] = new_id.reindex(lines["order_id"].to_numpy()).to_numpy()
    lines = lines.sort_values(["order_id", "line_no"], ignore_index=True)
    truth = habits.truth.assign(customer_id=habits.truth["customer_idx"] + 1).drop(columns=["customer_idx"])
    return both, lines, truth


def _build_carts(rng: np.random.Generator, cust: pd.DataFrame, products: pd.DataFrame, orders: pd.DataFrame,
                 items: pd.DataFrame, history: History) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Carts: most orders went through one (converted), and many carts were left without an order."""
    n_orders = len(orders)
    conv = np.flatnonzero(rng.random(n_orders) < CONVERTED_CART_SHARE)
    o_ts = orders["order_ts"].to_numpy()[conv]
    conv_carts = pd.DataFrame({
        "customer_id": orders["customer_id"].to_numpy()[conv], "status": "converted",
        "order_id": orders["order_id"].to_numpy()[conv].astype(float),
        "currency": orders["currency"].to_numpy()[conv],
        "created_at": o_ts - rng.integers(300, 5400, size=len(conv)), "updated_at": o_ts})
    n_ab = round(n_orders * ABANDONED_PER_ORDER)
    who = rng.integers(0, len(cust), size=n_ab)
    signup = cust["created_at"].to_numpy()[who]
    created = signup + np.floor(rng.random(n_ab) * np.maximum(history.end_s - 3600 - signup, 1)).astype(np.int64)
    ab_carts = pd.DataFrame({
        "customer_id": cust["customer_id"].to_numpy()[who], "status": "abandoned", "order_id": np.nan,
        "currency": pd.Series(cust["country"].to_numpy()[who]).map(people.CURRENCY).fillna("EUR").to_numpy(),
        "created_at": created, "updated_at": np.minimum(created + rng.integers(60, 1800, size=n_ab),
                                                      history.end_s - 1)})
    # The shop calls a cart abandoned after an hour without activity; younger ones are still open.
    ab_carts.loc[ab_carts["updated_at"] >= history.end_s - OPEN_CART_S, "status"] = "open"
    carts = pd.concat([conv_carts, ab_carts], ignore_index=True)
    carts = carts.iloc[np.lexsort((carts["customer_id"].to_numpy(), carts["created_at"].to_numpy()))]
    carts = carts.reset_index(drop=True)
    carts.insert(0, "cart_id", np.arange(1, len(carts) + 1, dtype=np.int64))
    # Lines: a converted cart holds its order's lines; an abandoned one 1-3 products by popularity.
    by_order = pd.Series(carts["cart_id"].to_numpy(), index=carts["order_id"].to_numpy())
    conv_lines = items[items["order_id"].isin(carts["order_id"].dropna())]
    conv_items = pd.DataFrame({"cart_id": by_order.loc[conv_lines["order_id"].to_numpy()].to_numpy(),
                               "line_no": conv_lines["line_no"].to_numpy(),
                               "product_id": conv_lines["product_id"].to_numpy(),
                               "quantity": conv_lines["quantity"].to_numpy(),
                               "unit_price_cents": conv_lines["unit_price_cents"].to_numpy()})
    ab = carts[carts["status"] != "converted"]
    n_lines = rng.integers(1, 4, size=len(ab))
    owner = np.repeat(np.arange(len(ab)), n_lines)
    pop = products["popularity"].to_numpy(float)
    pick = rng.choice(len(products), size=len(owner), p=pop / pop.sum())
    line_no = np.concatenate([np.arange(1, k + 1) for k in n_lines]) if len(n_lines) else np.array([], int)
    ab_items = pd.DataFrame({"cart_id": ab["cart_id"].to_numpy()[owner], "line_no": line_no,
                             "product_id": products["product_id"].to_numpy()[pick],
                             "quantity": rng.integers(1, 3, size=len(owner)),
                             "unit_price_cents": products["price_cents"].to_numpy()[pick]})
    cart_items = pd.concat([conv_items, ab_items], ignore_index=True)
    updated = pd.Series(carts["updated_at"].to_numpy(), index=carts["cart_id"].to_numpy())
    cart_items["updated_at"] = updated.loc[cart_items["cart_id"].to_numpy()].to_numpy()
    cart_items = cart_items.sort_values(["cart_id", "line_no"], ignore_index=True)
    return carts, cart_items


def _build_contacts(rng: np.random.Generator, leads: pd.DataFrame, cust: pd.DataFrame, history: History,
                    as_of: dt.date) -> pd.DataFrame:
    """CRM contacts: one per customer plus the leads, ids in creation order."""
    end_s = history.end_s
    n_c, n_l = len(cust), len(leads)
    # Some customers were leads first: their contact predates the order.
    c_created = cust["created_at"].to_numpy().copy()
    lead_first = pd.Series(cust["country"].to_numpy()).map(LEAD_FIRST_BY_COUNTRY).to_numpy(dtype=float)
    earlier = rng.random(n_c) < lead_first
    c_created[earlier] -= rng.integers(DAY, 120 * DAY, size=int(earlier.sum()))
    l_created = sample_signups(rng, history, leads["utc_offset_h"].to_numpy())
    frame = pd.concat([
        pd.DataFrame({"customer_id": cust["customer_id"].to_numpy(), "first_name": cust["first_name"],
                      "last_name": cust["last_name"], "email": cust["email"], "country": cust["country"],
                      "timezone": cust["timezone"], "utc_offset_h": cust["utc_offset_h"],
                      "created_at": c_created, "converted_at": cust["created_at"].to_numpy(),
                      "lifecycle_status": "customer"}),
        pd.DataFrame({"customer_id": np.full(n_l, np.nan), "first_name": leads["first_name"],
                      "last_name": leads["last_name"], "email": leads["email"], "country": leads["country"],
                      "timezone": leads["timezone"], "utc_offset_h": leads["utc_offset_h"],
                      "created_at": l_created, "converted_at": l_created, "lifecycle_status": "lead"}),
    ], ignore_index=True)
    n = n_c + n_l
    frame["birthday"] = people.sample_birthdays(rng, n, as_of)
    consent = people.sample_consent(rng, n)
    frame["consent_status"] = consent
    created = frame["created_at"].to_numpy().astype(np.int64)
    at_signup = rng.random(n) < 0.6
    consent_at = np.where(at_signup, created, _uniform_between(rng, created, end_s)).astype(float)
    consent_at[consent == "unknown"] = np.nan  # never asked
    frame["consent_updated_at"] = consent_at
    updated = np.maximum(np.maximum(created, frame["converted_at"].to_numpy()), np.nan_to_num(consent_at))
    updated = updated.astype(np.int64)
    edited = rng.random(n) < CONTACT_EDITS
    updated[edited] = _uniform_between(rng, updated[edited], end_s)
    frame["updated_at"] = updated
    # Contact ids follow creation order, as a CRM's sequence would.
    frame = frame.sort_values(["created_at"], kind="stable").reset_index(drop=True)
    frame.insert(0, "contact_id", [f"C{i:07d}" for i in range(1, n + 1)])
    return frame.drop(columns=["converted_at"])


def crm_csv_bytes(contacts: pd.DataFrame) -> bytes:
    """The CRM export exactly as the contract describes it (UTF-8, header row, comma separated)."""
    return crm_frame(contacts).to_csv(index=False, lineterminator="\n").encode("utf-8")


def crm_frame(contacts: pd.DataFrame) -> pd.DataFrame:
    """The CRM export's fields as text, one row per contact ("" where empty)."""
    out = pd.DataFrame({
        "contact_id": contacts["contact_id"],
        "email": contacts["email"],
        "first_name": contacts["first_name"],
        "last_name": contacts["last_name"],
        "birthday": np.datetime_as_string(contacts["birthday"].to_numpy(dtype="datetime64[D]"), unit="D"),
        "country": contacts["country"],
        "timezone": contacts["timezone"],
        "consent_status": contacts["consent_status"],
        "consent_updated_at": iso(contacts["consent_updated_at"]),
        "lifecycle_status": contacts["lifecycle_status"],
        "shop_customer_id": contacts["customer_id"].map(lambda v: "" if pd.isna(v) else str(int(v))),
        "created_at": iso(contacts["created_at"]),
        "updated_at": iso(contacts["updated_at"]),
        "lead_source": contacts["lead_source"].fillna(""),
        **{c: contacts[c].map(lambda v: "" if v < 0 else str(int(v)))
           for c in ("page_views", "email_opens", "form_submissions")},
        **people.regions_and_languages(contacts["contact_id"], contacts["country"]),
    })
    out["birthday"] = out["birthday"].replace("NaT", "")
    assert tuple(out.columns) == CRM_COLUMNS
    return out


# -- database -------------------------------------------------------------------------------------------

def _shop_ddl(schema: str) -> dict[str, str]:
    return {
        "customers": f"""create table {schema}.customers (
            customer_id bigint not null, email text not null, first_name text, last_name text,
            country text, created_at timestamptz not null, updated_at timestamptz not null,
            deleted_at timestamptz)""",
        "products": f"""create table {schema}.products (
            product_id bigint not null, sku text not null, name text not null, category text not null,
            price numeric(10,2) not null, image_url text, created_at timestamptz not null,
            updated_at timestamptz not null)""",
        "orders": f"""create table {schema}.orders (
            order_id bigint not null, customer_id bigint not null, order_ts timestamptz not null,
            status text not null, currency text not null, total_amount text not null,
            coupon_code text, updated_at timestamptz not null)""",
        "order_items": f"""create table {schema}.order_items (
            order_id bigint not null, line_no int not null, product_id bigint not null,
            quantity int not null, unit_price numeric(10,2) not null, updated_at timestamptz not null)""",
        "carts": f"""create table {schema}.carts (
            cart_id bigint not null, customer_id bigint not null, status text not null, order_id bigint,
            currency text not null, created_at timestamptz not null, updated_at timestamptz not null)""",
        "cart_items": f"""create table {schema}.cart_items (
            cart_id bigint not null, line_no int not null, product_id bigint not null, quantity int not null,
            unit_price numeric(10,2) not null, updated_at timestamptz not null)""",
        "web_sessions": f"""create table {schema}.web_sessions (
            session_id text not null, customer_id bigint, contact_id text, started_at timestamptz not null,
            ended_at timestamptz not null, page_views int not null, product_views int not null,
            updated_at timestamptz not null)""",
        "product_views": f"""create table {schema}.product_views (
            session_id text not null, view_no int not null, product_id bigint not null,
            viewed_at timestamptz not null, updated_at timestamptz not null)""",
    }


_SHOP_KEYS = {"customers": "customer_id", "products": "product_id", "orders": "order_id",
              "order_items": "order_id, line_no", "carts": "cart_id", "cart_items": "cart_id, line_no",
              "web_sessions": "session_id", "product_views": "session_id, view_no"}

TRUTH_TABLES: tuple[str, ...] = ("customers", "contacts", "leads", "products", "copurchase_pairs", "runs",
                                 "campaign_effects", "response_orders", "response_days", "response_runs",
                                 "defects", "replenishment")


def truth_ddl(truth: str) -> dict[str, str]:
    """``create table if not exists`` statements for every ground-truth table."""
    return {
        "customers": f"""create table if not exists {truth}.customers (
            customer_id bigint primary key, contact_id text not null, purchase_rate double precision not null,
            dropout_p double precision not null, alive_at_as_of boolean not null,
            signup_at timestamptz not null, primary_category text not null, utc_offset_h int not null,
            orders int not null)""",
        "contacts": f"""create table if not exists {truth}.contacts (
            contact_id text primary key, customer_id bigint)""",
        "leads": f"""create table if not exists {truth}.leads (
            contact_id text primary key, propensity double precision not null, converted boolean not null,
            converted_at timestamptz, created_at timestamptz not null)""",
        "products": f"""create table if not exists {truth}.products (
            product_id bigint primary key, category text not null, popularity double precision not null,
            price_tier text not null)""",
        "copurchase_pairs": f"""create table if not exists {truth}.copurchase_pairs (
            category_a text not null, category_b text not null, primary key (category_a, category_b))""",
        "runs": f"""create table if not exists {truth}.runs (
            kind text not null, as_of date not null, seed bigint not null, params jsonb not null,
            counts jsonb not null, primary key (kind, as_of))""",
        "campaign_effects": f"""create table if not exists {truth}.campaign_effects (
            campaign_id text not null, run_id text not null, contact_id text not null, arm text not null,
            customer_id bigint, received boolean not null, opened boolean not null, clicked boolean not null,
            baseline_p double precision not null, treated_p double precision not null,
            expected_order_value double precision,
            primary key (campaign_id, run_id, contact_id))""",
        "response_orders": f"""create table if not exists {truth}.response_orders (
            order_id bigint primary key, send_date date not null, kind text not null,
            campaign_id text, contact_id text)""",
        "response_days": f"""create table if not exists {truth}.response_days (
            day date primary key, send_date date not null)""",
        "defects": f"""create table if not exists {truth}.defects (
            table_name text not null, row_key text, source_file text, line_no int, kind text not null,
            field text, original_value text, planted_value text, origin text not null, note text)""",
        "replenishment": f"""create table if not exists {truth}.replenishment (
            customer_id bigint not null, product_id bigint not null, unit_cycle_days double precision not null,
            first_purchase_at timestamptz not null, purchases int not null, stopped boolean not null,
            primary key (customer_id, product_id))""",
        "response_runs": f"""create table if not exists {truth}.response_runs (
            send_date date primary key, days int not null, seed bigint not null,
            first_order_id bigint not null, orders int not null)""",
    }


def _create_schema(conn: Connection, schema: str, comment: str, tables: dict[str, str]) -> None:
    """The schema with its comment, and each of its tables created afresh from its DDL."""
    conn.execute(sa.text(f"create schema if not exists {schema}"))
    conn.execute(sa.text(f"comment on schema {schema} is '{comment}'"))
    for table, ddl in tables.items():
        conn.execute(sa.text(f"drop table if exists {schema}.{table} cascade"))
        conn.execute(sa.text(ddl))


def _create_shop(conn: Connection, schema: str) -> None:
    _create_schema(conn, schema, "Simulated shop database written by martech simulate: the development source"
                   " the pipeline ingests, not a pipeline schema", _shop_ddl(schema))


def _index_shop(conn: Connection, schema: str) -> None:
    # Keys and indexes after the bulk load: building them once is much cheaper than maintaining them.
    for table, key in _SHOP_KEYS.items():
        if table in ("orders", "customers"):  # legacy tables without a key constraint: they hold copies
            conn.execute(sa.text(f"create index {table}__key on {schema}.{table} ({key})"))
        else:
            conn.execute(sa.text(f"alter table {schema}.{table} add primary key ({key})"))
        conn.execute(sa.text(f"create index {table}__updated_at on {schema}.{table} (updated_at, {key})"))
        conn.execute(sa.text(f"analyze {schema}.{table}"))


def _create_truth(conn: Connection, truth: str) -> None:
    _create_schema(conn, truth, "Simulator ground truth (planted defects, true parameters) for evaluations only,"
                   " not a pipeline schema", truth_ddl(truth))


def _load_world(conn: Connection, world: World, written: Written, schema: str, truth: str) -> None:
    p, k = world.products, world.contacts
    c, o, i = written.customers, written.orders, written.items
    load(conn, f"{schema}.customers",
         ("customer_id", "email", "first_name", "last_name", "country", "created_at", "updated_at",
          "deleted_at"),
         (c["customer_id"], c["email"], c["first_name"], c["last_name"], c["country"],
          Lazy(iso, c["created_at"]), Lazy(iso, c["updated_at"]), Lazy(iso, c["deleted_at"])))
    load(conn, f"{schema}.products",
         ("product_id", "sku", "name", "category", "price", "image_url", "created_at", "updated_at"),
         (p["product_id"], p["sku"], p["name"], p["category"], Lazy(money, p["price_cents"]), p["image_url"],
          Lazy(iso, p["created_at"]), Lazy(iso, p["updated_at"])))
    load(conn, f"{schema}.orders",
         ("order_id", "customer_id", "order_ts", "status", "currency", "total_amount", "coupon_code",
          "updated_at"),
         (o["order_id"], o["customer_id"], Lazy(iso, o["order_ts"]), o["status"], o["currency"],
          o["total_text"], o["coupon_code"], Lazy(iso, o["updated_at"])))
    load(conn, f"{schema}.order_items",
         ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
         (i["order_id"], i["line_no"], i["product_id"], i["quantity"], Lazy(money, i["unit_price_cents"]),
          Lazy(iso, i["updated_at"])))
    ca, ci = world.carts, written.cart_items
    load(conn, f"{schema}.carts", ("cart_id", "customer_id", "status", "order_id", "currency", "created_at",
                                   "updated_at"),
         (ca["cart_id"], ca["customer_id"], ca["status"], ca["order_id"].astype("Int64"), ca["currency"],
          Lazy(iso, ca["created_at"]), Lazy(iso, ca["updated_at"])))
    load(conn, f"{schema}.cart_items", ("cart_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
         (ci["cart_id"], ci["line_no"], ci["product_id"], ci["quantity"], Lazy(money, ci["unit_price_cents"]),
          Lazy(iso, ci["updated_at"])))
    ws, pv = world.sessions, world.product_views
    load(conn, f"{schema}.web_sessions", ("session_id", "customer_id", "contact_id", "started_at", "ended_at",
                                          "page_views", "product_views", "updated_at"),
         (ws["session_id"], ws["customer_id"], ws["contact_id"], Lazy(iso, ws["started_at"]),
          Lazy(iso, ws["ended_at"]), ws["page_views"], ws["product_views"], Lazy(iso, ws["ended_at"])))
    viewed = Lazy(iso, pv["viewed_at"])
    load(conn, f"{schema}.product_views", ("session_id", "view_no", "product_id", "viewed_at", "updated_at"),
         (pv["session_id"], pv["view_no"], pv["product_id"], viewed, viewed))
    _index_shop(conn, schema)

    c = world.customers
    load(conn, f"{truth}.customers",
         ("customer_id", "contact_id", "purchase_rate", "dropout_p", "alive_at_as_of", "signup_at",
          "primary_category", "utc_offset_h", "orders"),
         (c["customer_id"], c["contact_id"], c["purchase_rate"], c["dropout_p"], c["alive"],
          iso(c["created_at"]), c["primary_category"], c["utc_offset_h"], c["orders"]))
    load(conn, f"{truth}.contacts", ("contact_id", "customer_id"),
         (k["contact_id"], k["customer_id"].astype("Int64")))
    pool = k[k["in_lead_pool"]]
    load(conn, f"{truth}.leads", ("contact_id", "propensity", "converted", "converted_at", "created_at"),
         (pool["contact_id"], pool["propensity"], pool["converted"], iso(pool["converted_at"]),
          iso(pool["created_at"])))
    d = written.labels
    load(conn, f"{truth}.defects", LABEL_COLUMNS, [d[col] for col in LABEL_COLUMNS])
    load(conn, f"{truth}.products", ("product_id", "category", "popularity", "price_tier"),
         (p["product_id"], p["category"], p["popularity"], p["price_tier"]))
    r = world.habits
    if len(r):
        load(conn, f"{truth}.replenishment",
             ("customer_id", "product_id", "unit_cycle_days", "first_purchase_at", "purchases", "stopped"),
             (r["customer_id"], r["product_id"], r["unit_cycle_days"], iso(r["first_ts"]), r["purchases"],
              r["stopped"]))
    pairs = sorted(tuple(sorted(pair)) for pair in PARTNER_PAIRS)
    load(conn, f"{truth}.copurchase_pairs", ("category_a", "category_b"),
         ([a for a, _ in pairs], [b for _, b in pairs]))


def generate_sources(engine: Engine, landing_dir: Path, *, as_of: dt.date, customers: int = 20_000,
                     seed: int = 42, years: float = 2.0, schema: str = "shop",
                     truth_schema: str = "sim_truth", defect_rate: float = 0.0,
                     replenishment: float = 0.0) -> SourceSummary:
    """(Re)create the shop tables and ground truth, and write the CRM export for ``as_of``.

    All times fall before ``as_of`` 00:00 UTC (except planted future timestamps). ``defect_rate`` is the
    share of rows per source table carrying a planted defect (:mod:`martech.simulate.dirty`), each
    labelled in ``sim_truth.defects``. ``replenishment`` is the share of ordering customers with a
    consumable habit (``sim_truth.replenishment``); at 0 (the default) nothing else changes. Repeatable:
    existing tables are dropped first, and the same arguments give identical rows and file bytes.
    """
    t0 = time.perf_counter()
    world = build_world(as_of=as_of, customers=customers, seed=seed, years=years, replenishment=replenishment)
    csv_path = Path(landing_dir) / "crm" / f"contacts_{as_of:%Y%m%d}.csv"
    written = plant_defects(world, rate=defect_rate, rng=rng_for(seed, _S_DEFECTS), crm_file=csv_path.name,
                            crm_frame=crm_frame)
    leads = int((world.contacts["lifecycle_status"] == "lead").sum())
    counts = {"customers": len(world.customers), "contacts": len(world.contacts), "leads": leads,
              "products": len(world.products), "orders": len(world.orders),
              "order_items": len(world.items), "alive_customers": int(world.customers["alive"].sum()),
              "carts": len(world.carts), "web_sessions": len(world.sessions),
              "product_views": len(world.product_views),
              "defects": int((written.labels["origin"] == "planted").sum())}
    with engine.begin() as conn:
        # One simulator at a time: a second caller waits rather than interleaving DROPs and COPYs.
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext('martech.simulate'))"))
        _create_shop(conn, schema)
        _create_truth(conn, truth_schema)
        _load_world(conn, world, written, schema, truth_schema)
        conn.execute(sa.text(f"insert into {truth_schema}.runs (kind, as_of, seed, params, counts) "
                             "values ('sources', :as_of, :seed, cast(:params as jsonb), cast(:counts as jsonb))"),
                     {"as_of": as_of, "seed": seed, "counts": json.dumps(counts, sort_keys=True),
                      "params": json.dumps({"customers": customers, "years": years, "schema": schema,
                                           "defect_rate": defect_rate,
                                           **({"replenishment": replenishment} if replenishment else {})},
                                          sort_keys=True)})
    write_atomically(csv_path, written.crm_bytes)
    return SourceSummary(as_of=as_of, seed=seed, years=years, files=(str(csv_path),),
                         seconds=time.perf_counter() - t0, **counts)
