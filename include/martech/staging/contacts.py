"""What the staging run says about contacts when no CRM export arrived (shop export files only).

``staging.contacts`` then holds one contact per live shop customer (``derived_from``
``staging.customers``) so that the customer 360, lifecycle and the campaigns' audiences are built at all.
The shop's files carry no marketing consent, so those contacts are ``unknown`` and every campaign
excludes them (``no_consent``): :func:`notes` says so in words, so an empty audience is never silent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa


def notes(engine: Any, run_ts: dt.datetime) -> list[str]:
    """Sentences for the staging run's summary about contacts made from shop customers (none otherwise)."""
    with engine.connect() as conn:
        derived, contactable = conn.execute(sa.text(
            "select count(*), count(*) filter (where consent_status in ('opted_in', 'double_opt_in'))"
            " from staging.contacts where derived_from is not null")).one()
        customers = conn.execute(sa.text("select count(*) from staging.customers where not is_deleted")).scalar_one()
    if not derived:
        return []
    lines = [f"staging.contacts: no CRM export or HubSpot contact received up to {run_ts.isoformat()}, so the"
             f" {derived:,} contacts are made from the {customers:,} live shop customers (contact ids"
             " 'shop:<customer_id>'); customer_360, lifecycle and the audiences are built from them"]
    if not contactable:
        lines.append("campaigns will mail nobody: the shop's customer files carry no marketing consent, so every"
                     " contact's consent is 'unknown' and each audience excludes it (no_consent). Load a CRM"
                     " export with consent_status (contacts_<date>.csv in the CRM export folder) to send")
    return lines
