"""The product catalog and the planted co-purchase structure.

Each category has one or two partner categories (:data:`PARTNER_PAIRS`). Baskets and customers'
category preferences favour partners, so an affinity model should rediscover exactly these pairs;
they are written to ``sim_truth.copurchase_pairs`` for tests and benchmarks to check against. The
categories themselves (names, SKU prefixes, shares, product names and prices) are data: ``catalog.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Category:
    """How one category's products are named and priced."""

    name: str
    sku_prefix: str
    share: float  # how likely it is a customer's main interest
    heads: tuple[str, ...]
    tails: tuple[tuple[str, float], ...]  # (suffix, price multiplier)
    base_prices: tuple[float, ...]
    consumable: bool  # bought in larger quantities


CATALOG_FILE = Path(__file__).with_name("catalog.json")


def _read_categories(path: Path = CATALOG_FILE) -> tuple[Category, ...]:
    """The categories of ``catalog.json``, in file order (the order fixes every seeded draw)."""
    rows = json.loads(path.read_text(encoding="utf-8"))["categories"]
    return tuple(Category(r["name"], r["sku_prefix"], float(r["share"]), tuple(r["heads"]),
                          tuple((str(t[0]), float(t[1])) for t in r["tails"]),
                          tuple(float(p) for p in r["base_prices"]), bool(r["consumable"])) for r in rows)


CATEGORIES: tuple[Category, ...] = _read_categories()
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)

# The planted structure: every category has one or two partners.
PARTNER_PAIRS: tuple[tuple[str, str], ...] = (
    ("Coffee", "Brewing Gear"),
    ("Coffee", "Subscriptions"),
    ("Tea", "Mugs & Cups"),
    ("Tea", "Snacks"),
    ("Brewing Gear", "Accessories"),
    ("Mugs & Cups", "Gift Sets"),
    ("Snacks", "Gift Sets"),
)

IMAGE_URL = "https://shop.example/img/{sku}.jpg"
PRODUCTS_PER_CATEGORY = (22, 29)  # drawn per category, upper bound exclusive


def partner_matrix() -> np.ndarray:
    """Symmetric 0/1 matrix over :data:`CATEGORY_NAMES`: 1 where two categories are partners."""
    idx = {name: i for i, name in enumerate(CATEGORY_NAMES)}
    m = np.zeros((len(CATEGORIES), len(CATEGORIES)))
    for a, b in PARTNER_PAIRS:
        m[idx[a], idx[b]] = m[idx[b], idx[a]] = 1.0
    return m


def preference_matrix() -> np.ndarray:
    """Row ``c``: category probabilities for a customer whose main interest is category ``c``.

    Mostly their main category, a good share for its partners, a little of everything else, so a
    customer's later orders drift into partner categories.
    """
    share = np.asarray([c.share for c in CATEGORIES])
    partners = partner_matrix()
    rows = 0.20 * share[None, :] + 0.50 * np.eye(len(CATEGORIES))
    rows = rows + 0.30 * partners / partners.sum(axis=1, keepdims=True)
    return rows / rows.sum(axis=1, keepdims=True)


PRICE_TIERS = ("budget", "standard", "premium")


def price_tiers(price: np.ndarray) -> np.ndarray:
    """Tier of each price within its category: the cheapest third, the middle, the dearest third."""
    lo, hi = np.quantile(price, [1 / 3, 2 / 3])
    return np.asarray(PRICE_TIERS, dtype=object)[(price > lo).astype(int) + (price > hi).astype(int)]


def build_products(rng: np.random.Generator, created_before: np.datetime64,
                   as_of: np.datetime64) -> pd.DataFrame:
    """The catalog: ids, sku, name, category, price, popularity within its category, timestamps.

    ``created_before`` is the start of the order history (every product exists before its first
    order); a few products get a later price-list update (``updated_at``) before ``as_of``.
    """
    frames = []
    for ci, cat in enumerate(CATEGORIES):
        combos = [(h, t, m) for h in cat.heads for t, m in cat.tails]
        k = min(len(combos), int(rng.integers(*PRODUCTS_PER_CATEGORY)))
        chosen = rng.permutation(len(combos))[:k]
        base = np.asarray(cat.base_prices)[rng.integers(0, len(cat.base_prices), size=k)]
        mult = np.asarray([combos[i][2] for i in chosen])
        # Shop prices end in .90 (or .00 above 40), whatever the multiplier did to them.
        raw = base * mult
        price = np.where(raw >= 40, np.round(raw), np.floor(raw) + 0.9)
        rank = rng.permutation(k)
        popularity = (1.0 / (rank + 1.0) ** 0.8) * (np.median(price) / price) ** 0.3
        frames.append(pd.DataFrame({
            "category_idx": ci,
            "category": cat.name,
            "name": [f"{combos[i][0]} – {combos[i][1]}" for i in chosen],
            "price": price,
            "price_tier": price_tiers(price),
            "popularity": popularity / popularity.sum(),
            "sku_no": np.arange(1, k + 1),
            "sku_prefix": cat.sku_prefix,
        }))
    products = pd.concat(frames, ignore_index=True)
    n = len(products)
    products.insert(0, "product_id", np.arange(1, n + 1, dtype=np.int64))
    products["sku"] = products["sku_prefix"] + "-" + products["sku_no"].map("{:04d}".format)
    products["image_url"] = products["sku"].map(lambda s: IMAGE_URL.format(sku=s))
    products["price_cents"] = np.round(products["price"].to_numpy() * 100).astype(np.int64)
    start_s = created_before.astype("datetime64[s]").astype(np.int64)
    end_s = as_of.astype("datetime64[s]").astype(np.int64)
    created = start_s - rng.integers(86_400, 400 * 86_400, size=n)
    updated = created.copy()
    touched = rng.random(n) < 0.15
    updated[touched] = rng.integers(start_s, end_s, size=int(touched.sum()))
    products["created_at"] = created
    products["updated_at"] = updated
    return products.drop(columns=["sku_no", "sku_prefix"])
