"""The shared HTTP client's retry policy and the connectors' small parsers (no network, no database)."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import time

import pytest

from martech.ingest.connectors import _http, hubspot, shopify


@pytest.mark.parametrize(("header", "expected"), [("2", 2.0), ("2.0", 2.0), ("0.5", 0.5), ("-3", 0.0),
                                                  ("soon", None), ("", None), (None, None)])
def test_retry_after_seconds(header, expected):
    assert _http.retry_after_s(header) == expected


def test_retry_after_http_date():
    when = email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30), usegmt=True)
    assert 25 <= (_http.retry_after_s(when) or 0) <= 31


def test_backoff_is_capped_full_jitter():
    policy = _http.RetryPolicy(backoff_s=1.0, max_backoff_s=8.0)
    rng = random.Random(7)
    draws = [[policy.backoff(retry, rng) for _ in range(200)] for retry in range(6)]
    for retry, values in enumerate(draws):
        assert all(0 <= v <= min(8.0, 2 ** retry) for v in values)
        assert len({round(v, 6) for v in values}) > 150  # jittered, not a fixed schedule
    assert max(draws[5]) > 6  # reaches towards the cap


def test_the_testing_switch_records_waits_without_sleeping():
    client = _http.HttpClient("http://127.0.0.1:9", {})
    _http.set_testing(True)
    try:
        start = time.monotonic()
        client.wait(30.0, "429")
        assert time.monotonic() - start < 1 and client.waits == [("429", 30.0)]
    finally:
        _http.set_testing(False)


def test_connection_failures_are_retried_then_reported():
    slept: list[float] = []
    client = _http.HttpClient("http://127.0.0.1:9", {}, service="X", sleep=slept.append,
                              policy=_http.RetryPolicy(attempts=3), timeout_s=2)
    with pytest.raises(_http.ApiError, match="still failing after 3 attempts; last: connection failed"):
        client.request("GET", "/nothing-listens-on-port-9")
    assert len(slept) == 2 and client.requests == 3


@pytest.mark.parametrize(("header", "expected"), [
    ('<https://s.myshopify.com/admin/api/2025-01/orders.json?limit=250&page_info=abc>; rel="next"',
     "https://s.myshopify.com/admin/api/2025-01/orders.json?limit=250&page_info=abc"),
    ('<https://s/x.json?page_info=p>; rel="previous", <https://s/x.json?page_info=n>; rel="next"',
     "https://s/x.json?page_info=n"),
    ('<https://s/x.json?page_info=p>; rel="previous"', None),
    (None, None),
])
def test_shopify_next_link(header, expected):
    assert shopify.next_link(header) == expected


@pytest.mark.parametrize(("limit", "waited"), [("10/40", None), ("35/40", None), ("36/40", 0.5),
                                               ("39/40", 2.0), ("40/40", 2.5), ("79/80", 1.0), ("junk", None)])
def test_shopify_bucket_slows_down_near_full(limit, waited):
    waits: list[float] = []
    client = _http.HttpClient("http://x", {}, sleep=waits.append)
    shopify._Bucket(client, headroom=4).after(_http.Response(200, {"x-shopify-shop-api-call-limit": limit}, b"", ""))
    assert waits == ([] if waited is None else [waited])


def test_hubspot_timestamps_round_trip_to_epoch_milliseconds():
    ts = hubspot.parse_ts("2026-03-01T08:00:00.007Z")
    assert ts == dt.datetime(2026, 3, 1, 8, 0, 0, 7000, tzinfo=dt.timezone.utc)
    assert hubspot.epoch_ms(ts) == "1772352000007"
    assert hubspot.parse_ts("1772352000007") == ts
    assert hubspot.parse_ts("2026-03-01T08:00:00Z").microsecond == 0
