"""A local stand-in for HubSpot's CRM v3 search API (contacts and deals), for contract tests (loopback only).

``POST /crm/v3/objects/{contacts|deals}/search`` is validated the way HubSpot does it and answered
in HubSpot's shape:

- ``Authorization: Bearer <token>`` must carry the configured token (401 ``INVALID_AUTHENTICATION``);
- the body may hold only ``filterGroups``, ``sorts``, ``properties``, ``limit``, ``after``, ``query``;
  ``limit`` 1–100 (default 10); at most 5 filter groups, 10 filters per group and 25 in all; each filter
  a ``propertyName``, a known ``operator`` and the value(s) that operator needs; at most one sort;
  ``after`` an offset string — results past the 10,000th are refused (400), as HubSpot caps a query;
- datetime filter values are epoch milliseconds (ISO 8601 is accepted too); ``hs_object_id``
  compares as a number; filter groups OR, filters inside a group AND;
- ``after`` is an *offset into the live result set*, as HubSpot's is: a record modified between two
  requests moves, and the offsets of the records after it shift;
- records with equal sort values come back in an order unrelated to their id (HubSpot documents no
  tie order, so a client must not rely on one);
- ``paging.next`` is present only when more results exist (none after the exact last page).

``POST /crm/v3/objects/contacts/batch/upsert`` (create or update contacts by a unique property;
https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts):
the body is ``{"inputs": [{"idProperty": "email", "id": <address>, "properties": {name: text}}]}``, 1 to
100 inputs (more: 400, as HubSpot refuses a batch over 100); the answer is ``{"status": "COMPLETE",
"results": [...]}`` with each record's id and whether it is ``new``. Every accepted body is kept in
:attr:`State.upserts`; the contacts' written properties by address in :attr:`State.written`.

**Burst limit.** HubSpot allows an app 100 requests per rolling 10 seconds per account ("100 calls
per 10 seconds per app per portal", https://developers.hubspot.com/changelog/heads-up-new-and-improved-hubspot-api-limits;
https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details) and answers a request over it
with 429 and the ``X-HubSpot-RateLimit-Max`` / ``-Remaining`` / ``-Interval-Milliseconds`` headers. The
fake counts the batch-upsert requests in a rolling window of :attr:`FakeHubSpot.burst_window_s` on
:attr:`FakeHubSpot.clock` (a test may replace it with a manual clock), refuses the request over
:attr:`FakeHubSpot.burst_limit` with 429 plus ``Retry-After`` (seconds until the oldest request leaves the
window), and sends the rate-limit headers on every upsert answer.

Faults for a test to queue (:meth:`FakeHubSpot.fault`): ``429`` (with ``Retry-After``), ``500``,
``502``, ``503``, ``drop`` (close the connection without answering). :attr:`FakeHubSpot.fail_after`
makes every search or upsert after the first N answered ones fail with 503, like a service that went down;
:attr:`FakeHubSpot.on_search` runs after each answered search (e.g. to modify records mid-pull).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from martech.testing._loopback import BadRequest, JsonHandler, LoopbackFake, LoopbackState, QuietServer

MODIFIED = {"contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate"}
DEFAULT_PROPERTIES = {"contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                                   "lastname"),
                      "deals": ("amount", "closedate", "createdate", "dealname", "dealstage",
                                "hs_lastmodifieddate", "hs_object_id", "pipeline")}
DATETIME_PROPERTIES = {"createdate", "lastmodifieddate", "hs_lastmodifieddate", "closedate"}
OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
BODY_KEYS = {"filterGroups", "sorts", "properties", "limit", "after", "query"}
MAX_RESULTS = 10_000
MAX_BATCH_INPUTS = 100      # HubSpot's batch endpoints take at most 100 inputs per request
BURST_LIMIT = 100           # requests per rolling window per app (OAuth / private apps, base tier)
BURST_WINDOW_S = 10.0
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def iso(ts: dt.datetime) -> str:
    """HubSpot's rendering of a datetime property: UTC, milliseconds, ``Z``."""
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _ms(value: Any) -> int:
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text)
    ts = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (ts - _EPOCH) // dt.timedelta(milliseconds=1)


class State(LoopbackState):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.records: dict[str, dict[str, dict[str, Any]]] = {"contacts": {}, "deals": {}}
        self.searches: list[dict[str, Any]] = []   # every accepted search body, in order
        self.upserts: list[dict[str, Any]] = []    # every accepted batch-upsert body, in order
        self.written: dict[str, dict[str, str]] = {}  # address -> properties written by upserts
        self.upsert_times: deque[float] = deque()  # clock readings of the upserts inside the burst window
        self.rate_limited = 0                      # upserts refused with 429 by the burst limit


class _Handler(JsonHandler):
    server: _Server
    content_type = "application/json;charset=utf-8"

    def _error(self, status: int, category: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                            "category": category}, headers)

    def do_POST(self) -> None:
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if parts == ["crm", "v3", "objects", "contacts", "batch", "upsert"]:
            return self._upsert(raw)
        if len(parts) != 5 or parts[:3] != ["crm", "v3", "objects"] or parts[4] != "search":
            return self._error(404, "OBJECT_NOT_FOUND", f"no route {self.path}")
        obj = parts[3]
        if obj not in st.records:
            return self._error(400, "VALIDATION_ERROR", f"Unable to infer object type from: {obj}")
        if not self._authorized() or self._answered_fault():
            return None
        try:
            body = json.loads(raw or b"{}")
            page = self._search(obj, body)
        except (BadRequest, ValueError) as exc:
            return self._error(400, "VALIDATION_ERROR", str(exc))
        with st.lock:
            st.searches.append({"object": obj, **body})
            st.answered += 1
        self._send(200, page)
        hook = self.server.fake.on_search
        if hook is not None:
            hook(self.server.fake, st.answered)

    def _authorized(self) -> bool:
        """False (after answering 401) unless the request carries the configured bearer token."""
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            self._error(401, "INVALID_AUTHENTICATION",
                        "Authentication credentials not found. This API supports OAuth 2.0 authentication")
            return False
        if auth[len("Bearer "):] != self.server.state.token:
            self._error(401, "INVALID_AUTHENTICATION", "The OAuth token used to make this call expired or is invalid.")
            return False
        return True

    def _answered_fault(self) -> bool:
        """True when a queued fault or the outage (``fail_after``) answered this request instead."""
        st = self.server.state
        with st.lock:
            fault = st.faults.pop(0) if st.faults else None
            down = self.server.fail_after is not None and st.answered >= self.server.fail_after
        if fault == "drop":
            self.close_connection = True
            self.connection.close()
            return True
        if fault == "429":
            self._error(429, "RATE_LIMITS", "You have reached your secondly limit.", {"Retry-After": "1"})
            return True
        if fault in ("500", "502", "503") or down:
            self._error(int(fault or 503), "INTERNAL_ERROR", "internal error")
            return True
        return False

    def _upsert(self, raw: bytes) -> None:
        st, fake = self.server.state, self.server.fake
        if not self._authorized():
            return None
        with st.lock:  # HubSpot counts every request against the burst limit, failed ones too
            now = fake.clock()
            while st.upsert_times and st.upsert_times[0] <= now - fake.burst_window_s:
                st.upsert_times.popleft()
            if len(st.upsert_times) >= fake.burst_limit:
                st.rate_limited += 1
                wait = st.upsert_times[0] + fake.burst_window_s - now
                return self._error(429, "RATE_LIMITS", "You have reached your ten_secondly_rolling limit.",
                                   {**self._limit_headers(0), "Retry-After": str(max(1, math.ceil(wait)))})
            st.upsert_times.append(now)
            remaining = fake.burst_limit - len(st.upsert_times)
        if self._answered_fault():
            return None
        try:
            body = json.loads(raw or b"{}")
            inputs = self._check_upsert(body)
        except (BadRequest, ValueError) as exc:
            return self._error(400, "VALIDATION_ERROR", str(exc), self._limit_headers(remaining))
        results = []
        with st.lock:
            st.upserts.append(body)
            st.answered += 1
            for item in inputs:
                email = item["id"].strip().lower()
                new = email not in st.written
                st.written.setdefault(email, {}).update(item["properties"])
                results.append({"id": str(int(_scramble(email)[:8], 16)), "new": new, "archived": False,
                                "properties": {"email": email, **item["properties"]}})
        stamp = iso(dt.datetime.now(dt.timezone.utc))
        self._send(200, {"status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp},
                   self._limit_headers(remaining))

    def _limit_headers(self, remaining: int) -> dict[str, str]:
        fake = self.server.fake
        return {"X-HubSpot-RateLimit-Max": str(fake.burst_limit),
                "X-HubSpot-RateLimit-Remaining": str(max(0, remaining)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(fake.burst_window_s * 1000))}

    @staticmethod
    def _check_upsert(body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict) or set(body) != {"inputs"} or not isinstance(body["inputs"], list):
            raise BadRequest("request body must be {\"inputs\": [...]}")
        inputs = body["inputs"]
        if not inputs:
            raise BadRequest("inputs must hold at least one input")
        if len(inputs) > MAX_BATCH_INPUTS:
            raise BadRequest(f"Batch input size {len(inputs)} exceeds the limit of {MAX_BATCH_INPUTS} inputs")
        seen: set[str] = set()
        for i, item in enumerate(inputs):
            if not isinstance(item, dict) or set(item) - {"idProperty", "id", "properties", "objectWriteTraceId"}:
                raise BadRequest(f"inputs[{i}]: an input holds idProperty, id and properties")
            if item.get("idProperty") != "email":
                raise BadRequest(f"inputs[{i}]: idProperty must name a unique property (email), got"
                                 f" {item.get('idProperty')!r}")
            if not isinstance(item.get("id"), str) or "@" not in item["id"]:
                raise BadRequest(f"inputs[{i}]: id must be the contact's email address")
            props = item.get("properties")
            if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
                raise BadRequest(f"inputs[{i}]: properties must map property names to string values")
            key = item["id"].strip().lower()
            if key in seen:
                raise BadRequest(f"inputs[{i}]: duplicate id {key!r} in one batch")
            seen.add(key)
        return inputs

    def _search(self, obj: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        extra = set(body) - BODY_KEYS
        if extra:
            raise BadRequest(f"Unrecognized field(s) {sorted(extra)}")
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
            raise BadRequest(f"limit must be an integer between 1 and 100, got {limit!r}")
        after = body.get("after", "0")
        if not isinstance(after, str) or not after.isdigit():
            raise BadRequest(f"after must be a string holding a non-negative integer, got {after!r}")
        offset, cap = int(after), self.server.max_results
        if offset + limit > cap:
            raise BadRequest(f"The search API returns at most {cap} results per query;"
                             f" after={offset} with limit={limit} is past it")
        groups = body.get("filterGroups", [])
        if not isinstance(groups, list) or len(groups) > 5:
            raise BadRequest("filterGroups must be a list of at most 5 groups")
        total_filters = 0
        for g in groups:
            filters = g.get("filters") if isinstance(g, dict) else None
            if not isinstance(filters, list) or not filters or len(filters) > 10:
                raise BadRequest("each filter group needs 'filters': a list of 1 to 10 filters")
            total_filters += len(filters)
            for f in filters:
                self._check_filter(f)
        if total_filters > 25:
            raise BadRequest(f"at most 25 filters in all, got {total_filters}")
        sorts = body.get("sorts", [])
        if not isinstance(sorts, list) or len(sorts) > 1:
            raise BadRequest("sorts: only one sort rule is supported")
        sort_prop, descending = "hs_object_id", False
        if sorts:
            s = sorts[0]
            if isinstance(s, str):
                sort_prop, descending = s.lstrip("-"), s.startswith("-")
            elif isinstance(s, dict) and isinstance(s.get("propertyName"), str):
                if s.get("direction", "ASCENDING") not in ("ASCENDING", "DESCENDING"):
                    raise BadRequest(f"sort direction must be ASCENDING or DESCENDING, got {s.get('direction')!r}")
                sort_prop, descending = s["propertyName"], s.get("direction") == "DESCENDING"
            else:
                raise BadRequest("a sort is a property name or {propertyName, direction}")
        props = body.get("properties")
        if props is not None and (not isinstance(props, list) or not all(isinstance(p, str) for p in props)):
            raise BadRequest("properties must be a list of property names")
        st = self.server.state
        with st.lock:
            matching = [r for r in st.records[obj].values()
                        if not groups or any(all(self._match(r, f) for f in g["filters"]) for g in groups)]
            # Ties in the sort value come back in an arbitrary (but stable) order, never by id.
            matching.sort(key=lambda r: (self._sort_value(r, sort_prop), _scramble(r["id"])), reverse=descending)
            total = len(matching)
            page = matching[offset:offset + limit]
            wanted = props if props is not None else DEFAULT_PROPERTIES[obj]
            results = [{"id": r["id"],
                        "properties": {p: r["properties"].get(p) for p in {*wanted, "hs_object_id", "createdate",
                                                                            MODIFIED[obj]}},
                        "createdAt": r["properties"].get("createdate"),
                        "updatedAt": r["properties"][MODIFIED[obj]], "archived": False} for r in page]
        out: dict[str, Any] = {"total": total, "results": results}
        if offset + len(page) < total:
            nxt = str(offset + len(page))
            out["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return out

    @staticmethod
    def _check_filter(f: Any) -> None:
        if not isinstance(f, dict) or not isinstance(f.get("propertyName"), str):
            raise BadRequest("a filter needs a propertyName")
        op = f.get("operator", "EQ")
        if op not in OPERATORS:
            raise BadRequest(f"operator {op!r} is not one of {sorted(OPERATORS)}")
        if op in ("IN", "NOT_IN"):
            if not isinstance(f.get("values"), list):
                raise BadRequest(f"operator {op} needs 'values'")
        elif op == "BETWEEN":
            if f.get("value") is None or f.get("highValue") is None:
                raise BadRequest("operator BETWEEN needs 'value' and 'highValue'")
        elif op not in ("HAS_PROPERTY", "NOT_HAS_PROPERTY") and not isinstance(f.get("value"), (str, int, float)):
            raise BadRequest(f"operator {op} on {f['propertyName']} needs a 'value'")
        if f["propertyName"] in DATETIME_PROPERTIES and "value" in f:
            try:
                _ms(f["value"])
            except ValueError:
                raise BadRequest(f"{f['value']!r} is not a valid datetime for {f['propertyName']}"
                                 " (epoch milliseconds or ISO 8601)") from None

    @staticmethod
    def _typed(prop: str, value: Any) -> Any:
        if value is None:
            return None
        if prop in DATETIME_PROPERTIES:
            return _ms(value)
        if prop == "hs_object_id":
            return int(value)
        return str(value)

    def _match(self, record: dict[str, Any], f: dict[str, Any]) -> bool:
        prop, op = f["propertyName"], f.get("operator", "EQ")
        have = self._typed(prop, record["properties"].get(prop))
        if op == "HAS_PROPERTY":
            return have is not None
        if op == "NOT_HAS_PROPERTY":
            return have is None
        if have is None:
            return False
        if op in ("IN", "NOT_IN"):
            return (have in {self._typed(prop, v) for v in f["values"]}) == (op == "IN")
        want = self._typed(prop, f.get("value"))
        if op == "BETWEEN":
            return bool(want <= have <= self._typed(prop, f["highValue"]))
        compare: dict[str, Callable[[Any, Any], bool]] = {
            "EQ": lambda a, b: a == b, "NEQ": lambda a, b: a != b, "LT": lambda a, b: a < b,
            "LTE": lambda a, b: a <= b, "GT": lambda a, b: a > b, "GTE": lambda a, b: a >= b,
            "CONTAINS_TOKEN": lambda a, b: str(b).lower() in str(a).lower(),
            "NOT_CONTAINS_TOKEN": lambda a, b: str(b).lower() not in str(a).lower()}
        return compare[op](have, want)

    def _sort_value(self, record: dict[str, Any], prop: str) -> Any:
        value = self._typed(prop, record["properties"].get(prop))
        return (value is None, value if value is not None else 0)


def _scramble(record_id: str) -> str:
    return hashlib.sha256(record_id.encode()).hexdigest()


class _Server(QuietServer):
    state: State
    fake: FakeHubSpot
    max_results: int = MAX_RESULTS  # a test may lower HubSpot's 10,000 cap to reach it with fewer records


class FakeHubSpot(LoopbackFake[State]):
    """The fake in a background thread: ``with FakeHubSpot(token="t") as hs: hs.add(...); ... hs.url``."""

    server: _Server
    on_search: Callable[[FakeHubSpot, int], None] | None = None

    def __init__(self, token: str = "test-token", *, burst_limit: int = BURST_LIMIT,
                 burst_window_s: float = BURST_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(_Server, _Handler, State(token))
        self.burst_limit, self.burst_window_s, self.clock = burst_limit, burst_window_s, clock

    def put(self, obj: str, record_id: int | str, modified: dt.datetime, **properties: Any) -> None:
        """Create or modify a record: its last-modified property becomes ``modified``."""
        with self.state.lock:
            rec = self.state.records[obj].setdefault(
                str(record_id), {"id": str(record_id), "properties": {"hs_object_id": str(record_id),
                                                                     "createdate": iso(modified)}})
            rec["properties"].update({k: (None if v is None else str(v)) for k, v in properties.items()})
            rec["properties"][MODIFIED[obj]] = iso(modified)

    def versions(self, obj: str) -> set[tuple[str, str]]:
        """(id, last-modified) of every record as it is now."""
        with self.state.lock:
            return {(r["id"], r["properties"][MODIFIED[obj]]) for r in self.state.records[obj].values()}

