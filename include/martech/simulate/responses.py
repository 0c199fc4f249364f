"""``play_responses``: how the simulated world reacts to a campaign send.

For one send date it writes the ESP's event feed (SendGrid event-webhook shape, JSON Lines, one file
per day) and appends the orders placed in the following ``days``: every living customer keeps buying
as before, and treatment members who received the mail buy with a true, recorded extra probability.

Idempotent: the orders of an earlier call for the same send date are deleted and drawn again with
the same random streams and order ids, and the event files are rewritten with identical bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from martech.simulate._common import epoch_day, iso, load, money, rng_for, write_atomically
from martech.simulate.catalog import CATEGORY_NAMES
from martech.simulate.dirty import amount_text
from martech.simulate.people import CURRENCY
from martech.simulate.purchases import DAY, DIURNAL, build_items, day_intensity, time_of_day
from martech.simulate.sources import truth_ddl

SEND_HOUR = 9  # the ESP starts processing the run's messages at 09:00 UTC
P_DELIVERED, P_BOUNCE = 0.98, 0.015  # the rest is dropped
P_OPEN = 0.35  # of delivered
P_CLICK = 0.25  # of openers
P_UNSUBSCRIBE = 0.005  # of delivered
P_SPAMREPORT = 0.0007  # of delivered
EXTRA_OPENS_MEAN = 0.6
# True extra purchase probability within the window for treatment members, by engagement (absolute
# percentage points on top of the baseline): receiving the mail, opening it, clicking through.
UPLIFT_RECEIVED, UPLIFT_OPENED, UPLIFT_CLICKED = 0.03, 0.06, 0.15
# The true effect differs by campaign (a multiple of the uplifts above); review mails cause nothing at all,
# so the KPIs' false-positive rate can be read off them.
EFFECT_SCALE: dict[str, float] = {"review": 0.0, "upsell": 0.5, "birthday": 0.8, "vip": 1.5, "abandoned_cart": 2.0}
BASELINE_CANCELLED = 0.01
# Send time: every contact has a true preferred local hour (drawn from the day's engagement curve by a hash
# of the contact id). A message that lands within an hour of it is opened more often, one far from it less
# (multipliers of P_OPEN by circular distance in hours: <= 1, <= 3, further); most human opens happen at the
# preferred hour, whenever the message arrived. A share of recipients read with Apple Mail Privacy
# Protection: their mail app fetches every delivered message at once (a machine open, sg_machine_open).
OPEN_BY_DISTANCE = (1.6, 1.1, 0.85)
P_OPEN_AT_PREFERRED_HOUR = 0.75
MPP_SHARE = 0.3

_S_EVENTS, _S_BASELINE, _S_UPLIFT, _S_UPLIFT_ITEMS, _S_BASELINE_ITEMS = 101, 201, 301, 302, 202
_S_ORDER_VALUE = 303
_S_HOURS = 102
_ORDER_VALUE_DRAWS = 400  # baskets drawn per category for the expected order value

_USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
_LINK_PATHS = ("", "c/coffee", "c/tea", "c/brewing-gear", "new", "offers")


@dataclass(frozen=True)
class ResponseSummary:
    """What :func:`play_responses` produced for one send date."""

    send_date: dt.date
    days: int
    run_id: str
    messages: int  # sent ledger rows
    events: dict[str, int] = field(default_factory=dict)  # by event type
    files: tuple[str, ...] = ()
    orders_added: int = 0
    baseline_orders: int = 0
    uplift_orders: int = 0
    treated: int = 0  # treatment members (campaign × contact)
    holdout: int = 0
    posted: bool = False  # events went to the event webhook instead of feed files
    treated_buyers: int = 0  # members with an order in the window
    holdout_buyers: int = 0
    seconds: float = field(default=0.0, compare=False)  # wall-clock, so not part of equality

    @property
    def files_written(self) -> int:
        return len(self.files)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        order = ("processed", "delivered", "bounce", "dropped", "open", "click", "unsubscribe", "spamreport")
        ev = ", ".join(f"{self.events[k]:,} {k}" for k in order if self.events.get(k))
        t_rate = self.treated_buyers / self.treated if self.treated else 0.0
        h_rate = self.holdout_buyers / self.holdout if self.holdout else 0.0
        return [
            f"emails: {self.messages:,} sent on {self.send_date} → {ev or 'no events'} "
            + ("(posted, signed, to the event webhook)" if self.posted else f"({self.files_written} event file(s))"),
            f"orders: {self.orders_added:,} placed {self.send_date} .. "
            f"{self.send_date + dt.timedelta(days=self.days - 1)} ({self.baseline_orders:,} ordinary, "
            f"{self.uplift_orders:,} caused by the campaign)",
            f"buyers: treatment {self.treated_buyers:,}/{self.treated:,} ({t_rate:.1%}) vs holdout "
            f"{self.holdout_buyers:,}/{self.holdout:,} ({h_rate:.1%})",
        ]


# -- events ---------------------------------------------------------------------------------------------

def _event_id(seed: int, key: str, event: str, k: int) -> str:
    """A stable, unique 22-character id in the style of SendGrid's ``sg_event_id``."""
    digest = hashlib.blake2b(f"{seed}|{key}|{event}|{k}".encode(), digest_size=16).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _contact_unit(contact_ids: pd.Series | np.ndarray, purpose: str) -> np.ndarray:
    """A number in [0, 1) per contact id, fixed by the id alone (the same in every run)."""
    return np.asarray([int.from_bytes(hashlib.blake2b(f"{purpose}|{c}".encode(), digest_size=8).digest(), "big")
                       / float(1 << 64) for c in contact_ids], dtype=float)


def true_preferred_hour(contact_ids: pd.Series | np.ndarray) -> np.ndarray:
    """Each contact's true preferred local hour to read e-mail (0-23), from the day's engagement curve."""
    cum = np.cumsum(DIURNAL) / DIURNAL.sum()
    return np.minimum(np.searchsorted(cum, _contact_unit(contact_ids, "preferred_hour"), side="right"), 23)


def uses_mail_privacy_protection(contact_ids: pd.Series | np.ndarray) -> np.ndarray:
    """Whether each contact's mail app prefetches messages (machine opens), about MPP_SHARE of them."""
    return _contact_unit(contact_ids, "mpp") < MPP_SHARE


def open_multiplier(local_send_hour: np.ndarray, preferred_hour: np.ndarray) -> np.ndarray:
    """Factor on P_OPEN by the circular distance between the local hour of arrival and the preferred one."""
    diff = np.abs(np.asarray(local_send_hour, dtype=np.int64) - np.asarray(preferred_hour, dtype=np.int64)) % 24
    distance = np.minimum(diff, 24 - diff)
    near, mid, far = OPEN_BY_DISTANCE
    return np.where(distance <= 1, near, np.where(distance <= 3, mid, far))


def _at_preferred_hour(after: np.ndarray, offset_h: np.ndarray, hour: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The first instant after ``after`` that falls in the contact's preferred local hour (``u``: where in it)."""
    local = after + offset_h * 3600
    day_start = local - local % DAY
    candidate = day_start + hour * 3600 + (u * 3600).astype(np.int64)
    same_hour = (local % DAY) // 3600 == hour
    rest = np.maximum(3600 - local % 3600 - 60, 1)
    candidate = np.where(candidate > local, candidate,
                         np.where(same_hour, local + 60 + (u * rest).astype(np.int64), candidate + DAY))
    return candidate - offset_h * 3600


def simulate_events(ledger: pd.DataFrame, *, send_date: dt.date, days: int,
                    seed: int) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Webhook events for the sent messages in ``ledger`` and each message's engagement.

    ``ledger`` needs ``campaign_id, run_id, contact_id, email, send_id, message_id`` (one row per sent
    message, in a stable order). Returns the events (dicts in webhook field order) and a frame aligned
    with ``ledger`` holding ``delivered_ts``, ``open_ts`` and ``click_ts`` (first ones, NaN if none).

    With a ``utc_offset_h`` column (the contact's) the send time matters: each message goes out at its
    ``planned_ts`` (epoch seconds; else 09:00 UTC), opens follow the contact's true preferred hour
    (:func:`true_preferred_hour`) and recipients with Mail Privacy Protection add a machine open.
    """
    n = len(ledger)
    rng = rng_for(seed, _S_EVENTS, epoch_day(send_date))
    start = epoch_day(send_date) * DAY
    end = start + days * DAY
    processed = start + SEND_HOUR * 3600 + rng.integers(0, 900, size=n)
    timed = "utc_offset_h" in ledger.columns
    if timed and "planned_ts" in ledger.columns:
        planned = pd.to_numeric(ledger["planned_ts"], errors="coerce").to_numpy(dtype=float)
        processed = np.where(np.isnan(planned), processed, np.nan_to_num(planned).astype(np.int64)
                             + (processed - start - SEND_HOUR * 3600))
    outcome = rng.random(n)
    delivered = outcome < P_DELIVERED
    bounced = (outcome >= P_DELIVERED) & (outcome < P_DELIVERED + P_BOUNCE)
    dropped = outcome >= P_DELIVERED + P_BOUNCE
    delivered_ts = processed + rng.integers(1, 30, size=n)
    bounce_ts = processed + rng.integers(1, 120, size=n)
    dropped_ts = processed + rng.integers(0, 2, size=n)
    # Opens: many within the first hour, the rest spread over the following days.
    quick = rng.random(n) < 0.45
    delay = np.where(quick, rng.exponential(1800, size=n), rng.lognormal(np.log(6 * 3600), 1.2, size=n))
    open_ts = delivered_ts + 60 + delay.astype(np.int64)
    p_open = np.full(n, P_OPEN)
    mpp = np.zeros(n, dtype=bool)
    machine_ts = delivered_ts
    if timed:
        offset = ledger["utc_offset_h"].fillna(0).to_numpy(dtype=np.int64)
        hour = true_preferred_hour(ledger["contact_id"].astype(str).to_numpy())
        local_send_hour = ((delivered_ts + offset * 3600) % DAY) // 3600
        p_open = P_OPEN * open_multiplier(local_send_hour, hour)
        timing = rng_for(seed, _S_HOURS, epoch_day(send_date))
        habitual = timing.random(n) < P_OPEN_AT_PREFERRED_HOUR
        habit_ts = _at_preferred_hour(delivered_ts, offset, hour, timing.random(n))
        open_ts = np.where(habitual, habit_ts, open_ts)
        mpp = uses_mail_privacy_protection(ledger["contact_id"].astype(str).to_numpy())
        machine_ts = delivered_ts + timing.integers(1, 120, size=n)
    opened = delivered & (rng.random(n) < p_open) & (open_ts < end)
    extra_opens = rng.poisson(EXTRA_OPENS_MEAN, size=n)
    click_ts = open_ts + rng.integers(5, 300, size=n)
    clicked = opened & (rng.random(n) < P_CLICK) & (click_ts < end)
    second_click = clicked & (rng.random(n) < 0.2)
    unsub_ts = np.where(opened, open_ts, delivered_ts) + rng.integers(30, 3600, size=n)
    unsubscribed = delivered & (rng.random(n) < P_UNSUBSCRIBE) & (unsub_ts < end)
    spam_ts = delivered_ts + rng.integers(600, 2 * DAY, size=n)
    spam = delivered & ~unsubscribed & (rng.random(n) < P_SPAMREPORT) & (spam_ts < end)
    agent = rng.integers(0, len(_USER_AGENTS), size=n)
    ip = rng.integers(1, 255, size=n)
    link = rng.integers(0, len(_LINK_PATHS), size=n)
    # Later opens are drawn for every message so the stream's position never depends on outcomes.
    later = rng.exponential(DAY, size=(n, 4)).astype(np.int64)

    events: list[dict[str, Any]] = []
    rows = ledger[["campaign_id", "run_id", "contact_id", "email", "send_id", "message_id"]].astype(object)
    rows = rows.where(rows.notna(), None)  # JSON null, never NaN
    for i, (campaign_id, run_id, contact_id, email, send_id, message_id) in enumerate(
            rows.itertuples(index=False, name=None)):
        key = str(send_id or message_id)
        custom = {"send_id": send_id, "campaign_id": campaign_id, "run_id": run_id, "contact_id": contact_id}
        seen: dict[str, int] = {}

        def emit(event: str, ts: int, extra: dict[str, Any] | None = None, *, _email: str = email,
                 _key: str = key, _msg: Any = message_id, _custom: dict[str, Any] = custom,
                 _seen: dict[str, int] = seen) -> None:
            k = _seen.get(event, 0)
            _seen[event] = k + 1
            events.append({"email": _email, "timestamp": int(ts), "event": event,
                           "sg_event_id": _event_id(seed, _key, event, k), "sg_message_id": _msg,
                           **(extra or {}), **_custom})

        emit("processed", processed[i])
        if delivered[i]:
            emit("delivered", delivered_ts[i], {"response": "250 2.0.0 OK"})
        elif bounced[i]:
            emit("bounce", bounce_ts[i], {"type": "bounce", "status": "5.1.1",
                                          "reason": "550 5.1.1 The email account does not exist"})
        elif dropped[i]:
            emit("dropped", dropped_ts[i], {"reason": "Bounced Address"})
        if delivered[i] and mpp[i] and machine_ts[i] < end:
            emit("open", machine_ts[i], {"useragent": "Mozilla/5.0", "ip": "17.58.0.1", "sg_machine_open": True})
        if opened[i]:
            device = {"useragent": _USER_AGENTS[agent[i]], "ip": f"203.0.113.{ip[i]}"}
            emit("open", open_ts[i], {**device, "sg_machine_open": False})
            for j in range(min(int(extra_opens[i]), later.shape[1])):
                ts = open_ts[i] + later[i, j]
                if ts < end:
                    emit("open", ts, {**device, "sg_machine_open": False})
            if clicked[i]:
                url = (f"https://shop.example/{_LINK_PATHS[link[i]]}?utm_source=martech&utm_medium=email"
                       f"&utm_campaign={campaign_id}")
                emit("click", click_ts[i], {**device, "url": url, "url_offset": {"index": 0, "type": "html"}})
                if second_click[i] and click_ts[i] + 90 < end:
                    emit("click", click_ts[i] + 90, {**device, "url": url,
                                                     "url_offset": {"index": 1, "type": "html"}})
        if unsubscribed[i]:
            emit("unsubscribe", unsub_ts[i])
        if spam[i]:
            emit("spamreport", spam_ts[i])

    engagement = pd.DataFrame({
        "delivered_ts": np.where(delivered, delivered_ts, np.nan),
        "open_ts": np.where(opened, open_ts, np.nan),
        "click_ts": np.where(clicked, click_ts, np.nan),
    }, index=ledger.index)
    return events, engagement


def _sort_key(line: str) -> tuple[int, str]:
    try:
        obj = json.loads(line)
        return int(obj.get("timestamp") or 0), str(obj.get("sg_event_id") or "")
    except (ValueError, TypeError, AttributeError):
        return 0, ""


def _line_run_id(line: str) -> str | None:
    try:
        obj = json.loads(line)
        return str(obj.get("run_id")) if isinstance(obj, dict) else None
    except ValueError:
        return None


def write_event_files(folder: Path, events: list[dict[str, Any]], *, send_date: dt.date, days: int,
                      run_id: str) -> list[Path]:
    """Write one ``events_<YYYYMMDD>.jsonl`` per day of the window that has events; returns those files.

    A file may also hold events of other runs (an overlapping window of an earlier send): those lines
    are kept, this run date's (every step) are replaced, so a rerun leaves the file byte for byte as it was.
    """
    by_day: dict[dt.date, list[str]] = {}
    for ev in events:
        day = dt.datetime.fromtimestamp(ev["timestamp"], tz=dt.timezone.utc).date()
        by_day.setdefault(day, []).append(json.dumps(ev, ensure_ascii=False, separators=(",", ":")))
    written = []
    for offset in range(days):
        day = send_date + dt.timedelta(days=offset)
        path = folder / f"events_{day:%Y%m%d}.jsonl"
        keep: list[str] = []
        if path.exists():
            keep = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                    if ln.strip() and (_line_run_id(ln) or "")[:10] != run_id]
        lines = keep + by_day.get(day, [])
        if not lines:
            if path.exists():
                path.unlink()  # it only held this run's events, which are gone now
            continue
        lines.sort(key=_sort_key)
        data = ("\n".join(lines) + "\n").encode("utf-8")
        # Unchanged files are left alone, so a rerun does not even touch their modification time.
        if not path.exists() or path.read_bytes() != data:
            write_atomically(path, data)
        if day in by_day:
            written.append(path)
    return written


# -- orders ---------------------------------------------------------------------------------------------

def _exists(conn: Connection, table: str) -> bool:
    return conn.execute(sa.text("select to_regclass(:t) is not null"), {"t": table}).scalar_one()


def _has_column(conn: Connection, table: str, column: str) -> bool:
    schema, _, name = table.rpartition(".")
    return bool(conn.execute(sa.text(
        "select 1 from information_schema.columns where table_schema = :s and table_name = :t and column_name = :c"),
        {"s": schema or "public", "t": name, "c": column}).first())


def _frame(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
    result = conn.execute(sa.text(sql), params or {})
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _products(conn: Connection, schema: str, truth: str) -> pd.DataFrame:
    """The catalog in the layout :func:`build_items` expects (grouped by category, popularity per category)."""
    prods = _frame(conn, f"select p.product_id, t.category, t.popularity, p.price from {schema}.products p "
                         f"join {truth}.products t using (product_id) order by p.product_id")
    prods["category_idx"] = prods["category"].map({c: i for i, c in enumerate(CATEGORY_NAMES)}).astype(int)
    prods["price_cents"] = np.round(prods["price"].astype(float) * 100).astype(np.int64)
    prods = prods.sort_values(["category_idx", "product_id"], kind="stable").reset_index(drop=True)
    prods["popularity"] = prods["popularity"] / prods.groupby("category_idx")["popularity"].transform("sum")
    return prods


def _orders_frame(rng: np.random.Generator, customer_idx: np.ndarray, ts: np.ndarray, customers: pd.DataFrame,
                  products: pd.DataFrame, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """New orders (without ids yet) and their items for customers at rows ``customer_idx``."""
    n = len(customer_idx)
    status = np.full(n, "completed", dtype=object)
    if kind == "baseline":
        status[rng.random(n) < BASELINE_CANCELLED] = "cancelled"
    orders = pd.DataFrame({
        "customer_id": customers["customer_id"].to_numpy()[customer_idx],
        "order_ts": ts.astype(np.int64),
        "status": status,
        "currency": customers["currency"].to_numpy()[customer_idx],
        "kind": kind,
    })
    items = build_items(rng, customers["primary_idx"].to_numpy()[customer_idx], products,
                        np.zeros(n, dtype=np.int64))
    return orders, items


def _expected_order_value(products: pd.DataFrame, seed: int) -> np.ndarray:
    """Mean basket value (currency units) of an order without coupon, by customer's main category."""
    rng = rng_for(seed, _S_ORDER_VALUE, 0)
    values = np.zeros(len(CATEGORY_NAMES))
    for c in range(len(CATEGORY_NAMES)):
        items = build_items(rng, np.full(_ORDER_VALUE_DRAWS, c), products, np.zeros(_ORDER_VALUE_DRAWS, np.int64))
        values[c] = float((items["quantity"] * items["unit_price_cents"]).sum()) / _ORDER_VALUE_DRAWS / 100
    return values


def play_responses(engine: Engine, landing_dir: Path, *, send_date: dt.date, days: int = 7, seed: int = 42,
                   schema: str = "shop", truth_schema: str = "sim_truth",
                   ledger_table: str = "campaigns.send_ledger",
                   audience_table: str = "audiences.audience_members",
                   post_events: Callable[[list[dict[str, Any]]], Any] | None = None,
                   effect_scale: Mapping[str, float] | None = None) -> ResponseSummary:
    """Play recipients' reactions to the sends of run date ``send_date`` (every step) over ``days`` days.

    Events go to ``post_events`` when given (the demo posts them, signed, to the event webhook), else to
    ``landing_dir/email_events/events_<YYYYMMDD>.jsonl``. Orders dated within ``[send_date, send_date + days)``
    are appended to ``<schema>.orders``/``order_items``. The true effects (per campaign: ``effect_scale``,
    default :data:`EFFECT_SCALE`, times the uplifts) go to ``<truth_schema>.campaign_effects``. A second call
    with the same arguments changes nothing (a webhook stores reposted events once).
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    t0 = time.perf_counter()
    run_id = send_date.isoformat()
    start = epoch_day(send_date) * DAY
    end = start + days * DAY
    window = [send_date + dt.timedelta(days=k) for k in range(days)]
    truth = truth_schema

    with engine.begin() as conn:
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext('martech.simulate'))"))
        for ddl in truth_ddl(truth).values():
            conn.execute(sa.text(ddl))
        conn.execute(sa.text(f"alter table {truth}.campaign_effects add column if not exists"
                             " expected_order_value double precision"))
        ledger = (_frame(conn, f"select campaign_id::text, run_id::text, contact_id::text, email::text, "
                               f"send_id::text, message_id::text from {ledger_table} "
                               "where left(run_id::text, 10) = :r and status = 'sent' "
                               "order by campaign_id, contact_id, send_id", {"r": run_id})
                  if _exists(conn, ledger_table) else pd.DataFrame(
                      columns=["campaign_id", "run_id", "contact_id", "email", "send_id", "message_id"]))
        members = (_frame(conn, f"select campaign_id::text, run_id::text, contact_id::text, arm::text "
                                f"from {audience_table} where left(run_id::text, 10) = :r "
                                "order by campaign_id, run_id, contact_id", {"r": run_id})
                   if _exists(conn, audience_table)
                   else pd.DataFrame(columns=["campaign_id", "run_id", "contact_id", "arm"]))
        customers = _frame(conn, f"""
            select t.customer_id, t.contact_id, t.purchase_rate, t.alive_at_as_of, t.primary_category,
                   t.utc_offset_h, c.country, c.deleted_at is not null as erased
            from {truth}.customers t join {schema}.customers c using (customer_id)
            order by t.customer_id""")
        # Send times: each message's planned instant (send-time optimised campaigns) and the contact's offset.
        if len(ledger) and _has_column(conn, audience_table, "planned_send_at"):
            planned = _frame(conn, f"select campaign_id::text, run_id::text, contact_id::text, "
                                   f"extract(epoch from planned_send_at)::float8 as planned_ts from {audience_table} "
                                   "where left(run_id::text, 10) = :r and planned_send_at is not null", {"r": run_id})
            ledger = ledger.merge(planned, on=["campaign_id", "run_id", "contact_id"], how="left")
        offsets_by_contact = dict(zip(customers["contact_id"], customers["utc_offset_h"]))
        ledger["utc_offset_h"] = ledger["contact_id"].map(offsets_by_contact).fillna(0).astype(np.int64)
        customers["primary_idx"] = customers["primary_category"].map(
            {c: i for i, c in enumerate(CATEGORY_NAMES)}).astype(int)
        customers["currency"] = customers["country"].map(CURRENCY).fillna("EUR")
        products = _products(conn, schema, truth)

        # Forget what an earlier call for this send date did.
        previous = conn.execute(sa.text(f"select first_order_id from {truth}.response_runs where send_date = :d"),
                                {"d": send_date}).scalar_one_or_none()
        conn.execute(sa.text(f"delete from {schema}.order_items where order_id in "
                             f"(select order_id from {truth}.response_orders where send_date = :d)"), {"d": send_date})
        conn.execute(sa.text(f"delete from {schema}.orders where order_id in "
                             f"(select order_id from {truth}.response_orders where send_date = :d)"), {"d": send_date})
        for table in ("response_orders", "response_days", "response_runs"):
            conn.execute(sa.text(f"delete from {truth}.{table} where send_date = :d"), {"d": send_date})
        conn.execute(sa.text(f"delete from {truth}.campaign_effects where left(run_id, 10) = :r"), {"r": run_id})

        # Ordinary buying on the window's days that no other send's window has covered already.
        taken = set(conn.execute(sa.text(f"select day from {truth}.response_days where day = any(:days)"),
                                 {"days": window}).scalars())
        own_days = [d for d in window if d not in taken]
        rate = np.where(customers["alive_at_as_of"].to_numpy() & ~customers["erased"].to_numpy(),
                        customers["purchase_rate"].to_numpy(dtype=float), 0.0)
        offsets = customers["utc_offset_h"].to_numpy(dtype=np.int64)
        base_idx, base_ts = [], []
        for day in own_days:
            rng = rng_for(seed, _S_BASELINE, epoch_day(day))
            count = rng.poisson(rate * day_intensity(np.asarray([epoch_day(day)]))[0])
            idx = np.repeat(np.arange(len(customers)), count)
            base_idx.append(idx)
            base_ts.append(epoch_day(day) * DAY + time_of_day(rng, offsets[idx]))
        b_idx = np.concatenate(base_idx) if base_idx else np.zeros(0, dtype=np.int64)
        b_ts = np.concatenate(base_ts) if base_ts else np.zeros(0, dtype=np.int64)
        base_orders, base_items = _orders_frame(rng_for(seed, _S_BASELINE_ITEMS, epoch_day(send_date)),
                                                b_idx, b_ts, customers, products, "baseline")

        # Customers who bought in the window anyway (this call's ordinary orders and earlier ones).
        earlier = set(conn.execute(sa.text(
            f"select distinct o.customer_id from {schema}.orders o where o.order_ts >= to_timestamp(:s) "
            f"and o.order_ts < to_timestamp(:e) and not exists (select 1 from {truth}.response_orders r "
            "where r.order_id = o.order_id and r.kind = 'uplift')"), {"s": start, "e": end}).scalars())
        bought = earlier | set(base_orders["customer_id"].tolist())

        # Events and engagement per sent message.
        events, engagement = simulate_events(ledger, send_date=send_date, days=days, seed=seed)
        sent = pd.concat([ledger[["campaign_id", "run_id", "contact_id"]], engagement], axis=1)
        sent = sent.drop_duplicates(["campaign_id", "run_id", "contact_id"])

        effects = members.merge(sent, on=["campaign_id", "run_id", "contact_id"], how="left")
        contact_map = dict(zip(customers["contact_id"], range(len(customers))))
        cidx = effects["contact_id"].map(contact_map)
        effects["customer_idx"] = cidx.fillna(-1).astype(int)
        has_customer = effects["customer_idx"].to_numpy() >= 0
        safe = np.where(has_customer, effects["customer_idx"].to_numpy(), 0)
        window_intensity = float(day_intensity(np.asarray([epoch_day(d) for d in window])).sum())
        baseline_p = np.where(has_customer, 1 - np.exp(-rate[safe] * window_intensity), 0.0)
        received = effects["delivered_ts"].notna().to_numpy()
        opened = effects["open_ts"].notna().to_numpy()
        clicked = effects["click_ts"].notna().to_numpy()
        can_buy = has_customer & ~customers["erased"].to_numpy()[safe]
        treated = (effects["arm"].to_numpy() == "treatment") & received & can_buy
        scales = EFFECT_SCALE if effect_scale is None else effect_scale
        scale = effects["campaign_id"].map(lambda c: scales.get(c, 1.0)).to_numpy(dtype=float)
        uplift = scale * np.where(clicked, UPLIFT_CLICKED, np.where(opened, UPLIFT_OPENED, UPLIFT_RECEIVED))
        treated_p = np.where(treated, np.minimum(baseline_p + uplift, 0.99), baseline_p)

        # The campaign's extra orders: given no ordinary purchase, buy with the probability that lifts
        # the total to treated_p exactly (b + (1 - b) q = t).
        rng = rng_for(seed, _S_UPLIFT, epoch_day(send_date))
        u = rng.random(len(effects))
        q = np.where(treated, (treated_p - baseline_p) / np.maximum(1 - baseline_p, 1e-9), 0.0)
        cust_ids = customers["customer_id"].to_numpy()[safe]
        already = np.asarray([has and int(c) in bought for has, c in zip(has_customer, cust_ids)], dtype=bool)
        converts = treated & ~already & (u < q)
        anchor = np.where(clicked, effects["click_ts"].to_numpy(),
                          np.where(opened, effects["open_ts"].to_numpy(), effects["delivered_ts"].to_numpy()))
        anchor = np.nan_to_num(anchor, nan=float(start + SEND_HOUR * 3600)).astype(np.int64)
        mean_delay = np.where(clicked, 2 * 3600, np.where(opened, 8 * 3600, 36 * 3600))
        ts = anchor + 60 + rng.exponential(1.0, size=len(effects)) * mean_delay
        late = ts >= end  # then some time before the window closes
        ts = np.where(late, anchor + rng.random(len(effects)) * np.maximum(end - anchor - 1, 1), ts).astype(np.int64)
        up_orders, up_items = _orders_frame(rng_for(seed, _S_UPLIFT_ITEMS, epoch_day(send_date)),
                                            effects["customer_idx"].to_numpy()[converts], ts[converts],
                                            customers, products, "uplift")
        up_orders["campaign_id"] = effects["campaign_id"].to_numpy()[converts]
        up_orders["contact_id"] = effects["contact_id"].to_numpy()[converts]

        # Ids: reuse this send date's earlier block when it is still free, so a rerun is identical.
        base_items["src"] = 0
        up_items["src"] = 1
        base_orders["src_idx"], up_orders["src_idx"] = np.arange(len(base_orders)), np.arange(len(up_orders))
        base_orders["src"], up_orders["src"] = 0, 1
        new = pd.concat([base_orders, up_orders], ignore_index=True)
        new = new.sort_values(["order_ts", "customer_id", "src", "src_idx"], kind="stable").reset_index(drop=True)
        n_new = len(new)
        first_id = None
        if previous is not None and n_new:
            clash = conn.execute(sa.text(f"select count(*) from {schema}.orders where order_id between :a and :b"),
                                 {"a": previous, "b": previous + n_new - 1}).scalar_one()
            first_id = previous if clash == 0 else None
        if first_id is None:
            first_id = int(conn.execute(sa.text(f"select coalesce(max(order_id), 0) + 1 from {schema}.orders"))
                           .scalar_one())
        new["order_id"] = np.arange(first_id, first_id + n_new, dtype=np.int64)
        items = pd.concat([base_items, up_items], ignore_index=True)
        id_of = {(s, i): oid for s, i, oid in zip(new["src"], new["src_idx"], new["order_id"])}
        items["order_id"] = [id_of[(s, i)] for s, i in zip(items["src"], items["order_idx"])]
        items = items.sort_values(["order_id", "line_no"]).reset_index(drop=True)
        ts_of = dict(zip(new["order_id"], new["order_ts"]))
        items["updated_at"] = items["order_id"].map(ts_of)
        totals = (items["quantity"] * items["unit_price_cents"]).groupby(items["order_id"]).sum()
        new["total_cents"] = new["order_id"].map(totals).fillna(0).astype(np.int64)

        load(conn, f"{schema}.orders",
             ("order_id", "customer_id", "order_ts", "status", "currency", "total_amount", "coupon_code",
              "updated_at"),
             (new["order_id"], new["customer_id"], iso(new["order_ts"]), new["status"], new["currency"],
              amount_text(new["total_cents"]), [None] * n_new, iso(new["order_ts"])))
        load(conn, f"{schema}.order_items",
             ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
             (items["order_id"], items["line_no"], items["product_id"], items["quantity"],
              money(items["unit_price_cents"]), iso(items["updated_at"])))
        load(conn, f"{truth}.response_orders", ("order_id", "send_date", "kind", "campaign_id", "contact_id"),
             (new["order_id"], [send_date] * n_new, new["kind"], new.get("campaign_id", [None] * n_new),
              new.get("contact_id", [None] * n_new)))
        load(conn, f"{truth}.response_days", ("day", "send_date"), (own_days, [send_date] * len(own_days)))
        conn.execute(sa.text(f"insert into {truth}.response_runs (send_date, days, seed, first_order_id, orders) "
                             "values (:d, :n, :s, :f, :o)"),
                     {"d": send_date, "n": days, "s": seed, "f": first_id, "o": n_new})
        load(conn, f"{truth}.campaign_effects",
             ("campaign_id", "run_id", "contact_id", "arm", "customer_id", "received", "opened", "clicked",
              "baseline_p", "treated_p", "expected_order_value"),
             (effects["campaign_id"], effects["run_id"], effects["contact_id"], effects["arm"],
              pd.Series(np.where(has_customer, cust_ids, 0)).where(has_customer).astype("Int64"),
              received, opened, clicked, baseline_p, treated_p,
              _expected_order_value(products, seed)[customers["primary_idx"].to_numpy()[safe]]))

        buyers = bought | set(up_orders["customer_id"].tolist())
        is_buyer = np.asarray([has and int(c) in buyers for has, c in zip(has_customer, cust_ids)], dtype=bool)
        arm = effects["arm"].to_numpy()
        event_counts = pd.Series([e["event"] for e in events], dtype=object).value_counts().to_dict()
        summary: dict[str, Any] = dict(
            messages=len(ledger), events={str(k): int(v) for k, v in sorted(event_counts.items())},
            orders_added=n_new, baseline_orders=len(base_orders), uplift_orders=len(up_orders),
            treated=int((arm == "treatment").sum()), holdout=int((arm == "holdout").sum()),
            treated_buyers=int((is_buyer & (arm == "treatment")).sum()),
            holdout_buyers=int((is_buyer & (arm == "holdout")).sum()),
        )
        conn.execute(sa.text(f"delete from {truth}.runs where kind = 'responses' and as_of = :d"), {"d": send_date})
        conn.execute(sa.text(f"insert into {truth}.runs (kind, as_of, seed, params, counts) values "
                             "('responses', :d, :s, cast(:p as jsonb), cast(:c as jsonb))"),
                     {"d": send_date, "s": seed, "p": json.dumps({"days": days, "schema": schema}),
                      "c": json.dumps(summary, sort_keys=True)})

    if post_events is not None:
        post_events(events)
        files: list[Path] = []
    else:
        files = write_event_files(Path(landing_dir) / "email_events", events, send_date=send_date, days=days,
                                  run_id=run_id)
    return ResponseSummary(send_date=send_date, days=days, run_id=run_id, files=tuple(str(p) for p in files),
                           posted=post_events is not None, seconds=time.perf_counter() - t0, **summary)
