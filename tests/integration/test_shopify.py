"""Shopify connector against the local Admin REST stand-in and a real PostgreSQL; the SaaS entry points."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa

from martech.ingest.connectors import _http, shopify
from martech.ingest.landing import cutoff_for
from martech.testing.fake_hubspot import FakeHubSpot
from martech.testing.fake_shopify import FakeShopify
from martech.testing.landing import assert_landed_once

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fast_http_retries")]

UTC = dt.timezone.utc
D1 = dt.date(2026, 3, 10)
BASE = dt.datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TABLE = {"customers": ("raw.shopify_customers", "customer_id"), "orders": ("raw.shopify_orders", "order_id"),
         "abandoned_checkouts": ("raw.shopify_abandoned_checkouts", "checkout_id")}
ENDPOINT = {"customers": "customers", "orders": "orders", "abandoned_checkouts": "checkouts"}


def _seed(fake: FakeShopify, resource: str, n: int, *, per_ts: int = 3, start: int = 1) -> None:
    for i in range(start, start + n):
        at = BASE + dt.timedelta(seconds=(i - start) // per_ts)
        if resource == "customers":
            fake.put("customers", 7000 + i, at, email=f"c{i}@example.com", first_name=f"F{i}",
                     default_address={"country_code": "DE"}, email_marketing_consent={"state": "subscribed"})
        elif resource == "orders":
            fake.put("orders", 9000 + i, at, email=f"c{i}@example.com", customer={"id": 7000 + i},
                     total_price=f"{i}.50", currency="EUR", discount_codes=[{"code": "WELCOME10"}] if i % 4 == 0 else [],
                     cancelled_at=shopify_ts(at) if i % 7 == 0 else None,
                     closed_at=shopify_ts(at) if i % 5 == 0 else None)
        else:
            fake.put("checkouts", 5000 + i, at, token=f"tok{i}", email=f"c{i}@example.com", total_price="9.90",
                     completed_at=shopify_ts(at) if i % 6 == 0 else None)


def shopify_ts(at: dt.datetime) -> str:
    return at.isoformat(timespec="seconds")


def _pull(engine, fake, src, run_date=D1, **kw):
    return shopify.pull_shopify(engine, kw.pop("token", "shpat_test"), shop="test-shop.myshopify.com",
                                run_date=run_date, loaded_at=cutoff_for(run_date), base_url=fake.url,
                                source_name=src, **kw)


def _landed(engine, src: str, obj: str) -> list[tuple[str, str]]:
    table, key = TABLE[obj]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"select {key}, updated_at from {table} where _source = :s"),
                                               {"s": src})]


def _assert_exact(engine, fake, src, obj, **match):
    assert_landed_once(_landed(engine, src, obj), fake.versions(ENDPOINT[obj], **match))


def test_pull_lands_every_resource_once_with_ties_and_the_exact_last_page(engine, shop, src):
    _seed(shop, "customers", 500)  # twice the page size: the last page is full and has no next link
    _seed(shop, "orders", 260)
    _seed(shop, "checkouts", 36)
    results = _pull(engine, shop, src)
    assert [(r.table, r.rows_loaded) for r in results] == [
        ("raw.shopify_customers", 500), ("raw.shopify_orders", 260), ("raw.shopify_abandoned_checkouts", 30)]
    _assert_exact(engine, shop, src, "customers")
    _assert_exact(engine, shop, src, "orders")  # status=any: open, closed and cancelled orders
    _assert_exact(engine, shop, src, "abandoned_checkouts", completed_at=None)
    firsts = [q for q in shop.state.requests if "page_info" not in q]
    assert [q["resource"] for q in firsts] == ["customers", "orders", "checkouts"]
    assert all(q["order"] == "updated_at asc" and q["limit"] == "250" and q["updated_at_max"].startswith(
        "2026-03-09T23:59:59") for q in firsts)
    assert firsts[1]["status"] == "any"
    assert all(set(q) == {"resource", "limit", "page_info"} for q in shop.state.requests if "page_info" in q)
    with engine.connect() as conn:
        row = conn.execute(sa.text("select payload, total_price, discount_code, customer_id, updated_at"
                                   " from raw.shopify_orders where _source = :s and order_id = '9004'"),
                           {"s": src}).one()
    assert (row.total_price, row.discount_code, row.customer_id) == ("4.50", "WELCOME10", "7004")
    assert row.payload["discount_codes"] == [{"code": "WELCOME10"}] and row.updated_at.endswith("-05:00")


def test_rerun_is_a_no_op_and_the_next_run_loads_only_the_changes(engine, shop, src):
    _seed(shop, "customers", 300)
    assert _pull(engine, shop, src, objects=["customers"])[0].rows_loaded == 300
    asked = len(shop.state.requests)
    assert _pull(engine, shop, src, objects=["customers"])[0].skipped and len(shop.state.requests) == asked
    assert _pull(engine, shop, src, D1 + dt.timedelta(days=1), objects=["customers"])[0].rows_loaded == 0
    changed = dt.datetime.combine(D1 + dt.timedelta(days=1), dt.time(9), tzinfo=UTC)
    for i in range(9):
        shop.put("customers", 7001 + i * 30, changed, email=f"new{i}@example.com")
    shop.put("customers", 7002, changed + dt.timedelta(days=1))  # on the run date: belongs to the next run
    assert _pull(engine, shop, src, D1 + dt.timedelta(days=2), objects=["customers"])[0].rows_loaded == 9
    assert _pull(engine, shop, src, D1 + dt.timedelta(days=3), objects=["customers"])[0].rows_loaded == 1
    _assert_exact(engine, shop, src, "customers")
    assert len(_landed(engine, src, "customers")) == 310


def test_the_leaky_bucket_is_respected_without_a_single_429(engine, shop, src):
    _seed(shop, "customers", 600)
    shop.state.tick = 0.0  # requests back to back: only the client's waits let the bucket leak
    results = _pull(engine, shop, src, objects=["customers"], page_size=5, sleep=shop.advance)
    assert results[0].rows_loaded == 600 and len(shop.state.requests) == 120
    assert 429 not in shop.state.statuses
    # 120 calls against 40 slots leaking 2/s: the client must have waited about (120 - 36) / 2 s.
    assert 38 <= shop.state.clock <= 46


def test_429_and_5xx_bursts_are_retried(engine, shop, src):
    _seed(shop, "customers", 300)
    shop.fault("429", "500", "drop", "503", "429", "502")
    waits: list[float] = []
    assert _pull(engine, shop, src, objects=["customers"], sleep=waits.append)[0].rows_loaded == 300
    _assert_exact(engine, shop, src, "customers")
    assert waits[0] == 2.0 and waits[4] == 2.0  # Retry-After: 2.0
    assert len(waits) == 6


def test_server_dying_after_n_pages_then_a_rerun_resumes_exactly(engine, shop, src):
    _seed(shop, "orders", 320, per_ts=4)
    shop.fail_after = 3
    with pytest.raises(_http.ApiError, match="still failing after 2 attempts"):
        _pull(engine, shop, src, objects=["orders"], page_size=50, policy=_http.RetryPolicy(attempts=2))
    assert len(_landed(engine, src, "orders")) == 150
    shop.fail_after = None
    result = _pull(engine, shop, src, objects=["orders"], page_size=50)[0]
    assert result.rows_loaded == 320 and "resumed after 150 rows" in result.notes[0]
    _assert_exact(engine, shop, src, "orders")
    resumed = shop.state.requests[3]
    assert "updated_at_min" in resumed and "page_info" not in resumed


def test_a_crash_inside_a_page_commit_rolls_that_page_back(engine, shop, src, crash_page_commit):
    _seed(shop, "customers", 200, per_ts=7)  # ties across page boundaries: the resume skips by (updated_at, id)
    with crash_page_commit(3, KeyboardInterrupt("killed after the rows were written, before the commit")), \
            pytest.raises(KeyboardInterrupt):
        _pull(engine, shop, src, objects=["customers"], page_size=30)
    assert len(_landed(engine, src, "customers")) == 60
    assert _pull(engine, shop, src, objects=["customers"], page_size=30)[0].rows_loaded == 200
    _assert_exact(engine, shop, src, "customers")


def test_records_modified_during_the_pull_are_neither_lost_nor_doubled(engine, shop, src):
    _seed(shop, "customers", 400, per_ts=2)
    late = BASE + dt.timedelta(days=3)

    def modify(fake: FakeShopify, answered: int) -> None:
        if answered == 2:
            for i, cid in enumerate((7001, 7040, 7150, 7260, 7399)):  # landed, and not reached yet
                fake.put("customers", cid, late + dt.timedelta(seconds=i), email=f"moved{i}@example.com")

    shop.on_request = modify
    _pull(engine, shop, src, objects=["customers"], page_size=50)
    _assert_exact(engine, shop, src, "customers")
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw.shopify_customers where _source = :s"
                                    " and email like 'moved%'"), {"s": src}).scalar_one() == 5


def test_bad_token_and_missing_settings_fail_with_clear_errors(engine, shop, src):
    _seed(shop, "customers", 5)
    with pytest.raises(_http.AuthError, match=r"Invalid API key.*connection 'shopify'"):
        _pull(engine, shop, src, token="wrong", objects=["customers"])
    assert shop.state.statuses == [401]
    with pytest.raises(ValueError, match="no Shopify access token"):
        _pull(engine, shop, src, token="", objects=["customers"])
    with pytest.raises(ValueError, match="no Shopify shop domain"):
        shopify.pull_shopify(engine, "t", shop="", run_date=D1, loaded_at=cutoff_for(D1))


def test_a_page_out_of_updated_at_order_stops_the_pull(engine, shop, src, monkeypatch):
    _seed(shop, "customers", 20, per_ts=1)
    real = shopify._pages

    def ignore_order(http, bucket, res, wm, cutoff, page_size):
        res = shopify.ShopifyResource(res.name, res.endpoint, res.raw_table, res.columns)
        http.request = _drop_param(http.request, "order")
        return real(http, bucket, res, wm, cutoff, page_size)

    shop.put("customers", 1, BASE + dt.timedelta(days=1))  # lowest id, newest: first when sorted by id
    monkeypatch.setattr(shopify, "_pages", ignore_order)
    with pytest.raises(ValueError, match="out of \\(updated_at, id\\) order"):
        _pull(engine, shop, src, objects=["customers"])
    assert _landed(engine, src, "customers") == []


def _drop_param(request, name):
    def wrapped(method, path, *, params=None, body=None):
        return request(method, path, params={k: v for k, v in (params or {}).items() if k != name} or None, body=body)
    return wrapped


def _get(fake: FakeShopify, query: str, token: str = "shpat_test") -> tuple[int, dict, dict]:
    req = urllib.request.Request(f"{fake.url}/admin/api/2025-01/customers.json?{query}",
                                 headers={"X-Shopify-Access-Token": token})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_fake_validates_requests_like_shopify(shop):
    _seed(shop, "customers", 4)
    assert _get(shop, "limit=2", token="nope")[0] == 401
    assert _get(shop, "limit=251")[0] == 400
    assert _get(shop, "order=email%20asc")[0] == 400
    assert _get(shop, "updated_at_min=yesterday")[0] == 400
    status, headers, body = _get(shop, "limit=2&order=updated_at%20asc")
    assert status == 200 and len(body["customers"]) == 2 and 'rel="next"' in headers["Link"]
    assert headers["X-Shopify-Shop-Api-Call-Limit"].endswith("/40")
    page_info = shopify.next_link(headers["Link"]).split("page_info=")[1]
    assert _get(shop, f"page_info={page_info}&order=id%20asc")[0] == 400  # page_info takes only limit, fields
    status, headers, body = _get(shop, f"limit=2&page_info={page_info}")
    assert len(body["customers"]) == 2 and 'rel="next"' not in headers.get("Link", "")  # the exact last page
    assert 'rel="previous"' in headers["Link"]
    assert _get(shop, "limit=5&updated_at_min=2030-01-01T00:00:00Z")[2] == {"customers": []}


# -- the entry points the ingest DAG calls ----------------------------------------------------------

def _sources(tmp_path, text: str):
    path = tmp_path / "sources.yml"
    path.write_text("sources:\n  db: {kind: sql, enabled: false}\n" + text)
    return path


def test_disabled_sources_pull_nothing_and_say_so(engine, warehouse, tmp_path, caplog):
    from martech.ingest.connectors import run

    path = _sources(tmp_path, "  hubspot: {kind: hubspot, enabled: false}\n"
                              "  shopify: {kind: shopify, enabled: false}\n")
    asked: list[str] = []
    with caplog.at_level("INFO", logger="martech"):
        for entry in (run.ingest_hubspot, run.ingest_shopify):
            out = entry(warehouse, D1, credentials=lambda c: asked.append(c) or {}, sources_path=path)
            assert (out["enabled"], out["rows"]) == (False, 0)
    assert asked == [] and "no enabled source of kind hubspot" in caplog.text


def test_enabled_sources_resolve_their_connection_and_land(engine, warehouse, tmp_path):
    from martech.ingest.connectors import run

    with FakeHubSpot(token="hs-secret") as hub, FakeShopify(token="shpat_secret") as shop:
        for i in range(3):
            hub.put("contacts", 10 + i, BASE, email=f"h{i}@example.com")
            shop.put("customers", 20 + i, BASE, email=f"s{i}@example.com")
        path = _sources(tmp_path, f"  crm: {{kind: hubspot, conn_id: hs_test, objects: [contacts], url: '{hub.url}'}}\n"
                                  f"  store: {{kind: shopify, conn_id: shop_test, shop: my-store, url: '{shop.url}',"
                                  f" objects: [customers]}}\n")
        creds = {"hs_test": {"token": "hs-secret"}, "shop_test": {"token": "shpat_secret", "host": None}}
        asked: list[str] = []

        def credentials(conn_id: str) -> dict:
            asked.append(conn_id)
            return creds[conn_id]

        run_date = dt.date(2031, 1, 1)  # batch ids of their own in the shared raw tables
        h = run.ingest_hubspot(warehouse, run_date, credentials=credentials, sources_path=path)
        s = run.ingest_shopify(warehouse, run_date, credentials=credentials, sources_path=path)
    assert asked == ["hs_test", "shop_test"]
    assert h["tables"] == {"raw.hubspot_contacts": 3} and s["tables"] == {"raw.shopify_customers": 3}
    assert h["batches"]["raw.hubspot_contacts"] == "hubspot.contacts:2031-01-01"
