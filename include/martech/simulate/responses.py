"""The recipients of a campaign run react: email events and the orders that follow.

Every living customer keeps buying through the window (so holdout members and people outside the
audience convert too); treatment members who received the mail get a true uplift on top, recorded in
``sim_truth.campaign_effects``. Deterministic per (seed, send_date), and idempotent: a second call
replaces what the first one generated.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from martech.db import copy_rows
from martech.simulate.shop import CATEGORIES, DAY, PRODUCTS_PER_CATEGORY, UTC, make_order_lines

UPLIFT_RECEIVED = 0.04   # extra probability of an order in the window for a delivered mail
UPLIFT_CLICKED = 0.08    # further extra for a click
ORDER_ID_BASE = 1_000_000_000


@dataclass(frozen=True)
class ResponseSummary:
    send_date: dt.date
    sent: int
    treatment: int
    holdout: int
    events: dict[str, int] = field(default_factory=dict)
    orders_added: int = 0
    files: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        ev = ", ".join(f"{k} {v:,}" for k, v in sorted(self.events.items()))
        return [f"{self.sent:,} mails sent ({self.treatment:,} treatment, {self.holdout:,} holdout members)",
                f"events: {ev or 'none'}",
                f"{self.orders_added:,} orders placed during the window, in {len(self.files)} event files"]


def play_responses(engine: Engine, landing_dir: Path, *, send_date: dt.date, days: int = 7, seed: int = 42,
                   schema: str = "shop") -> ResponseSummary:
    run_id = send_date.isoformat()
    rng = np.random.default_rng([seed, zlib.crc32(run_id.encode())])
    start = dt.datetime.combine(send_date, dt.time(0), UTC).timestamp()
    with engine.begin() as conn:
        sends = conn.execute(sa.text(
            "select l.send_id, l.campaign_id, l.contact_id, l.email, l.message_id"
            " from campaigns.send_ledger l where l.run_id = :r and l.status = 'sent'"
            " order by l.campaign_id, l.contact_id"), {"r": run_id}).all()
        members = conn.execute(sa.text(
            "select m.campaign_id, m.contact_id, m.arm, c.customer_id from audiences.audience_members m"
            " left join sim_truth.contacts c on c.contact_id = m.contact_id where m.run_id = :r"
            " order by m.campaign_id, m.contact_id"), {"r": run_id}).all()
        customers = conn.execute(sa.text(
            "select customer_id, purchase_rate, alive_at_as_of, favourite_category from sim_truth.customers"
            " order by customer_id")).all()
        country: dict[int, str] = dict(
            conn.execute(sa.text(f"select customer_id, country from {schema}.customers")).all())
        prices = np.array([float(p) for (p,) in conn.execute(sa.text(
            f"select price from {schema}.products order by product_id"))])

    # Email events per sent message.
    events: list[dict] = []
    counts: dict[str, int] = {}
    clicked: set[str] = set()
    received: set[str] = set()
    for send_id, campaign_id, contact_id, email, message_id in sends:
        t = start + 9 * 3600 + rng.uniform(0, 600)
        custom = {"send_id": send_id, "campaign_id": campaign_id, "run_id": run_id, "contact_id": contact_id}

        def emit(kind: str, when: float, email: str = email, send_id: str = send_id,
                 message_id: str = message_id, custom: dict = custom, **extra: str) -> None:
            events.append({"email": email, "timestamp": int(when), "event": kind,
                           "sg_event_id": f"ev-{send_id}-{kind}-{len(events)}",
                           "sg_message_id": message_id, **extra, **custom})
            counts[kind] = counts.get(kind, 0) + 1

        emit("processed", t)
        u = rng.random()
        if u < 0.015:
            emit("bounce", t + 30)
            continue
        emit("delivered", t + 20)
        received.add(contact_id)
        if rng.random() < 0.35:
            t_open = t + rng.exponential(6 * 3600)
            if t_open < start + days * DAY:
                emit("open", t_open)
                if rng.random() < 0.25:
                    emit("click", t_open + 60, url="https://shop.example/?utm_campaign=" + campaign_id)
                    clicked.add(contact_id)
                if rng.random() < 0.005:
                    emit("unsubscribe", t_open + 120)

    folder = landing_dir / "email_events"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("events_*.jsonl"):
        # Files this function wrote earlier for the same window are rewritten below.
        if old.stem.removeprefix("events_") in {f"{send_date + dt.timedelta(days=d):%Y%m%d}" for d in range(days)}:
            old.unlink()
    by_day: dict[str, list[str]] = {}
    for ev in sorted(events, key=lambda e: (e["timestamp"], e["sg_event_id"])):
        day = dt.datetime.fromtimestamp(ev["timestamp"], UTC).strftime("%Y%m%d")
        by_day.setdefault(day, []).append(json.dumps(ev, sort_keys=True))
    files = []
    for day, lines in sorted(by_day.items()):
        path = folder / f"events_{day}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(path.name)

    # Orders during the window: everyone's baseline, plus the treatment effect.
    ids = np.array([c[0] for c in customers], dtype=np.int64)
    rate = np.array([c[1] for c in customers])
    alive = np.array([c[2] for c in customers], dtype=bool)
    fav = np.array([CATEGORIES.index(c[3]) for c in customers])
    base_p = np.where(alive, 1 - np.exp(-rate * days), 0.0)
    extra = np.zeros(len(ids))
    index_of = {int(c): i for i, c in enumerate(ids)}
    effects = []
    for campaign_id, contact_id, arm, customer_id in members:
        if customer_id is None:
            continue
        i = index_of[int(customer_id)]
        bump = 0.0
        if arm == "treatment" and contact_id in received:
            bump = UPLIFT_RECEIVED + (UPLIFT_CLICKED if contact_id in clicked else 0.0)
        extra[i] = max(extra[i], bump)
        effects.append((campaign_id, run_id, contact_id, arm, float(base_p[i]),
                        float(min(1.0, base_p[i] + bump))))
    p = np.minimum(1.0, base_p + extra)
    buyers = np.flatnonzero(rng.random(len(ids)) < p)
    when = start + rng.uniform(0, days * DAY, len(buyers))
    order_sort = np.argsort(when, kind="stable")
    buyers, when = buyers[order_sort], when[order_sort]
    product_ids = np.arange(1, len(prices) + 1)
    cats = np.repeat(np.arange(len(CATEGORIES)), PRODUCTS_PER_CATEGORY)
    line_order, line_no, line_product, qty, unit = make_order_lines(rng, fav, buyers, product_ids, cats, prices)
    totals = np.bincount(line_order, weights=qty * unit, minlength=len(buyers))
    base_id = ORDER_ID_BASE + (send_date.toordinal() % 10_000) * 1_000_000
    iso = [dt.datetime.fromtimestamp(float(s), UTC).isoformat(timespec="seconds") for s in when]
    currency = {"GB": "GBP", "US": "USD"}
    with engine.begin() as conn:
        previous = [r[0] for r in conn.execute(sa.text(
            "select order_id from sim_truth.generated_orders where send_date = :d"), {"d": send_date})]
        if previous:
            conn.execute(sa.text(f"delete from {schema}.order_items where order_id = any(:ids)"), {"ids": previous})
            conn.execute(sa.text(f"delete from {schema}.orders where order_id = any(:ids)"), {"ids": previous})
            conn.execute(sa.text("delete from sim_truth.generated_orders where send_date = :d"), {"d": send_date})
        conn.execute(sa.text("delete from sim_truth.campaign_effects where run_id = :r"), {"r": run_id})
        copy_rows(conn, f"{schema}.orders",
                  ("order_id", "customer_id", "order_ts", "status", "currency", "total_amount", "coupon_code",
                   "updated_at"),
                  [(base_id + k, int(ids[b]), iso[k], "completed", currency.get(country.get(int(ids[b]), ""), "EUR"),
                    f"{totals[k]:.2f}", None, iso[k]) for k, b in enumerate(buyers)])
        copy_rows(conn, f"{schema}.order_items",
                  ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
                  [(base_id + int(o), int(ln), int(pid), int(q), f"{u:.2f}", iso[o])
                   for o, ln, pid, q, u in zip(line_order, line_no, line_product, qty, unit)])
        copy_rows(conn, "sim_truth.generated_orders", ("send_date", "order_id"),
                  [(send_date, base_id + k) for k in range(len(buyers))])
        copy_rows(conn, "sim_truth.campaign_effects",
                  ("campaign_id", "run_id", "contact_id", "arm", "baseline_p", "treated_p"), effects)
    arms = [m[2] for m in members]
    return ResponseSummary(send_date=send_date, sent=len(sends), treatment=arms.count("treatment"),
                           holdout=arms.count("holdout"), events=counts, orders_added=len(buyers),
                           files=tuple(files))
