"""Shopify Admin API connector: customers, orders and abandoned checkouts into ``raw.shopify_*``.

**REST, not GraphQL — why.** The incremental pull needs every resource sorted by ``updated_at`` so
that a ``(updated_at, id)`` watermark can be checkpointed after each page. The GraphQL Admin API's
``abandonedCheckouts`` connection cannot sort by ``updated_at`` (its sort keys are id, created_at,
customer name, total price), so one of the three resources could not resume mid-pull. The REST
endpoints (``customers.json``, ``orders.json``, ``checkouts.json``) all take ``updated_at_min`` /
``updated_at_max`` and ``order=updated_at asc`` and page with keyset cursors, which gives one
protocol for all three. Shopify calls REST "legacy" since 2024-10; the resource table below is the one
place to change if a resource has to move to GraphQL.

**Paging.** The first request carries the filters; the next pages follow the ``Link`` header's
``rel="next"`` URL as given (its ``page_info`` may be combined with ``limit`` only). ``page_info`` is
a keyset cursor (last value and id), so records modified during the pull do not shift later pages:
a modified record moves to the end, past ``updated_at_max`` (the run's cutoff), and comes with the
next run. Orders are asked for with ``status=any`` (the default is open orders only). Abandoned
checkouts are the open ones (the endpoint's default); a recovered checkout shows as the order that
carries its ``checkout_token``.

**Resume.** After each page, its rows and the watermark (its last record) commit in one transaction
(:mod:`martech.ingest.connectors._land`). A rerun asks for ``updated_at_min`` = the watermark's time
(inclusive) and drops the records at or before the watermark, so nothing lands twice. A page that
comes back out of ``(updated_at, id)`` order stops the pull: the watermark would no longer be safe.

**Throttling (leaky bucket).** Every response says how full the app's bucket is in
``X-Shopify-Shop-Api-Call-Limit: used/size``; the bucket leaks ``size / 20`` calls a second (2 on a
40-call bucket, 4 on Plus's 80). When fewer than ``headroom`` calls are left, the client waits until
the bucket has leaked back below that mark, so it rarely sees a 429; a 429 waits ``Retry-After``;
5xx back off with jitter (:mod:`martech.ingest.connectors._http`).

**Staging mapping (for the owner of ``include/sql/staging``):** ``raw.shopify_customers`` →
``staging.customers`` (customer_id, email, first_name, last_name, country ← country_code,
created_at, updated_at; latest per customer_id by updated_at) and ``staging.contacts`` consent ←
email_marketing_state; ``raw.shopify_orders`` → ``staging.orders`` (order_id, customer_id, order_ts ←
processed_at, status ← ``cancelled`` when cancelled_at is set, ``refunded`` when financial_status is
refunded, else ``completed``; currency, total_amount ← total_price, coupon_code ← discount_code,
updated_at) and ``staging.order_items`` from ``payload->'line_items'``;
``raw.shopify_abandoned_checkouts`` → ``staging.carts`` (cart_id ← checkout_id, status ``abandoned``
unless an order carries its token) and ``staging.cart_items`` from ``payload->'line_items'``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from martech.ingest.batches import BatchResult
from martech.ingest.connectors._http import HttpClient, Response, RetryPolicy, _default_sleep
from martech.ingest.connectors._land import Watermark, as_text, check_pull, dig, land_streams
from martech.ingest.landing import cutoff_for

PAGE_LIMIT = 250
DEFAULT_API_VERSION = "2025-01"


@dataclass(frozen=True)
class ShopifyResource:
    name: str
    endpoint: str           # <endpoint>.json, and the key of the list in the response body
    raw_table: str
    columns: tuple[tuple[str, str], ...]
    params: tuple[tuple[str, str], ...] = ()


RESOURCES: dict[str, ShopifyResource] = {
    "customers": ShopifyResource(
        "customers", "customers", "raw.shopify_customers",
        (("customer_id", "id"), ("email", "email"), ("first_name", "first_name"), ("last_name", "last_name"),
         ("state", "state"), ("country_code", "default_address.country_code"),
         ("email_marketing_state", "email_marketing_consent.state"), ("created_at", "created_at"),
         ("updated_at", "updated_at"))),
    "orders": ShopifyResource(
        "orders", "orders", "raw.shopify_orders",
        (("order_id", "id"), ("customer_id", "customer.id"), ("name", "name"), ("email", "email"),
         ("financial_status", "financial_status"), ("fulfillment_status", "fulfillment_status"),
         ("cancelled_at", "cancelled_at"), ("currency", "currency"), ("total_price", "total_price"),
         ("total_discounts", "total_discounts"), ("discount_code", "discount_codes.0.code"),
         ("processed_at", "processed_at"), ("created_at", "created_at"), ("updated_at", "updated_at")),
        (("status", "any"),)),
    "abandoned_checkouts": ShopifyResource(
        "abandoned_checkouts", "checkouts", "raw.shopify_abandoned_checkouts",
        (("checkout_id", "id"), ("token", "token"), ("customer_id", "customer.id"), ("email", "email"),
         ("currency", "currency"), ("total_price", "total_price"), ("completed_at", "completed_at"),
         ("abandoned_checkout_url", "abandoned_checkout_url"), ("created_at", "created_at"),
         ("updated_at", "updated_at"))),
}

_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def parse_ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, if any."""
    match = _NEXT.search(header or "")
    return match.group(1) if match else None


class _Bucket:
    """Client side of the leaky bucket: wait when the last response said it is nearly full."""

    def __init__(self, http: HttpClient, headroom: int) -> None:
        self.http, self.headroom = http, headroom

    def after(self, resp: Response) -> None:
        value = resp.headers.get("x-shopify-shop-api-call-limit", "")
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
        if not match:
            return
        used, size = int(match.group(1)), int(match.group(2))
        mark = max(0, size - self.headroom)
        if used >= mark:
            leak_per_s = max(size / 20, 1.0)
            self.http.wait((used - mark + 1) / leak_per_s, "bucket")


def _key(record: dict[str, Any]) -> tuple[dt.datetime, int]:
    return parse_ts(str(record["updated_at"])), int(record["id"])


def _pages(http: HttpClient, bucket: _Bucket, res: ShopifyResource, wm: Watermark, cutoff: dt.datetime,
           page_size: int) -> Iterator[tuple[list[dict[str, Any]], Watermark]]:
    last_second = (cutoff - dt.timedelta(seconds=1)).isoformat()
    params: dict[str, Any] = {"limit": page_size, "order": "updated_at asc", "updated_at_max": last_second,
                              **dict(res.params)}
    if wm.ts is not None:
        params["updated_at_min"] = wm.ts.isoformat()
    floor = (wm.ts, int(wm.key) if wm.key else -1) if wm.ts is not None else None
    url: str | None = f"/{res.endpoint}.json"
    prev: tuple[dt.datetime, int] | None = None
    first = True
    while url:
        resp = http.request("GET", url, params=params if first else None)
        bucket.after(resp)
        first = False
        body = resp.json() or {}
        if res.endpoint not in body:
            raise ValueError(f"Shopify {res.endpoint}.json answered without '{res.endpoint}': {str(body)[:200]}")
        records = [r for r in body[res.endpoint] if parse_ts(str(r["updated_at"])) < cutoff]
        keys = [_key(r) for r in records]
        if keys != sorted(keys) or (prev is not None and keys and keys[0] < prev):
            raise ValueError(f"Shopify returned {res.endpoint} out of (updated_at, id) order; the watermark"
                             " would not be safe, so the pull stopped (check that the endpoint honours"
                             " order=updated_at asc)")
        prev = keys[-1] if keys else prev
        fresh = [r for r, k in zip(records, keys) if floor is None or k > floor]
        if fresh:
            ts, rid = keys[-1]
            floor = (ts, rid)
            yield fresh, Watermark(ts, str(rid))
        url = next_link(resp.headers.get("link"))


def _row(res: ShopifyResource, record: dict[str, Any]) -> tuple[Sequence[Any], Any]:
    return [as_text(dig(record, path)) for _, path in res.columns], record


def pull_shopify(engine: Engine, token: str, *, shop: str, run_date: dt.date, loaded_at: dt.datetime,
                 objects: Sequence[str] = ("customers", "orders", "abandoned_checkouts"),
                 api_version: str = DEFAULT_API_VERSION, base_url: str | None = None,
                 cutoff: dt.datetime | None = None, batch_tag: str | None = None, source_name: str = "shopify",
                 page_size: int = PAGE_LIMIT, headroom: int = 4, policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] | None = None, conn_id: str = "shopify") -> list[BatchResult]:
    """Pull each resource's records updated before ``cutoff`` (default: the start of the run date).

    One batch per resource and run, checkpointed per page; ``base_url`` replaces ``https://<shop>``
    (a proxy or a test server).
    """
    if not token:
        raise ValueError(f"no Shopify access token: set the password (or extra 'token') of the Airflow"
                         f" connection {conn_id!r}")
    if not shop and not base_url:
        raise ValueError(f"no Shopify shop domain: set 'shop' in include/sources.yml or the host of the"
                         f" connection {conn_id!r}")
    check_pull("Shopify", objects, RESOURCES, page_size, PAGE_LIMIT)
    root = (base_url or f"https://{shop}").rstrip("/") + f"/admin/api/{api_version}"
    http = HttpClient(root, {"X-Shopify-Access-Token": token}, service="Shopify",
                      auth_hint=f"check the access token in the Airflow connection {conn_id!r} and its read_customers,"
                                " read_orders scopes", policy=policy or RetryPolicy(), sleep=sleep or _default_sleep)
    bucket = _Bucket(http, headroom)
    cutoff = cutoff or cutoff_for(run_date)
    return land_streams(
        engine, {name: RESOURCES[name] for name in objects}, source_name=source_name, run_date=run_date,
        loaded_at=loaded_at, batch_tag=batch_tag, row=_row,
        pages=lambda res, wm: _pages(http, bucket, res, wm, cutoff, page_size))
