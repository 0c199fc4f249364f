"""Geo and sign-up targeting on a small simulated shop: who is in each audience and why.

The simulated shop gives every contact a region and a language; a handful of hand-made contacts
(customer ids from 9_000_001) pin the edges: countries in and out of season, languages with and without
their own template, sign-ups and orders on either side of the windows, and local days that differ from
UTC days. Run ``-k figures -s`` to print members per campaign and per country.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
import sqlalchemy as sa

from martech.campaigns.audience import build_snapshot
from martech.campaigns.render import Recipient, Renderer
from martech.campaigns.spec import load_campaigns

pytestmark = pytest.mark.integration

RUN = dt.date(2026, 11, 10)   # winter_warmers is on in DE, AT, PL and SE only (the rest start later)
SPECS = {s.id: s for s in load_campaigns()}
SECRET = "geo-test-coupon-secret"

# contact, country, language, timezone, consent, consent at (UTC), order at (UTC) or None
PEOPLE = [
    ("geo-de", "DE", "de", "Europe/Berlin", "opted_in", "2025-01-01T10:00:00Z", "2026-11-01T10:00:00Z"),
    ("geo-at-en", "AT", "en", "Europe/Vienna", "opted_in", "2025-01-01T10:00:00Z", "2026-10-01T10:00:00Z"),
    ("geo-fr", "FR", "fr", "Europe/Paris", "opted_in", "2025-01-01T10:00:00Z", "2026-11-01T10:00:00Z"),
    ("geo-old-de", "DE", "de", "Europe/Berlin", "opted_in", "2025-01-01T10:00:00Z", "2025-10-01T10:00:00Z"),
    # newsletter_welcome: run 2026-11-10, sign-up on a local 8 or 9 November, an order in the 30 local days.
    ("nw-in", "DE", "de", "Europe/Berlin", "opted_in", "2026-11-09T08:00:00Z", "2026-10-20T10:00:00Z"),
    ("nw-double", "GB", "en", "Europe/London", "double_opt_in", "2026-11-08T08:00:00Z", "2026-11-05T10:00:00Z"),
    ("nw-berlin-midnight", "DE", "de", "Europe/Berlin", "opted_in", "2026-11-07T23:30:00Z",
     "2026-11-01T10:00:00Z"),                   # 8 November 00:30 in Berlin: in (UTC says 7 November)
    ("nw-la-evening", "US", "en", "America/Los_Angeles", "opted_in", "2026-11-08T06:00:00Z",
     "2026-11-01T10:00:00Z"),                   # 7 November 22:00 in Los Angeles: out (UTC says 8 November)
    ("nw-no-order", "DE", "de", "Europe/Berlin", "opted_in", "2026-11-09T08:00:00Z", None),
    ("nw-old-order", "DE", "de", "Europe/Berlin", "opted_in", "2026-11-09T08:00:00Z", "2026-10-05T10:00:00Z"),
    ("nw-old-signup", "DE", "de", "Europe/Berlin", "opted_in", "2026-11-05T08:00:00Z", "2026-11-01T10:00:00Z"),
    ("nw-opted-out", "DE", "de", "Europe/Berlin", "opted_out", "2026-11-09T08:00:00Z", "2026-11-01T10:00:00Z"),
]


@pytest.fixture(scope="module")
def shop(simulated_staging):
    engine = simulated_staging(RUN, customers=800, seed=5)
    with engine.begin() as conn:
        for i, (cid, country, language, tz, consent, consent_at, order_at) in enumerate(PEOPLE):
            customer_id = 9_000_001 + i
            conn.execute(sa.text(
                "insert into staging.contacts (contact_id, email, first_name, country, timezone, consent_status,"
                " consent_updated_at, customer_id, region, language)"
                " values (:c, :e, 'Geo', :country, :tz, :consent, :at, :cust, null, :lang)"),
                {"c": cid, "e": f"{cid}@example.com", "country": country, "tz": tz, "consent": consent,
                 "at": consent_at, "cust": customer_id, "lang": language})
            if order_at:
                conn.execute(sa.text(
                    "insert into staging.orders (order_id, customer_id, order_ts, order_date, status, currency,"
                    " total_amount, net_amount) values (:o, :cust, :ts, cast(:ts as timestamptz)::date,"
                    " 'completed', 'EUR', 20, 20)"), {"o": 9_000_001 + i, "cust": customer_id, "ts": order_at})
    return engine


def _snapshot(eng, campaign_id: str):
    summary = build_snapshot(eng, SPECS[campaign_id], RUN, coupon_secret=SECRET)
    with eng.connect() as conn:
        members = {r.contact_id: r for r in conn.execute(sa.text(
            "select m.contact_id, m.attributes, c.country, c.region, c.language from audiences.audience_members m"
            " join staging.contacts c using (contact_id) where m.campaign_id = :c and m.run_date = :d"),
            {"c": campaign_id, "d": RUN})}
    return summary, members


def test_simulated_contacts_have_regions_of_their_country_and_a_language(shop):
    with shop.connect() as conn:
        rows = conn.execute(sa.text(
            "select country, region, language from staging.contacts where contact_id not like 'geo-%'"
            " and contact_id not like 'nw-%'")).all()
    known = [r for r in rows if r.country is not None]
    assert len(known) > 500
    assert all(r.region is not None and r.region.startswith(r.country + "-") for r in known)
    assert all(r.language is not None and len(r.language) == 2 for r in known)
    languages = Counter(r.language for r in known if r.country == "DE")
    assert languages["de"] > languages["en"] > 0    # mostly German, some English readers


def test_seasonal_offer_only_where_in_season_and_in_the_contacts_language(shop):
    summary, members = _snapshot(shop, "seasonal_offer")
    assert summary.members == len(members) > 0
    assert {m.country for m in members.values()} <= {"DE", "AT", "PL", "SE"}
    assert "geo-de" in members and "geo-at-en" in members
    assert "geo-fr" not in members            # France: the season starts on 15 November
    assert "geo-old-de" not in members        # no order in the last year
    with shop.connect() as conn:
        expected = set(conn.execute(sa.text(
            "select c.contact_id from staging.contacts c where c.country in ('DE', 'AT', 'PL', 'SE')"
            " and c.consent_status in ('opted_in', 'double_opt_in') and exists (select 1 from staging.orders o"
            " where o.customer_id = c.customer_id and o.status <> 'cancelled'"
            " and o.order_ts >= date '2026-11-10' - 365 and o.order_ts < date '2026-11-10')")).scalars())
        excluded = set(conn.execute(sa.text(
            "select contact_id from audiences.exclusions where campaign_id = 'seasonal_offer'")).scalars())
    assert set(members) == expected - excluded
    renderer = Renderer(unsubscribe_secret="s")
    for contact_id, words in (("geo-de", "Wintersorten"), ("geo-at-en", "winter warmers")):
        m = members[contact_id]
        message = renderer.render(SPECS["seasonal_offer"], "a", Recipient(
            contact_id=contact_id, email="x@example.com", first_name="Geo", attributes=m.attributes))
        assert words in message.text


def test_newsletter_welcome_on_sign_up_with_a_recent_order(shop):
    summary, members = _snapshot(shop, "newsletter_welcome")
    hand_made = {c for c in members if c.startswith("nw-")}
    assert hand_made == {"nw-in", "nw-double", "nw-berlin-midnight"}
    with shop.connect() as conn:
        coupons = conn.execute(sa.text(
            "select contact_id, kind, code, expires_at - valid_from as validity from campaigns.coupons"
            " where campaign_id = 'newsletter_welcome' and contact_id like 'nw-%' order by 1, 2")).all()
    assert [(c.contact_id, c.kind) for c in coupons] == [
        (c, k) for c in sorted(hand_made) for k in ("coupon", "loyalty_card")]
    assert all(c.validity == dt.timedelta(days=7) for c in coupons)
    assert all(c.code.startswith("CARD-" if c.kind == "loyalty_card" else "NEWS-") for c in coupons)
    assert summary.coupons == len(members)
    attributes = members["nw-in"].attributes
    message = Renderer(unsubscribe_secret="s").render(SPECS["newsletter_welcome"], "a", Recipient(
        contact_id="nw-in", email="nw-in@example.com", first_name="Geo", attributes=attributes))
    assert attributes["loyalty_card"]["code"] in message.text
    # Valid from midnight UTC of 10 November for 7 days: the first instant it no longer works, in Berlin.
    assert "Both expire on 17 November 2026, 01:00 CET." in message.text
    # A rerun keeps every code.
    build_snapshot(shop, SPECS["newsletter_welcome"], RUN, coupon_secret=SECRET)
    with shop.connect() as conn:
        again = conn.execute(sa.text(
            "select contact_id, kind, code, expires_at - valid_from as validity from campaigns.coupons"
            " where campaign_id = 'newsletter_welcome' and contact_id like 'nw-%' order by 1, 2")).all()
    assert again == coupons


def test_figures(shop):
    """Members per campaign and per country on the simulated shop (printed with -s)."""
    lines = []
    for campaign_id in ("seasonal_offer", "newsletter_welcome"):
        summary, members = _snapshot(shop, campaign_id)
        per_country = Counter(m.country or "unknown" for m in members.values())
        lines.append(f"{campaign_id} {RUN}: candidates={summary.candidates} members={summary.members} "
                     f"excluded={summary.excluded} per country: "
                     + ", ".join(f"{k}={v}" for k, v in sorted(per_country.items())))
        assert sum(per_country.values()) == summary.members
    print("\n" + "\n".join(lines))
