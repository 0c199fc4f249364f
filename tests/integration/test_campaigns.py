"""Campaign snapshots and dispatch against a real PostgreSQL.

The source tables (staging.*, marts.*) are built by other stages; here they are minimal fixtures with
exactly the contracted columns. They live in a database of this module's own, beside the session
database, so they cannot collide with the real staging/marts tables other integration tests build.
"""

from __future__ import annotations

import email
import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from email import policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from martech.campaigns.audience import AudienceSqlError, assign_arm, assign_variant, build_snapshot
from martech.campaigns.dispatch import DispatchIncompleteError, dispatch, make_send_id
from martech.campaigns.render import Recipient, render_message
from martech.campaigns.spec import CampaignSpec, load_campaign, load_campaigns
from martech.campaigns.suppressions import Suppression, add_suppressions
from martech.campaigns.transports import BaseTransport, OutboundMessage, OutboxTransport

pytestmark = pytest.mark.integration

NOW = datetime(2024, 6, 1, 9, 0, tzinfo=timezone.utc)
SPECS = {s.id: s for s in load_campaigns()}

SOURCE_DDL = """
create schema if not exists staging;
create schema if not exists marts;
create table staging.contacts (
    contact_id text primary key, email text, first_name text, last_name text, birthday date, country text,
    timezone text, consent_status text, lifecycle_status text, customer_id bigint,
    created_at timestamptz, updated_at timestamptz, lead_source text);
create table staging.orders (
    order_id bigint, customer_id bigint, order_ts timestamptz, status text, currency text,
    total_amount numeric, net_amount numeric, coupon_code text);
create table staging.order_items (
    order_id bigint, line_no int, product_id bigint, quantity int, unit_price numeric, line_amount numeric);
create table staging.products (
    product_id bigint, sku text, name text, category text, price numeric, image_url text);
create table staging.email_events (
    event_id text, event text, event_ts timestamptz, email text, message_id text, url text, send_id text,
    campaign_id text, run_id text, contact_id text, machine_open boolean not null default false);
create table marts.product_affinity (
    level text, antecedent text, consequent text, pair_count int, support numeric, confidence numeric,
    lift numeric);
"""
TABLES = ("staging.contacts", "staging.email_events", "staging.orders", "staging.order_items", "staging.products",
          "marts.customer_rfm", "marts.lead_scores", "marts.clv_predictions", "marts.product_affinity",
          "marts.recommendations", "audiences.audience_members",
          "campaigns.send_ledger", "campaigns.suppressions")


@pytest.fixture(scope="module")
def wh(module_warehouse) -> Engine:
    return module_warehouse.create(SOURCE_DDL)


@pytest.fixture()
def db(wh: Engine, module_warehouse) -> Engine:
    return module_warehouse.truncate(TABLES)


def insert(engine: Engine, table: str, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        columns = list(rows[0])
        with engine.begin() as conn:
            conn.execute(
                sa.text(f"insert into {table} ({', '.join(columns)}) "
                        f"values ({', '.join(':' + c for c in columns)})"),
                [dict(r) for r in rows],
            )


def contact(contact_id: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "contact_id": contact_id, "email": f"{contact_id}@example.com", "first_name": contact_id.upper(),
        "last_name": "Test", "birthday": None, "country": "DE", "timezone": "Europe/Berlin",
        "consent_status": "opted_in", "lifecycle_status": "customer", "customer_id": None,
        "created_at": NOW, "updated_at": NOW,
    }
    row.update(fields)
    return row


def render_all(spec: CampaignSpec, rows: list[dict[str, Any]]) -> None:
    """The snapshot's columns are exactly what the campaign's templates need."""
    for r in rows:
        recipient = Recipient(contact_id=r["contact_id"], email=r["email"], first_name=r["first_name"],
                              attributes=r["attributes"], send_id="test")
        message = render_message(spec, r["variant"], recipient)
        assert message.subject and "sid=test" in message.html


def members(engine: Engine, campaign_id: str, run_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "select * from audiences.audience_members where campaign_id = :c and run_id = :r "
            "order by contact_id"), {"c": campaign_id, "r": run_id}).mappings()]


def suppress(engine: Engine, email_address: str, contact_id: str | None = None) -> None:
    with engine.begin() as conn:
        add_suppressions(conn, [Suppression(email=email_address, contact_id=contact_id,
                                            reason="unsubscribe", source="test", created_at=NOW)])


# -- birthday ------------------------------------------------------------------------------------------


@pytest.fixture()
def birthday_contacts(db: Engine) -> Engine:
    insert(db, "staging.contacts", [
        contact("b1", birthday=date(1990, 2, 28)),
        contact("b2", birthday=date(1992, 2, 29), consent_status="double_opt_in", lifecycle_status="lead"),
        contact("b3", birthday=date(1985, 2, 28), consent_status="opted_out"),
        contact("b4", birthday=date(1980, 2, 28), consent_status="unknown"),
        contact("b5", birthday=date(1991, 2, 28)),  # suppressed by email
        contact("b6", birthday=date(1991, 2, 28)),  # suppressed by contact id, under an older address
        contact("b7", birthday=date(1991, 2, 28), email=None),
        contact("b8", birthday=date(1991, 3, 1)),
        contact("b9"),
        contact("b10", birthday=date(1993, 2, 28), email=""),
    ])
    suppress(db, " B5@Example.com ")
    suppress(db, "old-b6@example.com", contact_id="b6")
    return db


def test_birthday_non_leap_year_includes_29_february(birthday_contacts: Engine) -> None:
    summary = build_snapshot(birthday_contacts, SPECS["birthday"], date(2023, 2, 28))
    rows = members(birthday_contacts, "birthday", "2023-02-28")
    assert [r["contact_id"] for r in rows] == ["b1", "b2"]
    render_all(SPECS["birthday"], rows)
    assert summary.members == 2 and summary.treatment + summary.holdout == 2
    # Members of a campaign with a coupon also carry theirs (see tests/integration/test_eligibility.py).
    coupons = [r["attributes"].pop("coupon") for r in rows]
    assert [c["code"][:5] for c in coupons] == ["BDAY-", "BDAY-"]
    assert rows[0]["attributes"] == {"is_customer": True}
    assert rows[1]["attributes"] == {"is_customer": False}
    spec = SPECS["birthday"]
    for r in rows:
        assert r["arm"] == assign_arm("birthday", spec.salt, r["contact_id"], spec.holdout_share)
        assert r["variant"] == assign_variant("birthday", spec.salt, r["contact_id"], spec.variants)
        assert r["definition_hash"] == spec.definition_hash
        assert r["run_date"] == date(2023, 2, 28)


def test_birthday_leap_year_keeps_29_february_for_its_own_day(birthday_contacts: Engine) -> None:
    build_snapshot(birthday_contacts, SPECS["birthday"], date(2024, 2, 28))
    build_snapshot(birthday_contacts, SPECS["birthday"], "2024-02-29")
    assert [r["contact_id"] for r in members(birthday_contacts, "birthday", "2024-02-28")] == ["b1"]
    assert [r["contact_id"] for r in members(birthday_contacts, "birthday", "2024-02-29")] == ["b2"]


def test_rerun_replaces_the_run_with_identical_rows(birthday_contacts: Engine) -> None:
    build_snapshot(birthday_contacts, SPECS["birthday"], date(2023, 2, 28))
    first = members(birthday_contacts, "birthday", "2023-02-28")
    build_snapshot(birthday_contacts, SPECS["birthday"], date(2023, 2, 28))
    assert members(birthday_contacts, "birthday", "2023-02-28") == first
    # A contact who opts out before the rerun drops out of the replaced snapshot.
    with birthday_contacts.begin() as conn:
        conn.execute(sa.text("update staging.contacts set consent_status = 'opted_out' where contact_id = 'b1'"))
    assert build_snapshot(birthday_contacts, SPECS["birthday"], date(2023, 2, 28)).members == 1


def custom_campaign(folder: Path, sql: str) -> CampaignSpec:
    (folder / "audiences").mkdir(parents=True, exist_ok=True)
    (folder / "audiences" / "custom.sql").write_text(sql)
    (folder / "custom.yml").write_text(
        "id: custom\nname: Custom\nowner: test\ndescription: test\nschedule: '0 8 * * *'\n"
        "audience_sql: audiences/custom.sql\ntemplate: birthday\nholdout_share: 0\n"
        "variants: [{id: a, weight: 1, subject: 'Hi'}]\n"
    )
    return load_campaign(folder / "custom.yml")


def test_snapshot_keeps_one_contact_per_email_address(db: Engine, tmp_path: Path) -> None:
    insert(db, "staging.contacts", [contact("d1", email="same@example.com"), contact("d2", email="same@example.com"),
                                    contact("d3")])
    spec = custom_campaign(tmp_path, "select contact_id, email, first_name from staging.contacts")
    summary = build_snapshot(db, spec, date(2024, 6, 1))
    assert (summary.members, summary.duplicate_emails_dropped, summary.treatment) == (2, 1, 2)
    assert [r["contact_id"] for r in members(db, "custom", "2024-06-01")] == ["d1", "d3"]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("select contact_id, email from staging.contacts", "it lacks first_name"),
        ("select contact_id, email, first_name, email as send_id from staging.contacts", "rename"),
        ("select c.contact_id, c.email, c.first_name from staging.contacts as c "
         "cross join (values (1), (2)) as v (n)", "is returned more than once"),
        ("select contact_id, email, first_name from no_such_table", "the audience query failed"),
    ],
)
def test_snapshot_rejects_broken_audience_sql(db: Engine, tmp_path: Path, sql: str, message: str) -> None:
    insert(db, "staging.contacts", [contact("e1")])
    spec = custom_campaign(tmp_path, sql)
    with pytest.raises(AudienceSqlError, match=message) as info:
        build_snapshot(db, spec, date(2024, 6, 1))
    assert "custom.sql" in str(info.value)


# -- winback -------------------------------------------------------------------------------------------


def rfm(as_of: date, customer_id: int, monetary: float, segment: str) -> dict[str, Any]:
    return {"as_of_date": as_of, "customer_id": customer_id, "recency_days": 200, "frequency": 3,
            "monetary": monetary, "r_score": 1, "f_score": 3, "m_score": 4, "rfm_score": "134",
            "segment": segment, "first_order_at": NOW, "last_order_at": NOW}


def order(order_id: int, customer_id: int, ts: datetime, status: str = "completed") -> dict[str, Any]:
    return {"order_id": order_id, "customer_id": customer_id, "order_ts": ts, "status": status,
            "currency": "EUR", "total_amount": 100, "net_amount": 100 if status == "completed" else 0,
            "coupon_code": None}


def item(order_id: int, line_no: int, product_id: int, quantity: int = 1, amount: float = 10) -> dict[str, Any]:
    return {"order_id": order_id, "line_no": line_no, "product_id": product_id, "quantity": quantity,
            "unit_price": amount, "line_amount": amount * quantity}


PRODUCTS = [
    {"product_id": pid, "sku": f"SKU{pid}", "name": f"{cat} {pid}", "category": cat, "price": price,
     "image_url": f"https://img.example/{pid}.png"}
    for pid, cat, price in [
        (1, "Shoes", 80), (2, "Shoes", 60), (3, "Socks", 5), (4, "Hats", 20), (5, "Hats", 25.5),
        (6, "Hats", 30), (7, "Hats", 35), (8, "Bags", 40), (9, "Gloves", 15),
    ]
]


def ts(day: str) -> datetime:
    return datetime.fromisoformat(day + "T12:00:00+00:00")


def test_winback_targets_lapsed_valuable_customers(db: Engine) -> None:
    d_old, d_cur, d_future = date(2024, 5, 1), date(2024, 5, 31), date(2024, 6, 2)
    insert(db, "marts.customer_rfm", [
        rfm(d_cur, 1, 500, "At Risk"),
        rfm(d_cur, 2, 1000, "Can't Lose Them"),
        rfm(d_cur, 3, 10, "Hibernating"),          # below the median (450)
        rfm(d_cur, 4, 2000, "Champions"),
        rfm(d_old, 5, 300, "At Risk"), rfm(d_cur, 5, 300, "Champions"),        # recovered since
        rfm(d_cur, 6, 400, "Champions"), rfm(d_future, 6, 4000, "At Risk"),    # after the run date
    ])
    insert(db, "staging.contacts", [contact(f"w{i}", customer_id=i) for i in range(1, 7)])
    insert(db, "staging.products", PRODUCTS)
    insert(db, "staging.orders", [
        order(10, 1, ts("2024-03-01")), order(11, 1, ts("2024-04-01"), "refunded"),
        order(12, 1, ts("2024-06-05")),
    ])
    insert(db, "staging.order_items", [
        item(10, 1, 3, amount=10), item(10, 2, 1, amount=50), item(11, 1, 4), item(12, 1, 8),
    ])
    build_snapshot(db, SPECS["winback"], date(2024, 6, 1))
    render_all(SPECS["winback"], members(db, "winback", "2024-06-01"))
    rows = {r["contact_id"]: r["attributes"] for r in members(db, "winback", "2024-06-01")}
    # The coupon's percent follows the value tier (coupon.discount_attribute: coupon_percent).
    assert {cid: a.pop("coupon")["discount_percent"] for cid, a in rows.items()} == {"w1": 10, "w2": 15}
    fresh = {"unanswered_sends": 0, "last_resort": False}
    assert rows == {
        "w1": {"rfm_segment": "At Risk", "last_category": "Shoes", "value_tier": "bronze", "coupon_percent": 10,
               **fresh},
        "w2": {"rfm_segment": "Can't Lose Them", "last_category": None, "value_tier": "silver",
               "coupon_percent": 15, **fresh},
    }


def test_winback_last_resort_offer_then_sunset(db: Engine) -> None:
    d_cur = date(2024, 5, 31)
    insert(db, "marts.customer_rfm", [rfm(d_cur, 1, 500, "At Risk"), rfm(d_cur, 2, 1000, "Can't Lose Them"),
                                      rfm(d_cur, 3, 10, "Hibernating"), rfm(d_cur, 4, 20, "Lost")])  # median 260
    insert(db, "staging.contacts", [contact(f"w{i}", customer_id=i) for i in range(1, 5)])

    def mailed(cid: str, day: date, opened: bool = False) -> None:
        send_id = make_send_id("winback", day.isoformat(), 1, cid)
        with db.begin() as conn:
            conn.execute(sa.text(
                "insert into campaigns.send_ledger (send_id, campaign_id, run_id, step, contact_id, email, variant,"
                " status, attempts, created_at, sent_at) values (:s, 'winback', :r, 1, :c, :e, 'a', 'sent', 1,"
                " :t, :t)"), {"s": send_id, "r": day.isoformat(), "c": cid, "e": f"{cid}@example.com",
                              "t": datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)})
            if opened:
                conn.execute(sa.text("insert into staging.email_events (event_id, event, send_id) values (:i, 'open', :s)"),
                             {"i": f"ev-{send_id}", "s": send_id})

    mailed("w1", date(2024, 3, 1))
    mailed("w1", date(2024, 4, 1))  # two unanswered: the next one is the last resort
    for day in (date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1)):
        mailed("w2", day, opened=day == date(2024, 3, 1))  # w2 opened one: never sunset
    build_snapshot(db, SPECS["winback"], date(2024, 6, 1))
    rows = {r["contact_id"]: r["attributes"] for r in members(db, "winback", "2024-06-01")}
    assert rows["w1"]["last_resort"] is True and rows["w1"]["coupon_percent"] == 25
    assert rows["w1"]["coupon"]["discount_percent"] == 25
    assert rows["w2"]["last_resort"] is False and rows["w2"]["unanswered_sends"] == 2
    render_all(SPECS["winback"], members(db, "winback", "2024-06-01"))

    mailed("w1", date(2024, 6, 1))  # the last resort went unanswered too
    build_snapshot(db, SPECS["winback"], date(2024, 7, 1))
    assert "w1" not in {r["contact_id"] for r in members(db, "winback", "2024-07-01")}
    with db.connect() as conn:
        sunset = conn.execute(sa.text("select email, contact_id, reason, source from campaigns.suppressions")).all()
        excluded = conn.execute(sa.text("select reason, detail from audiences.exclusions where contact_id = 'w1'"
                                        " and run_id = '2024-07-01'")).all()
    assert [tuple(r) for r in sunset] == [("w1@example.com", "w1", "sunset", "sunset:winback")]
    assert [tuple(r) for r in excluded] == [("suppressed", "sunset")]


# -- upsell --------------------------------------------------------------------------------------------


def recommendation(customer_id: int, rank: int, product_id: int, because: int | None,
                   as_of: date = date(2024, 6, 11)) -> dict[str, Any]:
    reason = (f"bought {PRODUCTS[because - 1]['name']}; customers who buy it buy {PRODUCTS[product_id - 1]['name']}"
              if because else f"popular: {PRODUCTS[product_id - 1]['name']} is among our most bought products")
    return {"as_of": as_of, "customer_id": customer_id, "contact_id": None, "rank": rank, "product_id": product_id,
            "score": 1.0 / rank, "because_product_id": because, "reason": reason}


def test_upsell_offers_recommended_products_then_falls_back_to_category_affinity(db: Engine) -> None:
    insert(db, "staging.products", PRODUCTS)
    insert(db, "staging.contacts", [contact(f"u{i}", customer_id=i) for i in (11, 12, 13, 14, 15, 16)])
    insert(db, "staging.orders", [
        order(100, 11, ts("2024-01-01")), order(101, 11, ts("2024-06-12")),       # 18 days before
        order(102, 12, ts("2024-06-10")), order(103, 12, ts("2024-06-25")),       # 5 days: too recent
        order(104, 13, ts("2024-06-05")),                                         # 25 days: too old
        order(105, 14, ts("2024-06-16")), order(106, 14, ts("2024-06-28"), "cancelled"),  # 14 days
        order(107, 15, ts("2024-06-09")),                                         # 21 days, no affinity
        order(110, 16, ts("2024-06-12")),                                         # 18 days
        order(108, 99, ts("2024-02-01")), order(109, 99, ts("2024-07-15")),       # other buyers' sales
    ])
    insert(db, "staging.order_items", [
        item(100, 1, 3), item(101, 1, 1, amount=80), item(101, 2, 3, amount=5),
        item(102, 1, 1), item(103, 1, 1), item(104, 1, 1),
        item(105, 1, 8), item(106, 1, 9),
        item(107, 1, 9),
        item(110, 1, 1), item(110, 2, 3, amount=5),
        item(108, 1, 6, quantity=10), item(108, 2, 4, quantity=5), item(108, 3, 5, quantity=3),
        item(108, 4, 2, quantity=4),
        item(109, 1, 7, quantity=50),  # after the run date: does not count as a best seller
    ])
    insert(db, "marts.product_affinity", [
        {"level": "category", "antecedent": a, "consequent": c, "pair_count": 5, "support": 0.1,
         "confidence": conf, "lift": lift}
        for a, c, conf, lift in [
            ("Shoes", "Socks", 0.9, 3.0),   # u11 already bought Socks
            ("Shoes", "Bags", 0.4, 2.0),
            ("Shoes", "Hats", 0.5, 2.0),    # same lift as Bags, higher confidence: wins
            ("Bags", "Shoes", 0.3, 1.5),
        ]
    ])
    insert(db, "marts.recommendations", [
        # u11 (models ran on 06-11): product 1 was bought on 06-12, after the models ran (dropped); a
        # popularity fill-in is no affinity (dropped); the rest keep their order, the first three are offered.
        recommendation(11, 1, 1, 3), recommendation(11, 2, 5, 3), recommendation(11, 3, 9, 3),
        recommendation(11, 4, 2, None), recommendation(11, 5, 8, 3), recommendation(11, 6, 4, 3),
        # u16: a single affinity product is not enough for the mail: category fallback
        recommendation(16, 1, 5, 1), recommendation(16, 2, 9, None),
        # an older model run and a later one are not the run's point in time
        recommendation(14, 1, 3, 8, as_of=date(2024, 6, 1)), recommendation(14, 2, 4, 8, as_of=date(2024, 6, 1)),
        recommendation(14, 1, 3, 8, as_of=date(2024, 7, 2)), recommendation(14, 2, 4, 8, as_of=date(2024, 7, 2)),
        # u12 has recommendations but no order 14-21 days ago
        recommendation(12, 1, 5, 1), recommendation(12, 2, 6, 1),
    ])
    build_snapshot(db, SPECS["upsell"], date(2024, 6, 30))
    render_all(SPECS["upsell"], members(db, "upsell", "2024-06-30"))
    rows = {r["contact_id"]: r["attributes"] for r in members(db, "upsell", "2024-06-30")}
    assert sorted(rows) == ["u11", "u14", "u16"]
    assert rows["u11"]["offer_source"] == "recommendations"
    assert rows["u11"]["last_category"] == "Shoes"
    assert rows["u11"]["offer_category"] == "Hats"  # the category of the first product offered
    assert rows["u11"]["products"] == [
        {"product_id": 5, "name": "Hats 5", "price": 25.5, "image_url": "https://img.example/5.png",
         "reason": "bought Socks 3; customers who buy it buy Hats 5"},
        {"product_id": 9, "name": "Gloves 9", "price": 15, "image_url": "https://img.example/9.png",
         "reason": "bought Socks 3; customers who buy it buy Gloves 9"},
        {"product_id": 8, "name": "Bags 8", "price": 40, "image_url": "https://img.example/8.png",
         "reason": "bought Socks 3; customers who buy it buy Bags 8"},
    ]
    assert rows["u16"]["offer_source"] == "category_affinity"
    assert rows["u16"]["offer_category"] == "Hats"
    assert rows["u16"]["products"] == [
        {"product_id": pid, "name": f"Hats {pid}", "price": price, "image_url": f"https://img.example/{pid}.png",
         "reason": "customers who buy Shoes also buy Hats"}
        for pid, price in ((6, 30), (4, 20), (5, 25.5))
    ]
    assert rows["u14"]["offer_source"] == "category_affinity"
    assert rows["u14"]["offer_category"] == "Shoes"
    assert [p["product_id"] for p in rows["u14"]["products"]] == [1, 2]


def test_winback_also_takes_valuable_customers_the_clv_model_gives_up_on(db: Engine) -> None:
    d_cur = date(2024, 5, 31)
    insert(db, "marts.customer_rfm", [rfm(d_cur, 1, 1000, "Loyal"), rfm(d_cur, 2, 950, "Loyal"),
                                      rfm(d_cur, 3, 10, "Lost"), rfm(d_cur, 4, 20, "Lost")])
    insert(db, "staging.contacts", [contact(f"w{i}", customer_id=i) for i in range(1, 5)])
    with db.begin() as conn:
        for cid, p_alive in ((1, 0.12), (2, 0.8), (3, 0.05)):
            conn.execute(sa.text(
                "insert into marts.clv_predictions (as_of, customer_id, frequency, recency_days, t_days, monetary_avg,"
                " p_alive, churn_risk, expected_purchases, expected_revenue, horizon_days, model_version)"
                " values ('2024-05-31', :c, 3, 10, 300, 50, :p, 'high', 0.1, 5, 90, 'test')"), {"c": cid, "p": p_alive})
    build_snapshot(db, SPECS["winback"], date(2024, 6, 1))
    # w1: Loyal by RFM but probably gone by BG/NBD, top-quarter spend; w2 alive; w3 gone but low value.
    assert [r["contact_id"] for r in members(db, "winback", "2024-06-01")] == ["w1"]


def test_vip_takes_champions_of_the_latest_snapshot(db: Engine) -> None:
    run = date(2024, 7, 1)
    insert(db, "marts.customer_rfm", [
        rfm(date(2024, 6, 30), 1, 900, "Champions"),
        rfm(date(2024, 5, 31), 2, 800, "Champions"), rfm(date(2024, 6, 30), 2, 800, "At Risk"),  # dropped out
        rfm(date(2024, 6, 30), 3, 50, "Lost"),
        rfm(date(2024, 7, 5), 3, 5000, "Champions"),  # after the run date
    ])
    insert(db, "staging.contacts", [contact(f"v{i}", customer_id=i) for i in range(1, 4)])
    insert(db, "staging.products", [{"product_id": 1, "sku": "T", "name": "Tea", "category": "Tea", "price": 5,
                                     "image_url": None}])
    insert(db, "staging.orders", [{"order_id": 1, "customer_id": 1, "order_ts": datetime(2024, 6, 1, tzinfo=timezone.utc),
                                   "status": "completed", "currency": "EUR", "total_amount": 5, "net_amount": 5,
                                   "coupon_code": None}])
    insert(db, "staging.order_items", [{"order_id": 1, "line_no": 1, "product_id": 1, "quantity": 2,
                                        "unit_price": 5, "line_amount": 10}])
    build_snapshot(db, SPECS["vip"], run)
    rows = members(db, "vip", "2024-07-01")
    assert [r["contact_id"] for r in rows] == ["v1"]
    assert rows[0]["attributes"]["favourite_category"] == "Tea" and rows[0]["attributes"]["coupon"]["code"]
    render_all(SPECS["vip"], rows)


def test_lead_nurture_mails_open_leads_of_tiers_a_to_c(db: Engine) -> None:
    run = date(2024, 7, 2)
    insert(db, "staging.contacts", [
        contact("l1", lifecycle_status="lead", lead_source="referral"),
        contact("l2", lifecycle_status="lead", lead_source=None), contact("l3", lifecycle_status="lead", lead_source=None),
        contact("l4", lifecycle_status="customer", customer_id=9, lead_source=None),  # converted since scoring
    ])
    with db.begin() as conn:
        for cid, tier, score in (("l1", "A", 0.8), ("l2", "C", 0.2), ("l3", "D", 0.05), ("l4", "A", 0.9)):
            conn.execute(sa.text("insert into marts.lead_scores (as_of, contact_id, score, tier, method, model_version)"
                                 " values (:d, :c, :s, :t, 'model', 'v1')"), {"d": run, "c": cid, "s": score, "t": tier})
        conn.execute(sa.text("insert into marts.lead_scores (as_of, contact_id, score, tier, method, model_version)"
                             " values ('2024-06-25', 'l3', 0.9, 'A', 'model', 'v0')"))  # an older score
    build_snapshot(db, SPECS["lead_nurture"], run)
    rows = {r["contact_id"]: r["attributes"] for r in members(db, "lead_nurture", "2024-07-02")}
    assert sorted(rows) == ["l1", "l2"]
    assert rows["l1"]["first_order_code"] == "WELCOME10" and rows["l1"]["lead_source"] == "referral"
    assert rows["l2"]["first_order_code"] is None


def test_review_asks_about_the_order_of_ten_days_ago(db: Engine) -> None:
    run = date(2024, 7, 11)
    insert(db, "staging.products", [{"product_id": p, "sku": f"S{p}", "name": f"P{p}", "category": "C",
                                     "price": 10, "image_url": None} for p in range(1, 6)])
    orders = [(1, 1, datetime(2024, 7, 1, 23, 30, tzinfo=timezone.utc), "completed"),
              (2, 2, datetime(2024, 7, 2, 0, 30, tzinfo=timezone.utc), "completed"),  # nine days before
              (3, 3, datetime(2024, 7, 1, 8, tzinfo=timezone.utc), "cancelled")]
    insert(db, "staging.orders", [{"order_id": o, "customer_id": c, "order_ts": ts, "status": st, "currency": "EUR",
                                   "total_amount": 10, "net_amount": 10, "coupon_code": None}
                                  for o, c, ts, st in orders])
    insert(db, "staging.order_items", [{"order_id": 1, "line_no": n, "product_id": n, "quantity": 1, "unit_price": 10,
                                        "line_amount": 10} for n in range(1, 5)])
    insert(db, "staging.contacts", [contact(f"r{i}", customer_id=i) for i in range(1, 4)])
    build_snapshot(db, SPECS["review"], run)
    rows = members(db, "review", "2024-07-11")
    assert [r["contact_id"] for r in rows] == ["r1"]
    assert rows[0]["attributes"]["order_id"] == 1
    assert [p["product_id"] for p in rows[0]["attributes"]["products"]] == [1, 2, 3]  # at most three
    render_all(SPECS["review"], rows)


# -- dispatch ------------------------------------------------------------------------------------------


@pytest.fixture()
def newsletter(db: Engine, tmp_path: Path) -> CampaignSpec:
    """A test campaign over every contact, using the birthday templates, with a large holdout."""
    folder = tmp_path / "campaigns"
    (folder / "audiences").mkdir(parents=True)
    (folder / "audiences" / "newsletter.sql").write_text(
        "select contact_id, email, first_name, lifecycle_status = 'customer' as is_customer\n"
        "from staging.contacts\n"
    )
    (folder / "newsletter.yml").write_text(
        "id: newsletter\nname: Newsletter\nowner: test\ndescription: test\nschedule: '0 8 * * *'\n"
        "audience_sql: audiences/newsletter.sql\ntemplate: birthday\nholdout_share: 0.3\n"
        "variants:\n  - {id: a, weight: 1, subject: 'Hi {{ first_name }}'}\n"
        "  - {id: b, weight: 1, subject: 'Hello {{ first_name }}'}\n"
    )
    insert(db, "staging.contacts", [contact(f"n{i:02d}") for i in range(40)])
    return load_campaign(folder / "newsletter.yml")


def ledger(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "select * from campaigns.send_ledger order by contact_id")).mappings()]


def outbox_files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


def eml_contacts(folder: Path) -> list[str]:
    found = []
    for path in folder.glob("*.eml"):
        parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        found.append(str(parsed["X-Martech-Contact-Id"]))
    return sorted(found)


def test_dispatch_sends_each_treatment_member_once(db: Engine, newsletter: CampaignSpec, tmp_path: Path) -> None:
    snap = build_snapshot(db, newsletter, date(2024, 6, 1))
    assert snap.holdout > 0 and snap.treatment > 0
    root = tmp_path / "outbox"
    summary = dispatch(db, newsletter, date(2024, 6, 1), OutboxTransport(root, batch_size=7), now=NOW)
    assert (summary.members, summary.treatment, summary.holdout) == (40, snap.treatment, snap.holdout)
    assert summary.ledger_rows_created == snap.treatment
    assert summary.sent_now == snap.treatment
    assert (summary.already_sent, summary.failed, summary.skipped, summary.uncertain) == (0, 0, 0, 0)

    rows = ledger(db)
    treatment = sorted(m["contact_id"] for m in members(db, "newsletter", "2024-06-01") if m["arm"] == "treatment")
    assert [r["contact_id"] for r in rows] == treatment
    for r in rows:
        assert r["send_id"] == make_send_id("newsletter", "2024-06-01", 1, r["contact_id"])
        assert (r["status"], r["attempts"], r["transport"]) == ("sent", 1, "outbox")
        assert r["sent_at"] == NOW and r["created_at"] == NOW
        assert r["message_id"] == f"<{r['send_id']}@shop.example>"
    run_dir = root / "newsletter" / "2024-06-01"
    assert eml_contacts(run_dir) == treatment  # holdout members got nothing
    index = (run_dir / "index.html").read_text()
    assert index.count(".eml</a>") == snap.treatment

    before = outbox_files(root)
    again = dispatch(db, newsletter, date(2024, 6, 1), OutboxTransport(root), now=NOW)
    assert (again.ledger_rows_created, again.sent_now, again.already_sent) == (0, 0, snap.treatment)
    assert outbox_files(root) == before
    assert ledger(db) == rows


class Crash(BaseException):
    """Stands in for the worker being killed mid-batch."""


class CrashingOutbox(OutboxTransport):
    def __init__(self, root: Path, after: int) -> None:
        super().__init__(root, batch_size=5)
        self.left = after

    def send(self, message: OutboundMessage) -> str:
        if self.left == 0:
            raise Crash()
        self.left -= 1
        return super().send(message)


def test_crash_then_rerun_ends_with_everyone_sent_once(db: Engine, newsletter: CampaignSpec,
                                                       tmp_path: Path) -> None:
    snap = build_snapshot(db, newsletter, date(2024, 6, 1))
    root = tmp_path / "outbox"
    with pytest.raises(Crash):
        dispatch(db, newsletter, date(2024, 6, 1), CrashingOutbox(root, after=7), now=NOW)
    statuses = [r["status"] for r in ledger(db)]
    assert len(statuses) == snap.treatment  # the whole plan was committed before the first send
    assert statuses.count("sent") == 5       # the first batch; the second died after 2 of 5 files

    summary = dispatch(db, newsletter, date(2024, 6, 1), OutboxTransport(root), now=NOW)
    assert (summary.ledger_rows_created, summary.already_sent) == (0, 5)
    assert summary.sent_now == snap.treatment - 5
    rows = ledger(db)
    assert {r["status"] for r in rows} == {"sent"}
    assert sorted(r["attempts"] for r in rows).count(2) == 5  # the crashed batch was claimed twice
    assert len(list((root / "newsletter" / "2024-06-01").glob("*.eml"))) == snap.treatment


class Unreliable(BaseTransport):
    """Not idempotent; fails for one address and records what it was given."""

    name = "unreliable"
    batch_size = 10

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.sent: list[str] = []

    def send(self, message: OutboundMessage) -> str:
        if message.to in self.failing:
            raise ConnectionError("mailbox unavailable")
        self.sent.append(message.to)
        return "msg-" + message.send_id


def test_failures_are_retried_suppressions_skipped_and_doubtful_sends_held(
        db: Engine, newsletter: CampaignSpec) -> None:
    build_snapshot(db, newsletter, date(2024, 6, 1))
    treated = [m for m in members(db, "newsletter", "2024-06-01") if m["arm"] == "treatment"]
    bad, gone, doubtful = treated[0]["email"], treated[1], treated[2]
    suppress(db, gone["email"])  # unsubscribed after the snapshot, before the send
    with db.begin() as conn:  # a previous attempt died after claiming this row: in doubt
        conn.execute(sa.text(
            "insert into campaigns.send_ledger (send_id, campaign_id, run_id, step, contact_id, email, variant,"
            " status, attempts, created_at) values (:sid, 'newsletter', '2024-06-01', 1, :cid, :email, 'a',"
            " 'pending', 1, :now)"),
            {"sid": make_send_id("newsletter", "2024-06-01", 1, doubtful["contact_id"]),
             "cid": doubtful["contact_id"], "email": doubtful["email"], "now": NOW})

    transport = Unreliable({bad})
    with pytest.raises(DispatchIncompleteError) as raised:  # the task fails: one row in doubt, one to retry
        dispatch(db, newsletter, date(2024, 6, 1), transport, now=NOW)
    summary = raised.value.summary
    n = len(treated)
    assert summary.ledger_rows_created == n - 1
    assert (summary.failed, summary.skipped, summary.uncertain, summary.sent_now) == (1, 1, 1, n - 3)
    assert summary.retrying == 1 and summary.next_attempt_at is not None
    with db.connect() as conn:
        run = conn.execute(sa.text("select dispatch_state, in_doubt, retrying from campaigns.campaign_runs"
                                   " where campaign_id = 'newsletter' and run_id = '2024-06-01'")).one()
    assert tuple(run) == ("incomplete", 1, 1)
    assert gone["email"] not in transport.sent and doubtful["email"] not in transport.sent
    by_contact = {r["contact_id"]: r for r in ledger(db)}
    assert by_contact[gone["contact_id"]]["status"] == "skipped"
    assert by_contact[gone["contact_id"]]["error"] == "suppressed: unsubscribe"
    assert by_contact[treated[0]["contact_id"]]["error"] == "ConnectionError: mailbox unavailable"

    transport.failing.clear()
    soon = dispatch(db, newsletter, date(2024, 6, 1), transport, now=NOW, strict=False)
    assert (soon.sent_now, soon.retrying) == (0, 1)  # backing off: 30 s after the first failure
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    retry = dispatch(db, newsletter, date(2024, 6, 1), transport, now=NOW, clock=lambda: later, strict=False)
    assert (retry.sent_now, retry.already_sent, retry.uncertain, retry.retrying) == (1, n - 3, 1, 0)
    # A failure past the retry deadline is given up: reported by every run, never dropped silently.
    transport.failing.add(bad)
    with db.begin() as conn:
        conn.execute(sa.text("update campaigns.send_ledger set status = 'failed', first_attempt_at = :t"
                             " where email = :e"), {"t": later - timedelta(days=2), "e": bad})
    with pytest.raises(DispatchIncompleteError, match="1 given up"):
        dispatch(db, newsletter, date(2024, 6, 1), transport, now=NOW, clock=lambda: later)
    again = dispatch(db, newsletter, date(2024, 6, 1), transport, now=NOW, clock=lambda: later, strict=False)
    assert (again.abandoned, again.newly_abandoned, again.sent_now) == (1, 0, 0)
    assert sorted(transport.sent) == sorted(m["email"] for m in treated if m is not gone and m is not doubtful)


def test_plan_send_id_matches_python(db: Engine, newsletter: CampaignSpec, tmp_path: Path) -> None:
    from martech.campaigns.spec import Step

    build_snapshot(db, newsletter, date(2024, 6, 1))
    # The second step of a series has its own run id; its members as a snapshot of that step would hold them.
    with db.begin() as conn:
        conn.execute(sa.text("update audiences.audience_members set run_id = '2024-06-01.step2'"))
    series = newsletter.model_copy(update={"steps": (Step(delay_days=0), Step(delay_days=3))})
    dispatch(db, series, date(2024, 6, 1), OutboxTransport(tmp_path / "o"), now=NOW, step=2)
    rows = ledger(db)
    assert rows
    for r in rows:
        assert r["step"] == 2 and r["run_id"] == "2024-06-01.step2"
        assert r["send_id"] == make_send_id("newsletter", "2024-06-01.step2", 2, r["contact_id"])


def test_dispatch_refuses_naive_timestamps(db: Engine, newsletter: CampaignSpec, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        dispatch(db, newsletter, date(2024, 6, 1), OutboxTransport(tmp_path), now=datetime(2024, 6, 1))


def test_audience_json_attributes_round_trip(db: Engine, newsletter: CampaignSpec) -> None:
    build_snapshot(db, newsletter, date(2024, 6, 1))
    with db.connect() as conn:
        raw = conn.execute(sa.text(
            "select attributes::text from audiences.audience_members limit 1")).scalar_one()
    assert json.loads(raw) == {"is_customer": True}


def test_documented_sql_recomputes_the_arm(db: Engine) -> None:
    ids = [f"c{i}" for i in range(200)]
    with db.connect() as conn:
        rows = conn.execute(sa.text("""
            with h as (
                select c, ('x' || substr(encode(sha256(convert_to('winback:winback:' || c, 'UTF8')), 'hex'),
                                        1, 16))::bit(64)::bigint as b
                from unnest(cast(:ids as text[])) as c
            )
            select c, (case when b < 0 then b + 18446744073709551616.0 else b end) / 18446744073709551616.0
            from h
        """), {"ids": ids}).all()
    for contact_id, u in rows:
        expected = assign_arm("winback", "winback", contact_id, 0.5)
        assert ("holdout" if u < 0.5 else "treatment") == expected


# -- property: nothing ever goes to a suppressed, non-consented or holdout contact ----------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_CONSENT = st.sampled_from(["opted_in", "double_opt_in", "opted_out", "unknown", None])
_PEOPLE = st.lists(
    st.tuples(_CONSENT, st.sampled_from(["plain", "upper", "missing", "shared"]), st.booleans()),
    min_size=1, max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=_PEOPLE, rerun=st.booleans())
def test_property_sends_only_to_eligible_contacts(db, tmp_path, people, rerun):
    with db.begin() as conn:
        conn.execute(sa.text(f"truncate {', '.join(TABLES)}"))
    spec = SPECS["birthday"]
    run = date(2024, 6, 1)
    rows, suppressed = [], set()
    for i, (consent, email_kind, is_suppressed) in enumerate(people):
        cid = f"p{i:03d}"
        address = {"plain": f"{cid}@example.com", "upper": f"  {cid.upper()}@Example.COM ",
                   "missing": None, "shared": "shared@example.com"}[email_kind]
        rows.append(contact(cid, email=address, consent_status=consent, birthday=date(1990, 6, 1)))
        if is_suppressed and address:
            suppressed.add(address.strip().lower())
    insert(db, "staging.contacts", rows)
    for address in sorted(suppressed):
        suppress(db, address)
    build_snapshot(db, spec, run)
    outbox = OutboxTransport(tmp_path / f"outbox-{len(people)}-{rerun}")
    dispatch(db, spec, run, outbox, now=NOW)
    if rerun:
        dispatch(db, spec, run, outbox, now=NOW)
    with db.connect() as conn:
        sent = conn.execute(sa.text(
            "select l.contact_id, lower(btrim(c.email)), c.consent_status, m.arm from campaigns.send_ledger l"
            " join staging.contacts c using (contact_id) join audiences.audience_members m"
            " on m.campaign_id = l.campaign_id and m.run_id = l.run_id and m.contact_id = l.contact_id"
            " where l.status = 'sent'")).all()
    emails = [e for _, e, _, _ in sent]
    assert all(consent in ("opted_in", "double_opt_in") for _, _, consent, _ in sent)
    assert not (set(emails) & suppressed)
    assert all(e for e in emails)
    assert all(arm == "treatment" for *_, arm in sent)
    assert len(emails) == len(set(emails))  # one message per address, reruns included
