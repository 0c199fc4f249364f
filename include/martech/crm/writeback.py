"""Scores written back to HubSpot as contact properties: only what changed, resumable, paced.

For every contact with an address the warehouse holds five values (the latest of each mart on or
before the run date): ``martech_lead_score_tier`` (``marts.lead_scores``), ``martech_rfm_segment``
(``marts.customer_rfm``), ``martech_lifecycle_stage`` (``marts.customer_lifecycle``),
``martech_churn_risk`` and ``martech_predicted_clv`` (``marts.clv_predictions``). They go to HubSpot
through ``POST /crm/v3/objects/contacts/batch/upsert`` with ``idProperty: email`` (create or update by
address), at most :data:`MAX_INPUTS` inputs per request.

**Only changes.** ``campaigns.crm_property_writes`` holds, per address and property, the last value
HubSpot acknowledged. A run sends an input per contact with at least one differing property, holding
only the differing properties; a value that disappeared (a contact no longer scored) is cleared with
``''``, which HubSpot's batch endpoints treat as "clear the property".

**Nothing twice.** A run plans first: the changed inputs, cut into batches, go into
``campaigns.crm_write_batches`` as ``pending`` in one transaction. Then each batch is sent, and marked
``sent`` in the transaction that records its values. An outage half-way leaves the rest pending; the
next run (a retry of the task or the next day's) sends the pending batches first and then plans
against the values recorded so far, so an acknowledged input is never planned again. The one gap is a
crash between HubSpot's answer and the commit: that batch is sent again, which the upsert absorbs
(same values).

**Not written:** addresses on the do-not-contact list (erased people, ``campaigns.do_not_contact``),
also when their values were planned before the erasure.

**Pacing.** HubSpot allows 100 requests per rolling 10 s per app; the writer keeps to
``max_requests`` per ``window_s`` (80 / 10 s) itself, and a 429 waits what ``Retry-After`` says
(the connector's shared client, :mod:`martech.ingest.connectors._http`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from martech.ingest.connectors._http import HttpClient, RetryPolicy, _default_sleep
from martech.ingest.sources import SOURCES_FILE, load_sources

if TYPE_CHECKING:
    from martech.warehouse import Warehouse

log = logging.getLogger("martech")

API_URL = "https://api.hubapi.com"
UPSERT_PATH = "/crm/v3/objects/contacts/batch/upsert"
MAX_INPUTS = 100  # HubSpot's limit per batch request
PROPERTIES = ("martech_lead_score_tier", "martech_rfm_segment", "martech_lifecycle_stage", "martech_churn_risk",
              "martech_predicted_clv")

# One row per contact with an address: the latest value of each mart on or before the run date.
_SCORES = """
with
latest_leads as (select max(as_of) as d from marts.lead_scores where as_of <= :run_date),
latest_rfm as (select max(as_of_date) as d from marts.customer_rfm where as_of_date <= :run_date),
latest_life as (select max(as_of_date) as d from marts.customer_lifecycle where as_of_date <= :run_date),
latest_clv as (select max(as_of) as d from marts.clv_predictions where as_of <= :run_date),
contacts as (
    select distinct on (lower(btrim(c.email)))
        lower(btrim(c.email)) as email, c.contact_id, c.customer_id
    from staging.contacts as c
    where nullif(btrim(c.email), '') is not null
    order by lower(btrim(c.email)), c.updated_at desc nulls last, c.contact_id
)
select
    c.email,
    ls.tier as martech_lead_score_tier,
    r.segment as martech_rfm_segment,
    l.lifecycle_stage as martech_lifecycle_stage,
    v.churn_risk as martech_churn_risk,
    to_char(v.expected_revenue, 'FM999999999990.00') as martech_predicted_clv
from contacts as c
left join marts.lead_scores as ls
    on ls.contact_id = c.contact_id and ls.as_of = (select d from latest_leads)
left join marts.customer_rfm as r
    on r.customer_id = c.customer_id and r.as_of_date = (select d from latest_rfm)
left join marts.customer_lifecycle as l
    on l.contact_id = c.contact_id and l.as_of_date = (select d from latest_life)
left join marts.clv_predictions as v
    on v.customer_id = c.customer_id and v.as_of = (select d from latest_clv)
order by c.email
"""


class Pacer:
    """At most ``max_requests`` per rolling ``window_s``: waits (through ``wait``) before a request over it."""

    def __init__(self, max_requests: int, window_s: float, wait: Callable[[float, str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_requests < 1 or window_s <= 0:
            raise ValueError(f"pacing needs max_requests >= 1 and window_s > 0, got {max_requests}/{window_s}")
        self.max_requests, self.window_s, self._wait, self.clock = max_requests, window_s, wait, clock
        self.sent: deque[float] = deque()

    def before_request(self) -> None:
        now = self.clock()
        while self.sent and self.sent[0] <= now - self.window_s:
            self.sent.popleft()
        if len(self.sent) >= self.max_requests:
            self._wait(self.sent[0] + self.window_s - now, "pace")
            now = max(self.clock(), self.sent[0] + self.window_s)
            self.sent.popleft()
        self.sent.append(now)


@dataclass
class WriteBackResult:
    run_date: dt.date
    planned_batches: int = 0
    planned_inputs: int = 0
    resumed_batches: int = 0
    sent_batches: int = 0
    sent_inputs: int = 0
    skipped_do_not_contact: int = 0
    requests: int = 0          # HTTP requests made, retries included
    rate_limited: int = 0      # 429 answers waited out
    waits: list[tuple[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"run_date": self.run_date.isoformat(), "planned_batches": self.planned_batches,
                "planned_inputs": self.planned_inputs, "resumed_batches": self.resumed_batches,
                "sent_batches": self.sent_batches, "sent_inputs": self.sent_inputs,
                "skipped_do_not_contact": self.skipped_do_not_contact, "requests": self.requests,
                "rate_limited": self.rate_limited}


def desired_values(conn: Connection, run_date: dt.date) -> dict[str, dict[str, str]]:
    """Address -> property -> value ('' for none) from the marts as of ``run_date``."""
    out: dict[str, dict[str, str]] = {}
    for row in conn.execute(sa.text(_SCORES), {"run_date": run_date}).mappings():
        out[row["email"]] = {p: ("" if row[p] is None else str(row[p])) for p in PROPERTIES}
    return out


def changed_inputs(desired: Mapping[str, Mapping[str, str]], written: Mapping[str, Mapping[str, str]],
                   ) -> list[dict[str, Any]]:
    """One upsert input per address with a property whose value differs from the last one written.

    A property never written and empty now is not sent (nothing to clear)."""
    inputs = []
    for email in sorted(desired):
        before = written.get(email, {})
        props = {p: v for p, v in desired[email].items() if before.get(p, "") != v}
        if props:
            inputs.append({"idProperty": "email", "id": email, "properties": dict(sorted(props.items()))})
    return inputs


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _written(conn: Connection) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for email, prop, value in conn.execute(sa.text(
            "select email, property, value from campaigns.crm_property_writes")):
        out.setdefault(email, {})[prop] = value
    return out


def _plan(engine: Engine, run_date: dt.date, planned_at: dt.datetime, batch_size: int,
          listed: Callable[[str], bool], result: WriteBackResult) -> None:
    with engine.begin() as conn:
        # One planner at a time: a second run waits here, then finds the first one's batches.
        conn.execute(sa.text("lock table campaigns.crm_write_batches in share row exclusive mode"))
        if conn.execute(sa.text("select 1 from campaigns.crm_write_batches where status = 'pending' limit 1")
                        ).first():
            return  # unsent batches first; the caller plans again once they are out
        desired = {e: v for e, v in desired_values(conn, run_date).items() if not listed(e)}
        inputs = changed_inputs(desired, _written(conn))
        start = conn.execute(sa.text("select coalesce(max(seq), 0) from campaigns.crm_write_batches"
                                     " where run_date = :d"), {"d": run_date}).scalar_one()
        for n, chunk in enumerate(_chunks(inputs, batch_size), start=start + 1):
            conn.execute(sa.text(
                "insert into campaigns.crm_write_batches (batch_id, run_date, seq, inputs, n_inputs, planned_at)"
                " values (:id, :d, :seq, cast(:inputs as jsonb), :n, :t)"),
                {"id": f"{run_date.isoformat()}:{n:04d}", "d": run_date, "seq": n, "inputs": json.dumps(list(chunk)),
                 "n": len(chunk), "t": planned_at})
            result.planned_batches += 1
            result.planned_inputs += len(chunk)


def _pending(engine: Engine) -> list[tuple[str, list[dict[str, Any]]]]:
    with engine.connect() as conn:
        return [(b, list(i)) for b, i in conn.execute(sa.text(
            "select batch_id, inputs from campaigns.crm_write_batches where status = 'pending'"
            " order by run_date, seq"))]


def _send(engine: Engine, http: HttpClient, pacer: Pacer, batch_id: str, inputs: list[dict[str, Any]],
          listed: Callable[[str], bool], now: Callable[[], dt.datetime], result: WriteBackResult) -> None:
    keep = [i for i in inputs if not listed(i["id"])]
    result.skipped_do_not_contact += len(inputs) - len(keep)
    if keep:
        pacer.before_request()
        before = len(http.waits)
        http.request("POST", UPSERT_PATH, body={"inputs": keep})
        result.rate_limited += sum(1 for reason, _ in http.waits[before:] if reason == "429")
    with engine.begin() as conn:
        sent_at = now()
        rows = [{"e": i["id"], "p": p, "v": v} for i in keep for p, v in i["properties"].items()]
        conn.execute(sa.text(
            "insert into campaigns.crm_property_writes (email, property, value, batch_id, written_at)"
            " select r.e, r.p, r.v, :b, :t from jsonb_to_recordset(cast(:rows as jsonb)) as r (e text, p text, v text)"
            " on conflict (email, property) do update set value = excluded.value, batch_id = excluded.batch_id,"
            " written_at = excluded.written_at"), {"rows": json.dumps(rows), "b": batch_id, "t": sent_at})
        conn.execute(sa.text("update campaigns.crm_write_batches set status = 'sent', sent_at = :t,"
                             " inputs = cast(:inputs as jsonb), n_inputs = :n where batch_id = :b"),
                     {"t": sent_at, "b": batch_id, "inputs": json.dumps(keep), "n": len(keep)})
    result.sent_batches += 1 if keep else 0
    result.sent_inputs += len(keep)


def write_back_hubspot(engine: Engine, token: str, *, run_date: dt.date, planned_at: dt.datetime,
                       base_url: str = API_URL, batch_size: int = MAX_INPUTS, max_requests: int = 80,
                       window_s: float = 10.0, policy: RetryPolicy | None = None,
                       sleep: Callable[[float], None] | None = None, clock: Callable[[], float] = time.monotonic,
                       conn_id: str = "hubspot") -> WriteBackResult:
    """Send the changed score properties of ``run_date`` (after any batches an earlier run left pending)."""
    from martech.privacy.erase import do_not_contact

    if not token:
        raise ValueError(f"no HubSpot token: set the password (or extra 'token') of the Airflow connection"
                         f" {conn_id!r}")
    if not 1 <= batch_size <= MAX_INPUTS:
        raise ValueError(f"batch_size must be between 1 and {MAX_INPUTS} (HubSpot's batch limit), got {batch_size}")
    http = HttpClient(base_url, {"Authorization": f"Bearer {token}"}, service="HubSpot",
                      auth_hint=f"check the token in the Airflow connection {conn_id!r} and its"
                                " crm.objects.contacts.write scope",
                      policy=policy or RetryPolicy(), sleep=sleep or _default_sleep)
    pacer = Pacer(max_requests, window_s, http.wait, clock)
    result = WriteBackResult(run_date)
    with engine.connect() as conn:
        listed = do_not_contact(conn)
    sent_at = _clock_from(planned_at, clock)
    try:
        for round_ in range(2):  # pending batches of an earlier run (if any), then this run's
            pending = _pending(engine)
            if round_ == 0:
                result.resumed_batches = len(pending)
            for batch_id, inputs in pending:
                _send(engine, http, pacer, batch_id, inputs, listed, sent_at, result)
            if round_ == 0:
                _plan(engine, run_date, planned_at, batch_size, listed, result)
    finally:
        result.requests, result.waits = http.requests, list(http.waits)
    log.info("HubSpot write-back %s: %s", run_date, result.as_dict())
    return result


def _clock_from(start: dt.datetime, clock: Callable[[], float]) -> Callable[[], dt.datetime]:
    """Acknowledgement times: the run's time plus the elapsed time (never the wall clock's date)."""
    t0 = clock()
    return lambda: start + dt.timedelta(seconds=max(0.0, clock() - t0))


def run_write_back(wh: Warehouse, run_date: dt.date, *, credentials: Callable[[str], Mapping[str, Any]],
                   sources_path: Path = SOURCES_FILE) -> dict[str, Any]:
    """Entry point of the crm_sync DAG: write back to each hubspot source with ``write_back: true``."""
    from martech.db import migrate
    from martech.ingest.landing import cutoff_for

    sources = [(n, s) for n, s in load_sources(sources_path).items() if s.kind == "hubspot" and s.write_back]
    if not sources:
        log.info("no hubspot source with write_back: true in %s; nothing written back", sources_path)
        return {"run_date": run_date.isoformat(), "enabled": False, "sources": {}}
    migrate(wh.engine)
    out = {}
    for name, source in sources:
        conn_id = source.conn_id or "hubspot"
        result = write_back_hubspot(wh.engine, str(credentials(conn_id).get("token") or ""), run_date=run_date,
                                    planned_at=cutoff_for(run_date), base_url=source.url or API_URL,
                                    conn_id=conn_id)
        out[name] = result.as_dict()
    return {"run_date": run_date.isoformat(), "enabled": True, "sources": out}
