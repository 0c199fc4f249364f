"""The demo's summary: quarantine reasons shortened at a word, never mid-word."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from martech.devtools.summaries import summary_lines

pytestmark = pytest.mark.integration

REASON = ("required field(s) email empty; fill them in the export or mark the contact as unreachable"
          " in the CRM before the next run")


def test_quarantine_reasons_are_cut_at_a_word(clean_warehouse):
    with clean_warehouse.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.quarantine (table_name, batch_id, source_ref, received, reason, run_date, reason_code)"
            " values ('raw.crm_contacts', 'b1', 'c.csv:2', '{}', :r, :d, 'missing_email')"),
            {"r": REASON, "d": dt.date(2026, 5, 4)})
    line = next(s for s in summary_lines(clean_warehouse) if "missing_email" in s)
    shown = line.split("      1  ", 1)[1]
    assert shown.endswith(" [...]") and len(shown) <= 70
    assert REASON.startswith(shown.removesuffix(" [...]") + " ")  # ends where a word ends
