"""The abandoned cart as an hourly micro-batch, hour by hour against a real PostgreSQL.

The shop's tables change as the hours pass (a cart is left, later bought); every run pulls them up to its
hour, snapshots the three steps and sends through the ledger into an outbox. What must hold: each step
reaches each cart once and at the right hour, buying ends the series, and reruns, overlapping runs and a
missed hour send nothing twice (counted in the outbox and the ledger).
"""

from __future__ import annotations

import datetime as dt
import email
from collections import Counter
from email import policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from martech.campaigns import hourly, runner
from martech.campaigns.audience import assign_arm
from martech.campaigns.freshness import record_suppression_refresh
from martech.campaigns.spec import load_campaigns
from martech.campaigns.transports import OutboxTransport
from martech.runs import Run
from martech.warehouse import Warehouse

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
SPEC = {s.id: s for s in load_campaigns()}["abandoned_cart"]
DAY = dt.date(2026, 11, 2)

SHOP_DDL = """
create schema if not exists shop;
create table shop.carts (cart_id bigint primary key, customer_id bigint, status text, order_id bigint,
    currency text, created_at timestamptz, updated_at timestamptz);
create table shop.cart_items (cart_id bigint, line_no integer, product_id bigint, quantity integer,
    unit_price numeric(12, 2), updated_at timestamptz, primary key (cart_id, line_no));
create table shop.orders (order_id bigint primary key, customer_id bigint, order_ts timestamptz, status text,
    currency text, total_amount numeric(12, 2), coupon_code text, updated_at timestamptz);
create table if not exists staging.contacts (contact_id text primary key, email text, first_name text,
    consent_status text, customer_id bigint, timezone text);
create table if not exists staging.products (product_id bigint primary key, sku text, name text, category text,
    price numeric(12, 2), image_url text);
insert into staging.products values (1, 'T1', 'Green tea', 'Tea', 4.5, 'https://img.example/1.png'),
    (2, 'K1', 'Kettle', 'Kitchen', 39, null);
"""


def at(day_offset: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(DAY + dt.timedelta(days=day_offset), dt.time(hour, minute), tzinfo=UTC)


def treated_ids(n: int) -> list[str]:
    """Contact ids the campaign's hash puts in the treatment arm (the holdout is never mailed)."""
    ids = [f"k{i}" for i in range(200) if assign_arm(SPEC.id, SPEC.salt, f"k{i}", SPEC.holdout_share) == "treatment"]
    return ids[:n]


class Shop:
    """The shop's operational tables, changed as time passes, plus the campaign's hourly runs."""

    def __init__(self, engine: Engine, warehouse: Warehouse, outbox: Path) -> None:
        self.engine, self.warehouse, self.outbox = engine, warehouse, outbox

    def contact(self, contact_id: str, customer_id: int, tz: str = "UTC") -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text("insert into staging.contacts values (:c, :e, :f, 'opted_in', :i, :tz)"),
                         {"c": contact_id, "e": f"{contact_id}@example.com", "f": contact_id.upper(), "i": customer_id,
                          "tz": tz})

    def cart(self, cart_id: int, customer_id: int, status: str, when: dt.datetime, order_id: int | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(
                "insert into shop.carts values (:i, :c, :s, :o, 'EUR', :t, :t) on conflict (cart_id) do update"
                " set status = excluded.status, order_id = excluded.order_id, updated_at = excluded.updated_at"),
                {"i": cart_id, "c": customer_id, "s": status, "o": order_id, "t": when})
            conn.execute(sa.text("insert into shop.cart_items values (:i, 1, 1, 2, 4.5, :t), (:i, 2, 2, 1, 39, :t)"
                                 " on conflict do nothing"), {"i": cart_id, "t": when})

    def order(self, order_id: int, customer_id: int, when: dt.datetime, status: str = "completed") -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text("insert into shop.orders values (:o, :c, :t, :s, 'EUR', 48, null, :t)"),
                         {"o": order_id, "c": customer_id, "t": when, "s": status})

    def run(self, when: dt.datetime, *, gate: bool = False) -> dict[str, Any]:
        """One hourly DAG run's tasks, in order (the gate is slow with Great Expectations: on request)."""
        run = Run.hour(when)
        hourly.refresh_shop(self.warehouse, run)
        built = runner.build_audience(self.warehouse, SPEC.id, run)
        if gate:
            runner.validate_audience(self.warehouse, SPEC.id, run)
        runner.dispatch(self.warehouse, SPEC.id, run, when, transport=OutboxTransport(self.outbox))
        return built

    def sends(self) -> list[tuple[str, int, str]]:
        """(run id, step, contact id) of every ledger row sent."""
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(  # type: ignore[misc]
                "select run_id, step, contact_id from campaigns.send_ledger where status = 'sent'"
                " order by run_id, contact_id"))]

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
                for p in sorted((self.outbox / SPEC.id).rglob("*.eml"))]


@pytest.fixture()
def shop(clean_warehouse: Engine, warehouse: Warehouse, tmp_path: Path) -> Shop:
    with clean_warehouse.begin() as conn:
        conn.exec_driver_sql(SHOP_DDL)
        # The daily email-events stage ran every day of the test's week: the freshness gate lets the hours send.
        for offset in range(7):
            record_suppression_refresh(conn, DAY + dt.timedelta(days=offset), 0, at(offset, 0))
    return Shop(clean_warehouse, warehouse, tmp_path / "outbox")


def test_each_step_reaches_each_cart_once_at_its_hour_and_buying_ends_the_series(shop: Shop) -> None:
    keeps, buys = treated_ids(2)
    shop.contact(keeps, 1)
    shop.contact(buys, 2)
    shop.run(at(0, 10))  # nothing abandoned yet
    shop.cart(1, 1, "abandoned", at(0, 10, 5))
    shop.cart(2, 2, "abandoned", at(0, 10, 20))
    shop.run(at(0, 10))  # a rerun of 10:00 still does not see carts changed after 10:00
    assert shop.sends() == []

    shop.run(at(0, 11))  # the first hourly run after the abandonment
    shop.run(at(0, 11))  # rerun of the same hour
    shop.run(at(0, 12))  # the next hour sees the same carts: step 1 is already decided
    assert shop.sends() == [("2026-11-02T11", 1, keeps), ("2026-11-02T11", 1, buys)]

    shop.cart(2, 2, "converted", at(0, 15, 30), order_id=9)  # bought five hours later
    shop.order(9, 2, at(0, 15, 30))
    for hour in range(13, 17):
        shop.run(at(0, hour))
    shop.run(at(1, 10))
    assert len(shop.sends()) == 2  # step 2 is due at 11:00 the next day, not before

    built = shop.run(at(1, 11))  # 24 hours after the first run: the coupon
    shop.run(at(1, 11))
    shop.run(at(1, 12))
    assert built["steps"]["2"]["members"] == 1 and built["steps"]["2"]["exclusions"] == {"converted": 1}
    with shop.engine.connect() as conn:
        exits = conn.execute(sa.text("select run_id, contact_id, reason, detail, step, series_key"
                                     " from audiences.exclusions order by run_id")).all()
    assert [tuple(e) for e in exits] == [
        ("2026-11-03T11.step2", buys, "converted", "cart 2 converted at 2026-11-02T15:30Z (order 9)", 2, "2")]

    for day, hour in ((3, 10), (3, 11), (3, 11), (3, 12), (3, 13)):
        shop.run(at(day, hour))

    sent = shop.sends()
    assert sent == [("2026-11-02T11", 1, keeps), ("2026-11-02T11", 1, buys),
                    ("2026-11-03T11.step2", 2, keeps), ("2026-11-05T11.step3", 3, keeps)]
    messages = shop.messages()
    assert len(messages) == 4  # the outbox agrees: one file per send, nothing written twice
    by_step = Counter((m["X-Martech-Step"], m["X-Martech-Contact-Id"]) for m in messages)
    assert by_step == {("1", keeps): 1, ("1", buys): 1, ("2", keeps): 1, ("3", keeps): 1}
    coupon_mail = next(m for m in messages if m["X-Martech-Step"] == "2")
    text = coupon_mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "CART-" in text and "2 x Green tea" in text and "10% off" in str(coupon_mail["Subject"])
    with shop.engine.connect() as conn:
        coupons = conn.execute(sa.text("select c.send_id = l.send_id from campaigns.coupons as c join"
                                       " campaigns.send_ledger as l using (campaign_id, run_id, contact_id)"
                                       " where l.step = 2")).scalars().all()
        series = conn.execute(sa.text("select run_id, step, series_key from audiences.audience_members"
                                      " where contact_id = :c order by run_id"), {"c": keeps}).all()
    assert coupons == [True]  # the step's coupon belongs to the step's send
    assert [tuple(r) for r in series] == [("2026-11-02T11", 1, "1"), ("2026-11-03T11.step2", 2, "1"),
                                          ("2026-11-05T11.step3", 3, "1")]


def test_a_missed_hour_is_caught_up_once_and_a_late_run_of_it_sends_nothing(shop: Shop) -> None:
    (cid,) = treated_ids(1)
    shop.contact(cid, 3)
    shop.cart(3, 3, "abandoned", at(0, 13, 10))
    # The scheduler missed 14:00: the 15:00 run catches the step up.
    shop.run(at(0, 15))
    shop.run(at(0, 15))
    shop.run(at(0, 14))  # the missed hour, run late by hand: already decided by 15:00
    shop.run(at(0, 16))
    assert shop.sends() == [("2026-11-02T15", 1, cid)]
    assert len(shop.messages()) == 1
    with shop.engine.connect() as conn:
        late = conn.execute(sa.text("select candidates, members from audiences.snapshots"
                                    " where run_id = '2026-11-02T14'")).one()
    assert tuple(late) == (0, 0)


def test_a_step_later_than_catch_up_hours_is_dropped_as_stale(shop: Shop) -> None:
    (cid,) = treated_ids(1)
    shop.contact(cid, 4)
    shop.cart(4, 4, "abandoned", at(0, 1, 30))
    shop.run(at(0, 2 + SPEC.catch_up_hours))  # the reminder was due at 02:00; the window closed before this
    assert shop.sends() == []
    shop.run(at(0, 1 + SPEC.catch_up_hours))  # the last hour that may still send it
    assert shop.sends() == [(f"2026-11-02T{1 + SPEC.catch_up_hours:02d}", 1, cid)]


def test_an_order_without_cart_conversion_also_ends_the_series(shop: Shop) -> None:
    (cid,) = treated_ids(1)
    shop.contact(cid, 5)
    shop.cart(5, 5, "abandoned", at(0, 9, 0))
    shop.order(20, 5, at(0, 9, 40), status="cancelled")  # a cancelled order does not count
    shop.run(at(0, 10))
    shop.order(21, 5, at(0, 12, 0))
    shop.run(at(1, 10))
    assert shop.sends() == [("2026-11-02T10", 1, cid)]
    with shop.engine.connect() as conn:
        exits = conn.execute(sa.text("select reason, detail from audiences.exclusions")).all()
    assert [tuple(e) for e in exits] == [("converted", "order 21 at 2026-11-02T12:00Z")]


def test_a_cart_untouched_for_an_hour_counts_as_abandoned(shop: Shop) -> None:
    (cid,) = treated_ids(1)
    shop.contact(cid, 6)
    shop.cart(6, 6, "open", at(0, 10, 5))  # a shop whose status change does not move updated_at
    shop.run(at(0, 11))  # 55 minutes idle: still shopping
    assert shop.sends() == []
    shop.run(at(0, 12))
    assert shop.sends() == [("2026-11-02T12", 1, cid)]


def test_quiet_hours_follow_the_contacts_clock_at_the_runs_hour(shop: Shop) -> None:
    early, late = treated_ids(2)
    shop.contact(early, 7, tz="Asia/Tokyo")
    shop.contact(late, 8, tz="Asia/Tokyo")
    shop.cart(7, 7, "abandoned", at(0, 14, 5))  # 23:05 in Tokyo
    shop.run(at(0, 15))  # midnight in Tokyo: outside 08:00-21:00, scheduled for 08:00 Tokyo time
    shop.cart(8, 8, "abandoned", at(0, 22, 5))
    shop.run(at(0, 23))  # 08:00 on 3 November in Tokyo, inside that day's window: goes at once
    by_contact = {m["X-Martech-Contact-Id"]: m for m in shop.messages()}
    assert by_contact[early]["X-Martech-Send-At"] == "Mon, 02 Nov 2026 23:00:00 +0000"
    assert by_contact[late]["X-Martech-Send-At"] is None


def test_gate_compares_an_hourly_arm_with_the_same_hour_on_earlier_days(shop: Shop) -> None:
    ids = treated_ids(3)
    assert runner.peer_run_ids("2026-11-03T11.step2", days=2) == ["2026-11-02T11.step2", "2026-11-01T11.step2"]
    for i, cid in enumerate(ids):
        shop.contact(cid, 10 + i)
        shop.cart(10 + i, 10 + i, "abandoned", at(0, 10, 5 + i))
    shop.run(at(0, 11), gate=True)  # three members where earlier days had none: within the hourly floor
    assert len(shop.sends()) == 3
    with shop.engine.connect() as conn:
        checks = conn.execute(sa.text("select count(*) from kpis.data_quality"
                                      " where run_id like 'audience:abandoned_cart:2026-11-02T11%%'")).scalar_one()
    assert checks > 0
