"""Sunset: stop mailing contacts who never answer a campaign.

A campaign with ``sunset_after: N`` moves a contact to ``campaigns.suppressions`` (reason ``sunset``, source
``sunset:<campaign>``) once N of its messages were sent to them before the run date and none was answered:
no human open (a machine open does not count) or click event on any of them and no completed order since
the first. It runs at the start of the campaign's snapshot, in the same transaction, so the contact is
excluded from that run on (reason ``suppressed``, detail ``sunset``) — and from every other campaign, as a
suppression is global. A rerun finds the same contacts and adds nothing twice (one suppression per address).
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

import sqlalchemy as sa

from martech.campaigns.suppressions import Suppression, add_suppressions

_UNANSWERED = sa.text("""
with sends as (
    select l.contact_id, lower(btrim(l.email)) as email, l.send_id, l.sent_at
    from campaigns.send_ledger as l
    where l.campaign_id = :campaign_id and l.status = 'sent' and l.sent_at < :cutoff
),
engaged as (
    select distinct e.send_id from staging.email_events as e
    where e.event in ('open', 'click') and not e.machine_open and e.send_id is not null
),
per_contact as (
    select s.contact_id, min(s.email) as email, count(*) as sends,
           count(*) filter (where g.send_id is null) as unanswered, min(s.sent_at) as first_sent_at
    from sends as s
    left join engaged as g on g.send_id = s.send_id
    group by s.contact_id
),
last_order as (
    select c.contact_id, max(o.order_ts) as last_order_at
    from staging.orders as o
    inner join staging.contacts as c on c.customer_id = o.customer_id
    where o.status = 'completed' and o.order_ts < :cutoff
    group by c.contact_id
)
select p.contact_id, p.email
from per_contact as p
left join last_order as lo on lo.contact_id = p.contact_id
where p.unanswered >= :n and p.unanswered = p.sends
  and (lo.last_order_at is null or lo.last_order_at < p.first_sent_at)
order by p.contact_id
""")


def apply_sunset(conn: Any, spec: Any, run_date: date) -> int:
    """Suppress the campaign's never-answering contacts; returns how many addresses were added."""
    n = getattr(spec, "sunset_after", None)
    if not n:
        return 0
    for table in ("staging.email_events", "staging.orders", "staging.contacts"):
        if conn.execute(sa.text("select to_regclass(:t)"), {"t": table}).scalar() is None:
            return 0  # nothing to judge engagement by yet
    cutoff = datetime.combine(run_date, time(0), tzinfo=timezone.utc)
    rows = conn.execute(_UNANSWERED, {"campaign_id": spec.id, "cutoff": cutoff, "n": n}).all()
    return add_suppressions(conn, [Suppression(email=email, contact_id=cid, reason="sunset",
                                               source=f"sunset:{spec.id}", created_at=cutoff)
                                   for cid, email in rows])
