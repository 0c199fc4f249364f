"""The product catalog and the planted co-purchase structure.

Each category has one or two partner categories (:data:`PARTNER_PAIRS`). Baskets and customers'
category preferences favour partners, so an affinity model should rediscover exactly these pairs;
they are written to ``sim_truth.copurchase_pairs`` for tests and benchmarks to check against.
"""

from __future__ import annotations

from dataclasses import dataclass

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


CATEGORIES: tuple[Category, ...] = (
    Category("Coffee", "COF", 0.30,
             ("Ethiopia Yirgacheffe", "Colombia Huila", "Brazil Cerrado", "Kenya Nyeri", "Guatemala Antigua",
              "Sumatra Mandheling", "Costa Rica Tarrazú", "Rwanda Nyamasheke", "Peru Cajamarca",
              "House Espresso Blend", "Decaf Swiss Water", "Honduras Marcala"),
             (("Whole Bean 250 g", 1.0), ("Ground 250 g", 1.0), ("Whole Bean 1 kg", 3.2)),
             (7.9, 8.9, 9.9, 11.9, 13.9, 16.9), True),
    Category("Tea", "TEA", 0.18,
             ("Darjeeling First Flush", "Assam Breakfast", "Sencha", "Gyokuro", "Earl Grey", "Jasmine Pearls",
              "Rooibos Vanilla", "Chamomile", "Tie Guan Yin Oolong", "Chai Masala", "Peppermint",
              "Lapsang Souchong"),
             (("Loose Leaf 100 g", 1.0), ("20 Tea Bags", 0.8), ("Tin 250 g", 2.1)),
             (5.9, 6.9, 7.9, 9.9, 12.9, 18.9), True),
    Category("Brewing Gear", "BRW", 0.12,
             ("Pour-Over Dripper", "French Press", "AeroPress", "Moka Pot", "Hand Grinder", "Burr Grinder",
              "Gooseneck Kettle", "Cold Brew Bottle", "Espresso Tamper", "Digital Scale", "Milk Frother",
              "Glass Carafe"),
             (("Classic", 1.0), ("Pro", 1.8), ("Travel", 0.9)),
             (14.9, 24.9, 34.9, 49.0, 79.0, 129.0), False),
    Category("Mugs & Cups", "MUG", 0.08,
             ("Stoneware Mug", "Double-Wall Glass", "Espresso Cup Set", "Travel Mug", "Latte Bowl",
              "Tea Cup & Saucer", "Enamel Camp Mug", "Cappuccino Cup"),
             (("Ivory", 1.0), ("Slate", 1.0), ("Forest", 1.0), ("Terracotta", 1.1)),
             (9.9, 12.9, 14.9, 19.9, 24.9), False),
    Category("Snacks", "SNK", 0.10,
             ("Almond Biscotti", "Dark Chocolate 70%", "Salted Caramel Wafers", "Oat Cookies",
              "Hazelnut Brittle", "Butter Shortbread", "Ginger Snaps", "Chocolate Coffee Beans",
              "Lemon Madeleines", "Stroopwafels"),
             (("Single Pack", 1.0), ("Box of 12", 2.6), ("Sharing Bag", 1.7)),
             (2.9, 3.5, 3.9, 4.5, 5.9), True),
    Category("Gift Sets", "GFT", 0.08,
             ("Coffee Discovery Set", "Tea Lover's Box", "Barista Starter Kit", "Afternoon Tea Hamper",
              "Espresso Tasting Flight", "Cosy Winter Box", "Birthday Treat Box", "Origins Trio",
              "Chocolate & Coffee Pairing"),
             (("Small", 1.0), ("Classic", 1.6), ("Deluxe", 2.5)),
             (24.9, 29.9, 34.9, 39.9), False),
    Category("Accessories", "ACC", 0.08,
             ("Paper Filters", "Reusable Cloth Filter", "Storage Canister", "Descaling Tablets",
              "Cleaning Brush", "Knock Box", "Tea Infuser", "Coffee Scoop", "Bean Cellar", "Milk Jug",
              "Coaster Set"),
             (("Standard", 1.0), ("Premium", 1.7), ("Refill Pack", 0.8)),
             (4.9, 6.9, 9.9, 12.9, 17.9, 24.9), False),
    Category("Subscriptions", "SUB", 0.06,
             ("Coffee Subscription", "Tea Subscription", "Espresso Subscription", "Decaf Subscription",
              "Roaster's Choice Subscription", "Single Origin Subscription", "Matcha Subscription"),
             (("Monthly", 1.0), ("Bi-weekly", 1.9), ("Quarterly", 2.8), ("Annual", 10.5)),
             (19.9, 24.9, 29.9), False),
)
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
