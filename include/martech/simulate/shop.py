"""Shop history and CRM export: a heterogeneous repeat-purchase process (BG/NBD-like), seasonality,
a catalog with categories, price tiers and planted co-purchase pairs."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from martech.db import copy_rows
from martech.ingest import CRM_CONTACT_COLUMNS

UTC = dt.timezone.utc
DAY = 86_400

CATEGORIES = ("Coffee", "Tea", "Brewing Gear", "Mugs & Cups", "Snacks", "Gift Sets", "Accessories",
              "Subscriptions")
# Planted structure: a buyer of the key category is much more likely to also buy the partner.
PARTNERS = {"Coffee": "Brewing Gear", "Tea": "Mugs & Cups", "Brewing Gear": "Coffee", "Mugs & Cups": "Tea",
            "Snacks": "Coffee", "Gift Sets": "Snacks", "Accessories": "Brewing Gear",
            "Subscriptions": "Coffee"}
PRICE_TIERS = {"Coffee": (8, 25), "Tea": (5, 18), "Brewing Gear": (25, 160), "Mugs & Cups": (9, 30),
               "Snacks": (3, 12), "Gift Sets": (30, 90), "Accessories": (6, 40), "Subscriptions": (20, 45)}
PRODUCTS_PER_CATEGORY = 25

COUNTRIES = {  # country: (weight, currency, timezones, first names, last names)
    "DE": (0.22, "EUR", ["Europe/Berlin"], ["Lena", "Jonas", "Mia", "Felix", "Anna", "Lukas", "Lea", "Paul"],
           ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker"]),
    "FR": (0.14, "EUR", ["Europe/Paris"], ["Camille", "Louis", "Chloé", "Hugo", "Léa", "Jules"],
           ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Petit"]),
    "GB": (0.14, "GBP", ["Europe/London"], ["Olivia", "Oliver", "Amelia", "George", "Isla", "Harry"],
           ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson"]),
    "US": (0.18, "USD", ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"],
           ["Emma", "Liam", "Ava", "Noah", "Sophia", "Ethan"], ["Johnson", "Miller", "Davis", "Garcia"]),
    "NL": (0.07, "EUR", ["Europe/Amsterdam"], ["Sanne", "Daan", "Fleur", "Bram"], ["de Jong", "Jansen", "Visser"]),
    "ES": (0.07, "EUR", ["Europe/Madrid"], ["Lucía", "Hugo", "Martina", "Pablo"], ["García", "López", "Martínez"]),
    "IT": (0.07, "EUR", ["Europe/Rome"], ["Giulia", "Leonardo", "Sofia", "Francesco"], ["Rossi", "Russo", "Bianchi"]),
    "SE": (0.04, "EUR", ["Europe/Stockholm"], ["Alice", "William", "Maja", "Hugo"], ["Andersson", "Johansson"]),
    "AT": (0.04, "EUR", ["Europe/Vienna"], ["Anna", "Maximilian", "Laura", "Tobias"], ["Gruber", "Huber", "Bauer"]),
    "PL": (0.03, "EUR", ["Europe/Warsaw"], ["Zuzanna", "Jakub", "Julia", "Antoni"], ["Nowak", "Kowalski"]),
}
DOMAINS = ("example.com", "example.org", "example.net")
CONSENT = (("opted_in", 0.55), ("double_opt_in", 0.15), ("opted_out", 0.20), ("unknown", 0.10))


@dataclass(frozen=True)
class SourceSummary:
    as_of: dt.date
    customers: int
    contacts: int
    leads: int
    products: int
    orders: int
    order_items: int
    crm_file: str

    def lines(self) -> list[str]:
        return [f"shop: {self.customers:,} customers, {self.products} products, {self.orders:,} orders, "
                f"{self.order_items:,} order lines (history to {self.as_of})",
                f"crm: {self.contacts:,} contacts ({self.leads:,} leads) in {self.crm_file}"]


def _season(ts: np.ndarray) -> np.ndarray:
    """Relative purchase intensity: a December peak and quieter weekends-to-Monday."""
    days = ts / DAY
    doy = (days % 365.25) / 365.25
    dow = (np.floor(days) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    yearly = 1 + 0.35 * np.exp(-((doy - 0.95) ** 2) / 0.002)
    weekly = np.where(dow >= 5, 1.1, 1.0)
    return yearly * weekly / 1.45


def purchase_times(rng: np.random.Generator, start: np.ndarray, end: float, rate: np.ndarray,
                   dropout: np.ndarray, first_gap_days: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's order times (seconds): first order soon after signup, then a Poisson process
    thinned by seasonality, ending when the customer drops out after a purchase. Returns
    (customer index per order, order time), and marks drop-outs through the returned order count."""
    n = len(start)
    t = start + rng.exponential(first_gap_days * DAY, n)
    alive = t < end
    owners, times = [np.flatnonzero(alive)], [t[alive]]
    active = alive & (rng.random(n) >= dropout)
    while active.any():
        idx = np.flatnonzero(active)
        gap = rng.exponential(1.0 / rate[idx]) * DAY
        t[idx] = t[idx] + gap
        in_range = t[idx] < end
        keep = in_range & (rng.random(len(idx)) < _season(t[idx]))
        owners.append(idx[keep])
        times.append(t[idx][keep])
        still = in_range & (rng.random(len(idx)) >= np.where(keep, dropout[idx], 0.0))
        active[:] = False
        active[idx[still]] = True
    return np.concatenate(owners), np.concatenate(times)


def _create_tables(engine: Engine, schema: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
        conn.execute(sa.text("drop schema if exists sim_truth cascade"))
        conn.execute(sa.text(f"create schema {schema}"))
        conn.execute(sa.text("create schema sim_truth"))
        for ddl in (
            f"create table {schema}.customers (customer_id bigint primary key, email text, first_name text,"
            " last_name text, country text, created_at timestamptz, updated_at timestamptz, deleted_at timestamptz)",
            f"create table {schema}.products (product_id bigint primary key, sku text, name text, category text,"
            " price numeric(10, 2), image_url text, created_at timestamptz, updated_at timestamptz)",
            f"create table {schema}.orders (order_id bigint primary key, customer_id bigint, order_ts timestamptz,"
            " status text, currency text, total_amount numeric(12, 2), coupon_code text, updated_at timestamptz)",
            f"create table {schema}.order_items (order_id bigint, line_no int, product_id bigint, quantity int,"
            " unit_price numeric(10, 2), updated_at timestamptz, primary key (order_id, line_no))",
            "create table sim_truth.customers (customer_id bigint primary key, contact_id text, purchase_rate"
            " double precision, dropout_p double precision, favourite_category text, alive_at_as_of boolean,"
            " signup_at timestamptz)",
            "create table sim_truth.contacts (contact_id text primary key, customer_id bigint)",
            "create table sim_truth.copurchase_pairs (category text, partner text)",
            "create table sim_truth.runs (as_of date, seed int, customers int, generated text)",
            "create table sim_truth.generated_orders (send_date date, order_id bigint)",
            "create table sim_truth.campaign_effects (campaign_id text, run_id text, contact_id text, arm text,"
            " baseline_p double precision, treated_p double precision)",
        ):
            conn.execute(sa.text(ddl))


def _iso(seconds: np.ndarray) -> list[str]:
    return [dt.datetime.fromtimestamp(float(s), UTC).isoformat(timespec="seconds") for s in seconds]


def make_order_lines(rng: np.random.Generator, fav: np.ndarray, order_owner: np.ndarray,
                     product_ids: np.ndarray, product_cat: np.ndarray, prices: np.ndarray):
    """1-4 lines per order: mostly the customer's favourite category, often its planted partner."""
    n_orders = len(order_owner)
    n_lines = rng.choice([1, 2, 3, 4], size=n_orders, p=[0.45, 0.32, 0.15, 0.08])
    line_order = np.repeat(np.arange(n_orders), n_lines)
    line_no = np.arange(len(line_order)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines) + 1
    cat_idx = fav[order_owner][line_order]
    partner_idx = np.array([CATEGORIES.index(PARTNERS[c]) for c in CATEGORIES])[cat_idx]
    u = rng.random(len(line_order))
    chosen_cat = np.where(u < 0.55, cat_idx, np.where(u < 0.85, partner_idx,
                                                       rng.integers(0, len(CATEGORIES), len(line_order))))
    within = rng.integers(0, PRODUCTS_PER_CATEGORY, len(line_order))
    prod_index = chosen_cat * PRODUCTS_PER_CATEGORY + within
    qty = rng.choice([1, 1, 1, 2, 2, 3], size=len(line_order))
    discount = np.where(rng.random(len(line_order)) < 0.1, 0.9, 1.0)
    unit = np.round(prices[prod_index] * discount, 2)
    return line_order, line_no, product_ids[prod_index], qty, unit


def generate_sources(engine: Engine, landing_dir: Path, *, as_of: dt.date, customers: int = 20_000,
                     seed: int = 42, years: float = 2.0, schema: str = "shop") -> SourceSummary:
    """(Re)create the shop tables and write the CRM export for ``as_of``; deterministic per seed."""
    rng = np.random.default_rng(seed)
    end = dt.datetime.combine(as_of, dt.time(0), UTC).timestamp()
    start = end - years * 365.25 * DAY
    _create_tables(engine, schema)

    # Catalog.
    cats = np.repeat(np.arange(len(CATEGORIES)), PRODUCTS_PER_CATEGORY)
    lo = np.array([PRICE_TIERS[c][0] for c in CATEGORIES])[cats]
    hi = np.array([PRICE_TIERS[c][1] for c in CATEGORIES])[cats]
    prices = np.round(lo + (hi - lo) * rng.beta(1.5, 2.5, len(cats)), 2)
    product_ids = np.arange(1, len(cats) + 1)
    catalog_ts = dt.datetime.fromtimestamp(start - 30 * DAY, UTC).isoformat()

    # Customers and their latent purchase process.
    n = customers
    country_codes = list(COUNTRIES)
    weights = np.array([COUNTRIES[c][0] for c in country_codes])
    country = rng.choice(len(country_codes), size=n, p=weights / weights.sum())
    signup = np.sort(rng.uniform(start, end - DAY, n))
    rate = rng.gamma(shape=0.9, scale=0.038, size=n) + 0.001   # purchases per day while alive
    dropout = rng.beta(1.0, 12.0, size=n)
    fav = rng.choice(len(CATEGORIES), size=n, p=[0.26, 0.14, 0.12, 0.1, 0.1, 0.08, 0.1, 0.1])
    owner, order_t = purchase_times(rng, signup, end, rate, dropout)
    order_sort = np.lexsort((owner, order_t))
    owner, order_t = owner[order_sort], order_t[order_sort]
    n_orders = len(owner)
    # Alive at as_of: no drop-out after the last purchase, simulated independently here.
    alive = rng.random(n) >= dropout

    line_order, line_no, line_product, qty, unit = make_order_lines(rng, fav, owner, product_ids,
                                                                    cats, prices)
    totals = np.bincount(line_order, weights=qty * unit, minlength=n_orders)
    status = rng.choice(["completed", "refunded", "cancelled"], size=n_orders, p=[0.96, 0.03, 0.01])
    currency = np.array([COUNTRIES[c][1] for c in country_codes])[country[owner]]

    first = np.array([rng.choice(COUNTRIES[c][3]) for c in np.array(country_codes)[country]])
    last = np.array([rng.choice(COUNTRIES[c][4]) for c in np.array(country_codes)[country]])
    customer_ids = np.arange(1, n + 1)
    emails = [f"{_ascii(f)}.{_ascii(la)}{i}@{DOMAINS[i % 3]}" for i, f, la in zip(customer_ids, first, last)]
    signup_iso = _iso(signup)

    with engine.begin() as conn:
        copy_rows(conn, f"{schema}.products",
                  ("product_id", "sku", "name", "category", "price", "image_url", "created_at", "updated_at"),
                  [(int(pid), f"SKU-{pid:05d}", f"{CATEGORIES[c]} #{(pid - 1) % PRODUCTS_PER_CATEGORY + 1}",
                    CATEGORIES[c], f"{p:.2f}", f"https://shop.example/img/SKU-{pid:05d}.jpg", catalog_ts,
                    catalog_ts) for pid, c, p in zip(product_ids, cats, prices)])
        copy_rows(conn, f"{schema}.customers",
                  ("customer_id", "email", "first_name", "last_name", "country", "created_at", "updated_at",
                   "deleted_at"),
                  [(int(i), e, f, la, country_codes[c], s, s, None)
                   for i, e, f, la, c, s in zip(customer_ids, emails, first, last, country, signup_iso)])
        order_iso = _iso(order_t)
        copy_rows(conn, f"{schema}.orders",
                  ("order_id", "customer_id", "order_ts", "status", "currency", "total_amount", "coupon_code",
                   "updated_at"),
                  [(k + 1, int(owner[k]) + 1, order_iso[k], status[k], currency[k], f"{totals[k]:.2f}", None,
                    order_iso[k]) for k in range(n_orders)])
        copy_rows(conn, f"{schema}.order_items",
                  ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
                  [(int(o) + 1, int(ln), int(p), int(q), f"{u:.2f}", order_iso[o])
                   for o, ln, p, q, u in zip(line_order, line_no, line_product, qty, unit)])
        copy_rows(conn, "sim_truth.customers",
                  ("customer_id", "contact_id", "purchase_rate", "dropout_p", "favourite_category",
                   "alive_at_as_of", "signup_at"),
                  [(int(i), f"C{i:07d}", float(r), float(d), CATEGORIES[f_], bool(a), s)
                   for i, r, d, f_, a, s in zip(customer_ids, rate, dropout, fav, alive, signup_iso)])
        copy_rows(conn, "sim_truth.copurchase_pairs", ("category", "partner"), list(PARTNERS.items()))
        conn.execute(sa.text("insert into sim_truth.runs values (:a, :s, :n, 'generate_sources')"),
                     {"a": as_of, "s": seed, "n": n})

    # CRM export: every customer plus ~30% leads who never bought.
    n_leads = round(n * 0.3)
    lead_country = rng.choice(len(country_codes), size=n_leads, p=weights / weights.sum())
    all_country = np.concatenate([country, lead_country])
    total = n + n_leads
    consent = rng.choice([c for c, _ in CONSENT], size=total, p=[w for _, w in CONSENT])
    birth = _birthdays(rng, total, as_of)
    created = np.concatenate([signup, np.sort(rng.uniform(start, end - DAY, n_leads))])
    crm_dir = landing_dir / "crm"
    crm_dir.mkdir(parents=True, exist_ok=True)
    path = crm_dir / f"contacts_{as_of:%Y%m%d}.csv"
    lead_first = [rng.choice(COUNTRIES[country_codes[c]][3]) for c in lead_country]
    lead_last = [rng.choice(COUNTRIES[country_codes[c]][4]) for c in lead_country]
    created_iso = _iso(created)
    with path.open("w", newline="", encoding="utf-8") as fh, engine.begin() as conn:
        w = csv.writer(fh)
        w.writerow(CRM_CONTACT_COLUMNS)
        truth = []
        for k in range(total):
            c = country_codes[all_country[k]]
            tz = COUNTRIES[c][2][k % len(COUNTRIES[c][2])]
            if k < n:
                cid, email, fn, ln, shop_id, life = (f"C{k + 1:07d}", emails[k], first[k], last[k], str(k + 1),
                                                     "customer")
            else:
                j = k - n
                cid = f"L{j + 1:07d}"
                fn, ln = lead_first[j], lead_last[j]
                email = f"{_ascii(fn)}.{_ascii(ln)}.lead{j + 1}@{DOMAINS[j % 3]}"
                shop_id, life = "", "lead"
            w.writerow([cid, email, fn, ln, birth[k], c, tz, consent[k], created_iso[k], life, shop_id,
                        created_iso[k], created_iso[k]])
            truth.append((cid, int(shop_id) if shop_id else None))
        copy_rows(conn, "sim_truth.contacts", ("contact_id", "customer_id"), truth)
    return SourceSummary(as_of=as_of, customers=n, contacts=total, leads=n_leads, products=len(product_ids),
                         orders=n_orders, order_items=len(line_order), crm_file=str(path))


def _ascii(name: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower().replace(" ", "")


def _birthdays(rng: np.random.Generator, n: int, as_of: dt.date) -> list[str]:
    """~90% known, ages 18-80; leap-day births occur at their natural rate (about 1 in 1461)."""
    base = dt.date(as_of.year - 80, 1, 1).toordinal()
    span = dt.date(as_of.year - 18, 1, 1).toordinal() - base
    days = rng.integers(0, span, n)
    known = rng.random(n) < 0.9
    return [dt.date.fromordinal(base + int(d)).isoformat() if k else "" for d, k in zip(days, known)]
