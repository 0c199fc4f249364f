"""A local stand-in for Shopify's Admin REST API (customers, orders, abandoned checkouts), loopback only.

``GET /admin/api/<YYYY-MM>/{customers,orders,checkouts}.json`` is validated and answered as Shopify
does:

- ``X-Shopify-Access-Token`` must be the configured token (401 ``[API] Invalid API key or access
  token``); the version must look like ``2025-01`` (404 otherwise);
- ``limit`` 1–250 (default 50); ``updated_at_min`` / ``updated_at_max`` (ISO 8601, inclusive),
  ``order`` (``<field> asc|desc`` on id, updated_at, created_at; default id), ``status`` (orders:
  open — the default —, closed, cancelled, any; checkouts: open — the default —, closed);
- pagination by ``Link`` header (``rel="next"`` / ``rel="previous"``) carrying an opaque ``page_info``
  keyset cursor (the filters, the last sort value and id); a request with ``page_info`` may add only
  ``limit`` and ``fields`` (400 otherwise); no ``next`` link after the exact last page;
- timestamps are rendered in the shop's time zone (``-05:00``), to the second;
- the leaky bucket: each call takes one slot of a 40-slot bucket that leaks 2 slots a second; every
  answer carries ``X-Shopify-Shop-Api-Call-Limit: used/40``; a call into a full bucket gets 429
  with ``Retry-After: 2.0``. Time is virtual: it moves by :attr:`FakeShopify.tick` per request and by
  :meth:`FakeShopify.advance` (pass it as the client's ``sleep`` to let the client's waits leak the
  bucket).

Faults (:meth:`FakeShopify.fault`): ``429``, ``500``, ``502``, ``503``, ``drop``;
:attr:`FakeShopify.fail_after` N answered requests, then 503; :attr:`FakeShopify.on_request` runs
after each answered list request (e.g. to modify records mid-pull).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from martech.testing._loopback import BadRequest, JsonHandler, LoopbackFake, LoopbackState, QuietServer

RESOURCES = ("customers", "orders", "checkouts")
SHOP_TZ = dt.timezone(dt.timedelta(hours=-5))
STATUSES = {"orders": {"open", "closed", "cancelled", "any"}, "checkouts": {"open", "closed"}}
ORDER_FIELDS = {"id", "updated_at", "created_at"}
PAGE_INFO_COMPANIONS = {"limit", "fields", "page_info"}


def shop_time(ts: dt.datetime) -> str:
    return ts.astimezone(SHOP_TZ).isoformat(timespec="seconds")


def _parse(value: str) -> dt.datetime:
    ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=SHOP_TZ)


class State(LoopbackState):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.records: dict[str, dict[int, dict[str, Any]]] = {r: {} for r in RESOURCES}
        self.requests: list[dict[str, str]] = []   # query of every answered list request
        self.clock = 0.0          # virtual seconds
        self.bucket = 0.0         # slots in use
        self.bucket_at = 0.0
        self.bucket_size = 40
        self.leak_per_s = 2.0
        self.tick = 0.5

    def take_slot(self) -> tuple[bool, int]:
        """Leak by the virtual time since the last call, then take a slot if one is free."""
        self.clock += self.tick
        self.bucket = max(0.0, self.bucket - (self.clock - self.bucket_at) * self.leak_per_s)
        self.bucket_at = self.clock
        if self.bucket + 1 > self.bucket_size:
            return False, self.bucket_size
        self.bucket += 1
        return True, int(-(-self.bucket // 1))


class _Handler(JsonHandler):
    server: _Server

    def do_GET(self) -> None:
        st = self.server.state
        url = urlsplit(self.path)
        match = re.fullmatch(r"/admin/api/([^/]+)/([a-z_]+)\.json", url.path)
        if not match or match.group(2) not in RESOURCES:
            return self._send(404, {"errors": "Not Found"})
        version, resource = match.groups()
        if not re.fullmatch(r"\d{4}-(01|04|07|10)|unstable", version):
            return self._send(404, {"errors": "Not Found"})
        if self.headers.get("X-Shopify-Access-Token") != st.token:
            return self._send(401, {"errors": "[API] Invalid API key or access token (unrecognized login or"
                                              " wrong password)"})
        with st.lock:
            fault = st.faults.pop(0) if st.faults else None
            down = self.server.fail_after is not None and st.answered >= self.server.fail_after
            ok, used = st.take_slot()
        limit_header = {"X-Shopify-Shop-Api-Call-Limit": f"{used}/{st.bucket_size}"}
        if fault == "drop":
            self.close_connection = True
            self.connection.close()
            return None
        if fault == "429" or not ok:
            return self._send(429, {"errors": "Exceeded 2 calls per second for api client. Reduce request"
                                              " rates to resume uninterrupted service."},
                              {**limit_header, "Retry-After": "2.0"})
        if fault in ("500", "502", "503") or down:
            return self._send(int(fault or 503), {"errors": "Internal Server Error"}, limit_header)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            page, links = self._list(version, resource, query)
        except BadRequest as exc:
            return self._send(400, {"errors": str(exc)}, limit_header)
        with st.lock:
            st.requests.append({"resource": resource, **query})
            st.answered += 1
        if links:
            limit_header["Link"] = ", ".join(f'<{u}>; rel="{rel}"' for rel, u in links)
        self._send(200, {resource: page}, limit_header)
        hook = self.server.fake.on_request
        if hook is not None:
            hook(self.server.fake, st.answered)

    def _list(self, version: str, resource: str, query: dict[str, str]) -> tuple[list[Any], list[tuple[str, str]]]:
        limit_text = query.get("limit", "50")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 250:
            raise BadRequest(f"limit: must be between 1 and 250, got {limit_text!r}")
        limit = int(limit_text)
        if "page_info" in query:
            extra = sorted(set(query) - PAGE_INFO_COMPANIONS)
            if extra:
                raise BadRequest(f"page_info: cannot be combined with {', '.join(extra)} (only limit and fields)")
            try:
                cursor = json.loads(base64.urlsafe_b64decode(query["page_info"] + "=="))
                filters, last = cursor["filters"], cursor["last"]
            except (ValueError, KeyError, TypeError):
                raise BadRequest("page_info - Invalid value.") from None
        else:
            filters, last = self._filters(resource, query), None
        field, descending = filters["order"]
        st = self.server.state
        with st.lock:
            rows = [r for r in st.records[resource].values() if self._match(resource, r, filters)]

            def key(r: dict[str, Any]) -> tuple[Any, int]:
                value = r[field]
                return (_parse(value).timestamp() if field != "id" else value), r["id"]

            rows.sort(key=key, reverse=descending)
            if last is not None:
                bound = (last[0], last[1])
                rows = [r for r in rows if (key(r) < bound if descending else key(r) > bound)]
            page, more = rows[:limit], len(rows) > limit
            out = [json.loads(json.dumps(r)) for r in page]
        links = []
        base = f"http://{self.headers.get('Host')}/admin/api/{version}/{resource}.json"
        if more:
            nxt = base64.urlsafe_b64encode(json.dumps({"filters": filters, "last": list(key(page[-1]))}).encode())
            links.append(("next", f"{base}?{urlencode({'limit': limit, 'page_info': nxt.decode().rstrip('=')})}"))
        if last is not None and page:
            prev = base64.urlsafe_b64encode(json.dumps({"filters": filters, "last": list(key(page[0])),
                                                        "direction": "prev"}).encode())
            links.append(("previous", f"{base}?{urlencode({'limit': limit, 'page_info': prev.decode().rstrip('=')})}"))
        return out, links

    @staticmethod
    def _filters(resource: str, query: dict[str, str]) -> dict[str, Any]:
        filters: dict[str, Any] = {}
        for name in ("updated_at_min", "updated_at_max", "created_at_min", "created_at_max"):
            if name in query:
                try:
                    filters[name] = _parse(query[name]).timestamp()
                except ValueError:
                    raise BadRequest(f"{name}: {query[name]!r} is not an ISO 8601 date and time") from None
        order = query.get("order", "id asc").split()
        if len(order) != 2 or order[0] not in ORDER_FIELDS or order[1] not in ("asc", "desc"):
            raise BadRequest(f"order: expected '<{'|'.join(sorted(ORDER_FIELDS))}> asc|desc', got {query['order']!r}")
        filters["order"] = (order[0], order[1] == "desc")
        if resource in STATUSES:
            status = query.get("status", "open")
            if status not in STATUSES[resource]:
                raise BadRequest(f"status: must be one of {', '.join(sorted(STATUSES[resource]))}")
            filters["status"] = status
        if "since_id" in query:
            filters["since_id"] = int(query["since_id"])
        return filters

    @staticmethod
    def _match(resource: str, r: dict[str, Any], f: dict[str, Any]) -> bool:
        updated, created = _parse(r["updated_at"]).timestamp(), _parse(r["created_at"]).timestamp()
        if "updated_at_min" in f and updated < f["updated_at_min"]:
            return False
        if "updated_at_max" in f and updated > f["updated_at_max"]:
            return False
        if "created_at_min" in f and created < f["created_at_min"]:
            return False
        if "created_at_max" in f and created > f["created_at_max"]:
            return False
        if "since_id" in f and r["id"] <= f["since_id"]:
            return False
        status = f.get("status")
        if resource == "orders" and status != "any":
            state = "cancelled" if r.get("cancelled_at") else "closed" if r.get("closed_at") else "open"
            return state == status or (status == "closed" and state == "cancelled")
        if resource == "checkouts":
            return (r.get("completed_at") is None) == (status == "open")
        return True


class _Server(QuietServer):
    state: State
    fake: FakeShopify


class FakeShopify(LoopbackFake[State]):
    """The fake in a background thread: ``with FakeShopify(token="t") as shop: shop.put(...); shop.url``."""

    server: _Server
    on_request: Callable[[FakeShopify, int], None] | None = None

    def __init__(self, token: str = "test-token") -> None:
        super().__init__(_Server, _Handler, State(token))

    def advance(self, seconds: float) -> None:
        """Let virtual time pass (the bucket leaks); usable as a client's ``sleep``."""
        with self.state.lock:
            self.state.clock += seconds

    def put(self, resource: str, record_id: int, updated: dt.datetime, **fields: Any) -> None:
        """Create or modify a record; ``updated_at`` becomes ``updated`` (in the shop's zone)."""
        with self.state.lock:
            rec = self.state.records[resource].setdefault(
                record_id, {"id": record_id, "created_at": shop_time(updated), "admin_graphql_api_id":
                            f"gid://shopify/{_GID[resource]}/{record_id}"})
            rec.update(fields)
            rec["updated_at"] = shop_time(updated)

    def versions(self, resource: str, **match: Any) -> set[tuple[str, str]]:
        """(id, updated_at) of every record as it is now (optionally only those with the given fields)."""
        with self.state.lock:
            return {(str(r["id"]), r["updated_at"]) for r in self.state.records[resource].values()
                    if all(r.get(k) == v for k, v in match.items())}



_GID = {"customers": "Customer", "orders": "Order", "checkouts": "AbandonedCheckout"}
