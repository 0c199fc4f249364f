"""Dirty data on purpose: every kind of :mod:`martech.simulate.defects`, planted where it occurs in real sources.

:func:`plant_defects` takes the clean world and returns what the sources *write*: the shop's customers,
orders and order lines (with the loose types a legacy shop has: ``orders.total_amount`` is text and the
table has no primary key), the CRM export's bytes, and one label per affected row for
``sim_truth.defects``. The pipeline never reads the labels; tests and the quality report compare
staging's quarantine / corrections / merges against them.

``rate`` is the share of each table's rows that get a planted defect, split evenly over the kinds that
live in that table (at least one row per kind whenever ``rate > 0``). A row gets at most one planted
defect. Two kinds also occur naturally and are labelled at any rate: ``refund`` (every refunded order)
and ``null_birthday`` (every empty birthday). Order lines of an order planted with a kind staging
rejects are labelled ``orphan_order_item`` with origin ``consequence`` (staging rejects them with it).

Label keys are what the raw tables carry (see ``docs/simulator.md``): shop tables by their natural key
as text (``order_id``, ``customer_id``, ``order_id:line_no``); the CRM export by file name and line
number (the header is line 1), which is what ``raw.crm_contacts`` (``_source_file``, ``_line_no``) and
``raw.quarantine.source_ref`` (``file:line``) hold.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from martech.simulate._common import iso
from martech.simulate.defects import BY_CODE, KINDS

LABEL_COLUMNS: tuple[str, ...] = ("table_name", "row_key", "source_file", "line_no", "kind", "field",
                                  "original_value", "planted_value", "origin", "note")
NATURAL = ("refund", "null_birthday")
# Kinds that make staging reject an order (and so its lines).
ORDER_REJECTS = ("future_timestamp", "pre_epoch_timestamp", "unknown_currency", "unknown_customer",
                 "amount_out_of_range")
# CRM kinds planted into the bytes of a whole line (labels: the line as planted, base64 when not text).
LINE_KINDS = ("malformed_csv_line", "unterminated_quote", "nul_byte", "invalid_utf8")
ORPHAN_ORDER_BASE = 9_000_000_000  # ids of lines whose order never existed
UNKNOWN_CUSTOMER_BASE = 500_000_000
UNKNOWN_PRODUCT_BASE = 700_000
YEAR_S = 365 * 86_400
CLOCK_ERROR = "2099-01-01T00:00:00+00:00"  # an updated_at written by a source whose clock is wrong

_BAD_CURRENCIES = ("XXX", "EURO", "BTC", "ZZZ", "E")
_BAD_COUNTRIES = ("XX", "Deutschland", "UK", "EU", "D")
_BAD_TIMEZONES = ("Europe/Munich", "Mars/Olympus_Mons", "GMT+25", "Berlin", "America/New York")
_BAD_CONSENT = ("yes", "subscribed", "OPT-IN", "1", "true")
_IMPOSSIBLE_BIRTHDAYS = ("{y}-02-31", "{y}-13-01", "2031-05-04", "1890-03-12", "0000-00-00")
_PRE_EPOCH = (-1, -2_208_988_800, -62_135_596_800)  # 1969-12-31 23:59:59, 1900-01-01, 0001-01-01
_SYMBOL = {"EUR": "€", "GBP": "£", "USD": "$"}


@dataclass
class Written:
    """What the sources write (dirty when ``rate > 0``) and the labels of every defect in it."""

    customers: pd.DataFrame
    orders: pd.DataFrame  # with ``total_text``: the legacy text amount column as written
    items: pd.DataFrame
    cart_items: pd.DataFrame
    crm_bytes: bytes
    labels: pd.DataFrame


class _Labels:
    def __init__(self) -> None:
        self.rows: list[tuple[object, ...]] = []

    def add(self, table: str, key: object, kind: str, field: str | None, original: object, planted: object,
            origin: str = "planted", note: str | None = None, *, row: int | None = None) -> None:
        assert kind in BY_CODE, kind
        self.rows.append((table, None if key is None else str(key), row, kind, field,
                          None if original is None else str(original), None if planted is None else str(planted),
                          origin, note))


class _Picker:
    """Draws rows of one table without replacement: a row gets at most one planted defect."""

    def __init__(self, rng: np.random.Generator, n: int, rate: float, kinds: int,
                 eligible: np.ndarray | None = None) -> None:
        self.rng = rng
        self.free = np.ones(n, dtype=bool) if eligible is None else eligible.copy()
        self.per_kind = 0 if rate <= 0 or n == 0 else max(1, round(rate * n / kinds))

    def take(self, extra: np.ndarray | None = None, k: int | None = None) -> np.ndarray:
        ok = self.free if extra is None else self.free & extra
        idx = np.flatnonzero(ok)
        k = min(self.per_kind if k is None else k, len(idx))
        chosen = np.sort(self.rng.choice(idx, size=k, replace=False)) if k else np.array([], dtype=np.int64)
        self.free[chosen] = False
        return chosen


def _kinds_of(table: str) -> list[str]:
    return [k.code for k in KINDS if k.table == table and k.code not in NATURAL]


def amount_text(cents: np.ndarray | pd.Series) -> np.ndarray:
    """Cents as two-decimal text (``1234`` → ``"12.34"``), the way the shop's legacy column stores them."""
    c = np.asarray(cents, dtype=np.int64)
    sign = np.where(c < 0, "-", "")
    a = np.abs(c)
    text = np.char.add(np.char.add(sign, (a // 100).astype(str)), ".")
    return np.char.add(text, np.char.zfill((a % 100).astype(str), 2)).astype(object)


def plant_defects(world, *, rate: float, rng: np.random.Generator, crm_file: str,
                  crm_frame: Callable[[pd.DataFrame], pd.DataFrame]) -> Written:
    """Plant defects at ``rate`` into copies of the world's source tables; ``rate=0`` leaves them clean."""
    if not 0 <= rate <= 0.2:
        raise ValueError(f"defect_rate must be between 0 and 0.2 (a share of rows), got {rate}")
    labels = _Labels()
    end_s = int(pd.Timestamp(world.as_of).timestamp())
    customers = _customers(rng, world.customers, rate, labels, end_s)
    orders, rejected_orders = _orders(rng, world.orders, len(world.customers), rate, labels, end_s)
    items = _items(rng, world.items, world.products, orders, rejected_orders, rate, labels, end_s)
    crm_bytes = _crm(rng, crm_frame(world.contacts), rate, labels, crm_file, end_s)
    cart_items = _cart_items(rng, world.carts, world.cart_items, world.products, rate, labels)
    frame = pd.DataFrame(labels.rows, columns=["table_name", "row_key", "_row", "kind", "field", "original_value",
                                               "planted_value", "origin", "note"])
    is_crm = frame["table_name"] == "crm_contacts"
    frame["source_file"] = is_crm.map({True: crm_file, False: None})
    frame["line_no"] = pd.array(np.where(is_crm, frame["_row"].fillna(-2).to_numpy(float) + 2, np.nan),
                                dtype="Float64").astype("Int64")
    frame = frame[list(LABEL_COLUMNS)]
    frame = frame.sort_values(["table_name", "kind", "line_no", "row_key"], kind="stable").reset_index(drop=True)
    return Written(customers=customers, orders=orders, items=items, cart_items=cart_items, crm_bytes=crm_bytes,
                   labels=frame)


# -- shop ----------------------------------------------------------------------------------------------

def _customers(rng: np.random.Generator, cust: pd.DataFrame, rate: float, labels: _Labels,
               end_s: int) -> pd.DataFrame:
    out = cust.copy()
    pick = _Picker(rng, len(cust), rate, len(_kinds_of("shop_customers")),
                   eligible=cust["deleted_at"].isna().to_numpy())
    # same_person_two_ids: the person registers again (forgotten password) with the same address.
    src = pick.take(extra=cust["created_at"].to_numpy() < end_s - 30 * 86_400)
    if len(src):
        dup = cust.iloc[src].copy()
        created = dup["created_at"].to_numpy() + rng.integers(86_400, 20 * 86_400, size=len(src))
        new_ids = len(cust) + 1 + np.arange(len(src))
        dup["customer_id"] = new_ids
        dup["created_at"] = dup["updated_at"] = np.minimum(created, end_s - 3600)
        dup["orders"] = 0
        for old, new in zip(cust["customer_id"].to_numpy()[src], new_ids):
            labels.add("shop_customers", new, "same_person_two_ids", "customer_id", old, new,
                       note=f"same person and e-mail address as customer {old}")
        out = pd.concat([out, dup], ignore_index=True)
    # duplicate_customer_id: the same customer row exported twice (identical); the copy is labelled.
    rows = pick.take()
    for r in rows:
        cid = cust["customer_id"].iat[r]
        labels.add("shop_customers", cid, "duplicate_customer_id", "customer_id", cid, cid,
                   note="two identical rows with this customer_id; one is the copy")
    if len(rows):
        out = pd.concat([out, cust.iloc[rows]], ignore_index=True)
    # conflicting_version: a second row of the customer with the same updated_at and another first name
    # (two writers in the shop, one change lost); staging keeps one and records the other.
    rows = pick.take()
    if len(rows):
        other = cust.iloc[rows].copy()
        other["first_name"] = other["first_name"] + "-" + other["last_name"].str[:1]
        for r, name in zip(rows, other["first_name"]):
            labels.add("shop_customers", cust["customer_id"].iat[r], "conflicting_version", "first_name",
                       cust["first_name"].iat[r], name, note="two rows with this customer_id and updated_at differ")
        out = pd.concat([out, other], ignore_index=True)
    return out


def _orders(rng: np.random.Generator, orders: pd.DataFrame, n_customers: int, rate: float, labels: _Labels,
            end_s: int) -> tuple[pd.DataFrame, set[int]]:
    out = orders.copy()
    out["total_text"] = amount_text(out["total_cents"])
    status = out["status"].to_numpy()
    for oid in out.loc[status == "refunded", "order_id"].to_numpy():
        labels.add("shop_orders", oid, "refund", "status", "completed", "refunded", origin="natural")
    pick = _Picker(rng, len(out), rate, len(_kinds_of("shop_orders")), eligible=status != "refunded")
    ids = out["order_id"].to_numpy()
    rejected: set[int] = set()

    rows = pick.take()
    ts = out["order_ts"].to_numpy().copy()
    future = end_s + rng.integers(30 * 86_400, 3 * YEAR_S, size=len(rows))
    for r, f in zip(rows, future):
        labels.add("shop_orders", ids[r], "future_timestamp", "order_ts", iso([ts[r]])[0], iso([f])[0],
                   note="order time after the load; updated_at is in the past")
    ts[rows] = future
    rejected.update(ids[rows].tolist())

    rows = pick.take()
    pre = np.asarray(_PRE_EPOCH)[rng.integers(0, len(_PRE_EPOCH), size=len(rows))]
    for r, p in zip(rows, pre):
        labels.add("shop_orders", ids[r], "pre_epoch_timestamp", "order_ts", iso([ts[r]])[0], iso([p])[0])
    ts[rows] = pre
    rejected.update(ids[rows].tolist())
    out["order_ts"] = ts

    rows = pick.take()
    cur = out["currency"].to_numpy().copy()
    bad = np.asarray(_BAD_CURRENCIES, dtype=object)[rng.integers(0, len(_BAD_CURRENCIES), size=len(rows))]
    for r, b in zip(rows, bad):
        labels.add("shop_orders", ids[r], "unknown_currency", "currency", cur[r], b)
    cur[rows] = bad
    out["currency"] = cur
    rejected.update(ids[rows].tolist())

    rows = pick.take()
    cid = out["customer_id"].to_numpy().copy()
    ghost = UNKNOWN_CUSTOMER_BASE + n_customers + 1 + np.arange(len(rows))
    for r, g in zip(rows, ghost):
        labels.add("shop_orders", ids[r], "unknown_customer", "customer_id", cid[r], g)
    cid[rows] = ghost
    out["customer_id"] = cid
    rejected.update(ids[rows].tolist())

    text = out["total_text"].to_numpy().copy()
    rows = pick.take()
    huge = rng.integers(10**12, 10**15, size=len(rows))  # a value that fits no money column
    for r, h in zip(rows, huge):
        planted = f"{h}.{r % 100:02d}"
        labels.add("shop_orders", ids[r], "amount_out_of_range", "total_amount", text[r], planted,
                   note="a test or overflowed value in the shop's text column")
        text[r] = planted
    rejected.update(ids[rows].tolist())
    rows = pick.take()
    cents = out["total_cents"].to_numpy()
    delta = rng.choice([490, 500, 1000, 199, 1900], size=len(rows))  # shipping or a fee added twice
    for r, d in zip(rows, delta):
        planted = amount_text([cents[r] + d])[0]
        labels.add("shop_orders", ids[r], "total_mismatch", "total_amount", text[r], planted,
                   note="the lines are right; the total is not")
        text[r] = planted

    rows = pick.take()
    style = rng.integers(0, 4, size=len(rows))
    for r, s in zip(rows, style):
        value = cents[r] / 100
        sym = _SYMBOL.get(out["currency"].iat[r], "€")
        planted = (f"{value:,.2f} ", f"{sym}{value:,.2f}", f"{out['currency'].iat[r]} {value:.2f}",
                   f" {value:,.2f}")[s]
        labels.add("shop_orders", ids[r], "number_as_text", "total_amount", text[r], planted)
        text[r] = planted
    out["total_text"] = text

    # duplicate_order_id: the same order exported twice (identical rows); the copy is labelled.
    rows = pick.take()
    for r in rows:
        labels.add("shop_orders", ids[r], "duplicate_order_id", "order_id", ids[r], ids[r],
                   note="two identical rows with this order_id; one is the copy")
    if len(rows):
        out = pd.concat([out, out.iloc[rows]], ignore_index=True)
    return out, rejected


def _items(rng: np.random.Generator, items: pd.DataFrame, products: pd.DataFrame, orders: pd.DataFrame,
           rejected: set[int], rate: float, labels: _Labels, end_s: int) -> pd.DataFrame:
    out = items.copy()
    oid = out["order_id"].to_numpy()
    line = out["line_no"].to_numpy()

    def key(r: int) -> str:
        return f"{oid[r]}:{line[r]}"

    of_rejected = np.isin(oid, np.fromiter(rejected, dtype=np.int64, count=len(rejected)))
    kind_of = {str(k[1]): k[3] for k in labels.rows if k[0] == "shop_orders" and k[3] in ORDER_REJECTS}
    for r in (int(x) for x in np.flatnonzero(of_rejected)):
        labels.add("shop_order_items", key(r), "orphan_order_item", "order_id", oid[r], oid[r],
                   origin="consequence", note=f"its order {oid[r]} is planted with {kind_of[str(oid[r])]}")
    # An order planted with total_mismatch keeps clean lines: its true total must stay recoverable.
    mismatched = [int(str(k[1])) for k in labels.rows if k[0] == "shop_orders" and k[3] == "total_mismatch"]
    of_mismatched = np.isin(oid, np.asarray(mismatched, dtype=np.int64))
    pick = _Picker(rng, len(out), rate, len(_kinds_of("shop_order_items")), eligible=~of_rejected & ~of_mismatched)

    rows = pick.take()
    qty = out["quantity"].to_numpy().copy()
    for r in rows:
        labels.add("shop_order_items", key(r), "negative_quantity", "quantity", qty[r], -qty[r],
                   note="the order's total_amount still counts the line as positive")
    qty[rows] = -qty[rows]
    out["quantity"] = qty

    price = out["unit_price_cents"].to_numpy().copy()
    rows = pick.take()
    for r in rows:
        labels.add("shop_order_items", key(r), "zero_price", "unit_price", amount_text([price[r]])[0], "0.00",
                   note="the order's total_amount still counts the original price")
    price[rows] = 0
    rows = pick.take()
    for r in rows:
        labels.add("shop_order_items", key(r), "negative_price", "unit_price", amount_text([price[r]])[0],
                   amount_text([-price[r]])[0])
    price[rows] = -price[rows]
    out["unit_price_cents"] = price

    rows = pick.take()
    pid = out["product_id"].to_numpy().copy()
    ghost = UNKNOWN_PRODUCT_BASE + 1 + np.arange(len(rows))
    for r, g in zip(rows, ghost):
        labels.add("shop_order_items", key(r), "unknown_product", "product_id", pid[r], g)
    pid[rows] = ghost
    out["product_id"] = pid

    # orphan_order_item: lines whose order never existed (a half-written order in the shop).
    n_orphans = pick.per_kind
    if n_orphans:
        known = products["product_id"].to_numpy()
        orphan = pd.DataFrame({
            "order_id": ORPHAN_ORDER_BASE + 1 + np.arange(n_orphans), "line_no": 1,
            "product_id": known[rng.integers(0, len(known), size=n_orphans)],
            "quantity": 1, "unit_price_cents": rng.integers(290, 4990, size=n_orphans),
            "updated_at": end_s - rng.integers(3600, 300 * 86_400, size=n_orphans)})
        for o in orphan["order_id"]:
            labels.add("shop_order_items", f"{o}:1", "orphan_order_item", "order_id", None, o,
                       note="no order with this id exists")
        out = pd.concat([out, orphan[out.columns]], ignore_index=True)
    return out


def _cart_items(rng: np.random.Generator, carts: pd.DataFrame, items: pd.DataFrame, products: pd.DataFrame,
                rate: float, labels: _Labels) -> pd.DataFrame:
    """cart_value_out_of_range: a few open or abandoned carts get eleven more lines of 10 x 99,999,999.00:
    every line is in range (below 1,000,000,000), their sum is more than a cart value holds."""
    open_carts = (carts["status"] != "converted").to_numpy()
    pick = _Picker(rng, len(carts), rate, len(_kinds_of("shop_carts")), eligible=open_carts)
    rows = pick.take(k=max(1, pick.per_kind // 20) if pick.per_kind else 0)
    if not len(rows):
        return items
    ids = carts["cart_id"].to_numpy()[rows]
    updated = carts["updated_at"].to_numpy()[rows]
    last = items.groupby("cart_id")["line_no"].max()
    known = products["product_id"].to_numpy()
    extra = []
    for cart, at in zip(ids, updated):
        first = int(last.get(cart, 0)) + 1
        extra.append(pd.DataFrame({
            "cart_id": cart, "line_no": np.arange(first, first + 11), "product_id": known[rng.integers(0, len(known))],
            "quantity": 10, "unit_price_cents": 9_999_999_900, "updated_at": at}))
        labels.add("shop_carts", cart, "cart_value_out_of_range", "cart_value", None, "10999999890.00+",
                   note="eleven lines of 10 x 99,999,999.00 added to the cart")
    out = pd.concat([items, *extra], ignore_index=True).sort_values(["cart_id", "line_no"], ignore_index=True)
    of_cart = out["cart_id"].isin(ids).to_numpy()
    for cart, line in zip(out["cart_id"].to_numpy()[of_cart], out["line_no"].to_numpy()[of_cart]):
        labels.add("shop_cart_items", f"{cart}:{line}", "cart_value_out_of_range", "unit_price", None, None,
                   origin="consequence", note=f"a line of cart {cart}, whose lines add up past a cart value")
    return out


# -- CRM export ----------------------------------------------------------------------------------------

def _mojibake(text: str) -> str | None:
    """``text`` as it reads after its UTF-8 bytes were decoded as CP1252; ``None`` if that changes nothing
    or cannot be undone by re-decoding."""
    try:
        garbled = text.encode("utf-8").decode("cp1252")
    except UnicodeDecodeError:
        return None
    return garbled if garbled != text and garbled.encode("cp1252").decode("utf-8") == text else None


def _crm(rng: np.random.Generator, frame: pd.DataFrame, rate: float, labels: _Labels, crm_file: str,
         end_s: int) -> bytes:
    out = frame.copy()
    n = len(out)
    cid = out["contact_id"].to_numpy()
    no_birthday = out["birthday"].to_numpy() == ""
    pick = _Picker(rng, n, rate, len(_kinds_of("crm_contacts")), eligible=~no_birthday)

    def setcell(r: int, col: str, kind: str, value: str, note: str | None = None) -> None:
        labels.add("crm_contacts", cid[r], kind, col, out[col].iat[r], value, note=note, row=r)
        out.iloc[r, out.columns.get_loc(col)] = value

    for r in pick.take():
        e = out["email"].iat[r]
        local, _, domain = e.partition("@")
        variant = (local + "." + domain, local + " @" + domain, local + "@" + domain.replace(".", ""))
        setcell(r, "email", "invalid_email", variant[r % 3])
    for r in pick.take():
        setcell(r, "email", "email_padding", ("  ", " ", "\t")[r % 3] + out["email"].iat[r] + (" ", "  ", "")[r % 3])
    for r in pick.take():
        y = out["birthday"].iat[r][:4]
        setcell(r, "birthday", "impossible_birthday", _IMPOSSIBLE_BIRTHDAYS[r % 5].format(y=y))
    for r in pick.take():
        col = ("created_at", "updated_at")[r % 2]
        value = out[col].iat[r].removesuffix("+00:00")
        setcell(r, col, "naive_timestamp", value.replace("T", " ") if r % 3 == 0 else value,
                note="the UTC time without its offset")
    garbles = {f: _mojibake(f) for f in out["first_name"].unique()} if pick.per_kind else {}
    has_umlaut = out["first_name"].map(lambda f: garbles.get(f) is not None).to_numpy(dtype=bool)
    for r in pick.take(extra=has_umlaut):
        setcell(r, "first_name", "wrong_encoding", _mojibake(out["first_name"].iat[r]) or "")
    for r in pick.take():
        name = out["last_name"].iat[r]
        setcell(r, "last_name", "overlong_name", (name + " ") * (1 + 220 // (len(name) + 1)) + name)
    for r in pick.take():
        name = out["first_name"].iat[r]
        forms = (f"<b>{name}</b>", f"{name}<script>alert(1)</script>", f"<img src=x onerror=alert(1)>{name}")
        setcell(r, "first_name", "markup_in_name", forms[r % 3])
    for r in pick.take():
        setcell(r, "country", "unknown_country", _BAD_COUNTRIES[r % len(_BAD_COUNTRIES)])
    for r in pick.take():
        setcell(r, "timezone", "unknown_timezone", _BAD_TIMEZONES[r % len(_BAD_TIMEZONES)])
    for r in pick.take():
        setcell(r, "consent_status", "invalid_consent_status", _BAD_CONSENT[r % len(_BAD_CONSENT)])
    for r in pick.take():
        setcell(r, "updated_at", "future_updated_at", CLOCK_ERROR, note="the CRM's clock jumped to 2099")

    # email_case_duplicate: the person signs up again with the address in another letter case.
    src = pick.take(extra=out["updated_at"].to_numpy() < iso([end_s - 30 * 86_400])[0])
    # Lines that can be broken without leaving a half-open quote behind.
    plain = np.zeros(n, dtype=bool)
    if pick.per_kind:
        plain = ~out.apply(lambda col: col.str.contains(r'[,"\n\r]', regex=True)).any(axis=1).to_numpy()
    byte_kinds = {kind: pick.take(extra=plain) if pick.per_kind else np.array([], dtype=np.int64)
                  for kind in LINE_KINDS}
    broken = byte_kinds.pop("malformed_csv_line")
    if len(src):
        dup = out.iloc[src].copy()
        later = pd.to_datetime(dup["updated_at"], utc=True) + pd.to_timedelta(
            rng.integers(86_400, 20 * 86_400, size=len(src)), unit="s")
        stamp = later.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_numpy()
        first_new = n + 1
        dup["contact_id"] = [f"C{i:07d}" for i in range(first_new, first_new + len(src))]
        dup["email"] = [_case_variant(e, k) for k, e in enumerate(dup["email"])]
        dup["created_at"] = dup["updated_at"] = stamp
        dup["consent_updated_at"] = np.where(dup["consent_updated_at"] == "", "", stamp)
        dup["lifecycle_status"], dup["shop_customer_id"] = "lead", ""
        for col in ("lead_source", "page_views", "email_opens", "form_submissions"):
            dup[col] = ""
        for k, r in enumerate(src):
            labels.add("crm_contacts", dup["contact_id"].iat[k], "email_case_duplicate", "email",
                       out["email"].iat[r], dup["email"].iat[k], note=f"same person as {cid[r]}", row=n + k)
        out = pd.concat([out, dup], ignore_index=True)

    all_ids = out["contact_id"].to_numpy()
    for r in np.flatnonzero(out["birthday"].to_numpy() == ""):
        labels.add("crm_contacts", all_ids[r], "null_birthday", "birthday", None, "", origin="natural", row=int(r))

    text = out.to_csv(index=False, lineterminator="\n")
    if not len(broken) and not any(len(v) for v in byte_kinds.values()):
        return text.encode("utf-8")
    lines = text.split("\n")
    for k, r in enumerate(broken):
        clean = lines[r + 1]
        fields = clean.split(",")
        if k % 2 == 0:  # an unquoted comma inside the last name: one field too many
            ln = out.columns.get_loc("last_name")
            fields[ln] = fields[ln] + ", Jr."
            planted = ",".join(fields)
        else:  # the export was cut off in the middle of the line
            planted = ",".join(fields[: 3 + r % 8])
        lines[r + 1] = planted
        labels.add("crm_contacts", cid[r], "malformed_csv_line", None, clean, planted, row=int(r))
    data = [line.encode("utf-8") for line in lines]
    fn, ln = out.columns.get_loc("first_name"), out.columns.get_loc("last_name")
    for kind, rows in byte_kinds.items():
        for r in rows:
            clean = lines[r + 1]
            fields = clean.split(",")
            if kind == "unterminated_quote":  # a quote opened in the last name and never closed
                fields[ln] = '"' + fields[ln]
            elif kind == "nul_byte":  # a NUL byte inside the first name (a C string copied too far)
                fields[fn] += "\x00"
            else:  # the first name written in Windows-1252 into the UTF-8 file
                fields[fn] += "\u00e9"
            planted_bytes = ",".join(fields).encode("cp1252" if kind == "invalid_utf8" else "utf-8", "replace")
            data[r + 1] = planted_bytes
            planted = (planted_bytes.decode() if kind == "unterminated_quote"
                       else base64.b64encode(planted_bytes).decode("ascii"))
            labels.add("crm_contacts", cid[r], kind, None, clean, planted, row=int(r),
                       note=None if kind == "unterminated_quote" else "planted_value: the line's bytes in base64")
    return b"\n".join(data)


def _case_variant(email: str, k: int) -> str:
    local, _, domain = email.partition("@")
    forms = (local.capitalize() + "@" + domain, email.upper(), local.title() + "@" + domain.capitalize())
    variant = forms[k % 3]
    return variant if variant != email else email.upper()
