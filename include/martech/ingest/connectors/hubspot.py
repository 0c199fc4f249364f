"""HubSpot CRM v3 connector: contacts and deals, pulled incrementally into ``raw.hubspot_*``.

API: ``POST /crm/v3/objects/{contacts|deals}/search`` with ``filterGroups`` (OR of groups, AND inside a
group), one sort rule (the search API accepts only one), ``limit`` ≤ 100 and ``properties``; bearer
token. The last-modified property is ``lastmodifieddate`` for contacts and ``hs_lastmodifieddate`` for
deals; date filters take epoch milliseconds.

**Why every page re-anchors on the watermark instead of following ``paging.next.after``.** The
search API's ``after`` is an offset into the live result set, and a query never reaches past 10,000
results. A record modified during the pull leaves its place in the sort order, which shifts every
later record one position back: following ``after`` would skip one record per modification, and
the watermark would then move past it for good. So each page is a fresh query from the watermark
``(modified, id)``::

    (modified = T and hs_object_id > I)  or  (T < modified < cutoff)     sorted by modified

Only ``paging.next`` being present is used (it says whether more results exist). Because ties in
``modified`` come back in no documented order, a full page lands only the records modified *before*
its last timestamp T_last; the next query starts at ``(T_last, none)``. When a whole page shares one
timestamp (bulk imports), that timestamp is drained on its own, sorted by ``hs_object_id`` with an
``hs_object_id > I`` keyset. No query ever reads past its first page, so the 10,000-result cap never
applies, however large the account.

**Resume.** Pages commit with the watermark in one transaction (:mod:`martech.ingest.connectors._land`);
a failed pull's rerun continues from the last landed record.

**Throttling.** The search API allows about five requests per second per token: requests are paced
``min_interval_s`` apart; a 429 waits what ``Retry-After`` says (else backs off), 5xx back off with
jitter (:mod:`martech.ingest.connectors._http`).

**Not seen by search:** archived (deleted) records and merges; staging keeps the last version seen.

**Staging mapping (for the owner of ``include/sql/staging``):** ``raw.hubspot_contacts`` →
``staging.contacts``: contact_id ← contact_id, email, first_name ← firstname, last_name ← lastname,
country, lifecycle_status ← lifecyclestage, consent_status ← ``unsubscribed`` when hs_email_optout is
``true`` else ``subscribed``, created_at ← createdate, updated_at ← lastmodifieddate; latest version
per contact_id by lastmodifieddate. ``raw.hubspot_deals`` stays a CRM table (pipeline reporting);
closed-won deals are not orders.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from martech.ingest.batches import BatchResult
from martech.ingest.connectors._http import HttpClient, RetryPolicy, _default_sleep
from martech.ingest.connectors._land import Watermark, as_text, check_pull, dig, land_streams
from martech.ingest.landing import cutoff_for

API_URL = "https://api.hubapi.com"
PAGE_LIMIT = 100
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class HubSpotObject:
    name: str
    raw_table: str
    modified: str                     # the last-modified property the pull is ordered by
    columns: tuple[tuple[str, str], ...]  # raw column, path into the search result

    @property
    def properties(self) -> list[str]:
        return sorted({p.split(".", 1)[1] for _, p in self.columns if p.startswith("properties.")})


def _props(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((n, f"properties.{n}") for n in names)


OBJECTS: dict[str, HubSpotObject] = {
    "contacts": HubSpotObject(
        "contacts", "raw.hubspot_contacts", "lastmodifieddate",
        (("contact_id", "id"), *_props("email", "firstname", "lastname", "country", "lifecyclestage",
                                       "hs_lead_status", "hs_email_optout", "createdate", "lastmodifieddate"),
         ("archived", "archived"))),
    "deals": HubSpotObject(
        "deals", "raw.hubspot_deals", "hs_lastmodifieddate",
        (("deal_id", "id"), *_props("dealname", "amount", "dealstage", "pipeline", "closedate", "createdate",
                                    "hs_lastmodifieddate"), ("archived", "archived"))),
}


def parse_ts(value: str) -> dt.datetime:
    """HubSpot datetimes: ISO 8601 (``...Z``, with or without milliseconds) or epoch milliseconds."""
    if value.isdigit():
        return dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.timezone.utc)
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def epoch_ms(ts: dt.datetime) -> str:
    return str((ts - _EPOCH) // dt.timedelta(milliseconds=1))


def _filter(prop: str, op: str, value: str) -> dict[str, str]:
    return {"propertyName": prop, "operator": op, "value": value}


class _Puller:
    def __init__(self, http: HttpClient, obj: HubSpotObject, cutoff: dt.datetime, *, page_size: int,
                 min_interval_s: float) -> None:
        self.http, self.obj, self.cutoff = http, obj, cutoff
        self.page_size, self.min_interval_s = page_size, min_interval_s
        self._last_request = 0.0

    def search(self, groups: list[dict[str, Any]], sort: str) -> tuple[list[dict[str, Any]], bool]:
        if self.min_interval_s:
            gap = self.min_interval_s - (time.monotonic() - self._last_request)
            if gap > 0:
                self.http.wait(gap, "pace")
            self._last_request = time.monotonic()
        body = {"filterGroups": groups, "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                "properties": self.obj.properties, "limit": self.page_size}
        data = self.http.request("POST", f"/crm/v3/objects/{self.obj.name}/search", body=body).json() or {}
        results = list(data.get("results") or [])
        for r in results:
            if not (r.get("properties") or {}).get(self.obj.modified):
                raise ValueError(f"HubSpot {self.obj.name} {r.get('id')}: no {self.obj.modified} in the"
                                 " search result; the property must be requested")
        return results, bool((data.get("paging") or {}).get("next"))

    def ts(self, record: dict[str, Any]) -> dt.datetime:
        return parse_ts(str(record["properties"][self.obj.modified]))

    def pages(self, wm: Watermark) -> Iterable[tuple[list[dict[str, Any]], Watermark]]:
        """(records to land, watermark after them) until the stream is exhausted up to the cutoff."""
        mod, cut = self.obj.modified, epoch_ms(self.cutoff)
        while True:
            if wm.ts is None:
                groups = [{"filters": [_filter(mod, "LT", cut)]}]
            elif wm.key is None:
                groups = [{"filters": [_filter(mod, "GTE", epoch_ms(wm.ts)), _filter(mod, "LT", cut)]}]
            else:
                groups = [{"filters": [_filter(mod, "EQ", epoch_ms(wm.ts)),
                                       _filter("hs_object_id", "GT", wm.key)]},
                          {"filters": [_filter(mod, "GT", epoch_ms(wm.ts)), _filter(mod, "LT", cut)]}]
            results, more = self.search(groups, mod)
            if not results:
                return
            last_ts = self.ts(results[-1])
            if not more:
                yield results, Watermark(last_ts, _max_id(r for r in results if self.ts(r) == last_ts))
                return
            head = [r for r in results if self.ts(r) < last_ts]
            if head:
                wm = Watermark(last_ts, None)
                yield head, wm
                continue
            wm = yield from self._drain(last_ts, wm.key if wm.ts == last_ts else None)

    def _drain(self, ts: dt.datetime, after_id: str | None) -> Any:
        """Every record modified exactly at ``ts``, by id (more than a page share the timestamp)."""
        while True:
            filters = [_filter(self.obj.modified, "EQ", epoch_ms(ts))]
            if after_id is not None:
                filters.append(_filter("hs_object_id", "GT", after_id))
            results, more = self.search([{"filters": filters}], "hs_object_id")
            if results:
                after_id = _max_id(results)
                yield results, Watermark(ts, after_id)
            if not more or not results:
                return Watermark(ts, after_id)


def _max_id(records: Iterable[dict[str, Any]]) -> str:
    return str(max(int(r["id"]) for r in records))


def _row(obj: HubSpotObject, record: dict[str, Any]) -> tuple[Sequence[Any], Any]:
    return [as_text(dig(record, path)) for _, path in obj.columns], record


def pull_hubspot(engine: Engine, token: str, *, run_date: dt.date, loaded_at: dt.datetime,
                 objects: Sequence[str] = ("contacts", "deals"), cutoff: dt.datetime | None = None,
                 base_url: str = API_URL, batch_tag: str | None = None, source_name: str = "hubspot",
                 page_size: int = PAGE_LIMIT, min_interval_s: float = 0.22, policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] | None = None, conn_id: str = "hubspot") -> list[BatchResult]:
    """Pull each object's records modified before ``cutoff`` (default: the start of the run date).

    One batch per object and run; pages are checkpointed, so a rerun after a failure resumes, and a
    rerun after success is a no-op. ``token`` is a private-app or OAuth access token.
    """
    if not token:
        raise ValueError(f"no HubSpot token: set the password (or extra 'token') of the Airflow connection"
                         f" {conn_id!r}")
    check_pull("HubSpot", objects, OBJECTS, page_size, PAGE_LIMIT)
    http = HttpClient(base_url, {"Authorization": f"Bearer {token}"}, service="HubSpot",
                      auth_hint=f"check the token in the Airflow connection {conn_id!r} (password or extra"
                                " 'token') and its crm.objects.*.read scopes",
                      policy=policy or RetryPolicy(), sleep=sleep or _default_sleep)
    cutoff = cutoff or cutoff_for(run_date)
    return land_streams(
        engine, {name: OBJECTS[name] for name in objects}, source_name=source_name, run_date=run_date,
        loaded_at=loaded_at, batch_tag=batch_tag, row=_row,
        pages=lambda obj, wm: _Puller(http, obj, cutoff, page_size=page_size, min_interval_s=min_interval_s).pages(wm))
