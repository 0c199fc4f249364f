"""Dry runs record what would be sent (and what changed since the last run) without sending anything;
previews show each variant with real data before a real send."""

from __future__ import annotations

import datetime as dt
import email
from email import policy

import pytest
import sqlalchemy as sa

from martech.campaigns.dispatch import dry_run, write_previews
from martech.campaigns.spec import load_campaign
from martech.testing.campaigns import plant_members, write_promo_campaign

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 5, 4, 9, tzinfo=dt.timezone.utc)


@pytest.fixture()
def spec(tmp_path):
    return load_campaign(write_promo_campaign(tmp_path))


def plant(eng, run: dt.date, ids: list[int]) -> None:
    plant_members(eng, "promo", run, [(f"c{i:02d}", f"u{i}@example.com", f"N{i}", "treatment", "ab"[i % 2])
                                      for i in ids])


def test_dry_run_records_would_send_and_the_audience_diff_and_sends_nothing(clean_warehouse, spec):
    eng = clean_warehouse
    plant(eng, dt.date(2026, 4, 27), list(range(0, 8)))
    plant(eng, dt.date(2026, 5, 4), list(range(4, 12)))
    with eng.begin() as conn:
        conn.execute(sa.text("insert into campaigns.suppressions (email, contact_id, reason, source, created_at)"
                             " values ('u5@example.com', null, 'unsubscribe', 'test', now())"))
    result = dry_run(eng, spec, dt.date(2026, 5, 4), now=NOW)
    assert result["previous_run"] == "2026-04-27"
    assert (result["treatment"], result["added"], result["removed"]) == (8, 4, 4)
    assert result["outcomes"] == {"would_send": 7, "suppressed": 1}
    with eng.connect() as conn:
        rows = {r.contact_id: r for r in conn.execute(sa.text("select * from campaigns.dry_runs"))}
        ledger = conn.execute(sa.text("select count(*) from campaigns.send_ledger")).scalar_one()
    assert ledger == 0  # nothing planned, nothing sent
    assert rows["c05"].outcome == "suppressed" and rows["c05"].detail == "unsubscribe"
    assert rows["c06"].subject in ("Hi N6", "Hello N6") and rows["c06"].change == "kept"
    assert rows["c11"].change == "added"
    # A second dry run replaces the first.
    dry_run(eng, spec, dt.date(2026, 5, 4), now=NOW)
    with eng.connect() as conn:
        assert conn.execute(sa.text("select count(*) from campaigns.dry_runs")).scalar_one() == 8


def test_previews_show_each_variant_with_real_members(clean_warehouse, spec, tmp_path):
    eng = clean_warehouse
    plant(eng, dt.date(2026, 5, 4), list(range(10)))
    files = write_previews(eng, spec, dt.date(2026, 5, 4), tmp_path / "previews", now=NOW)
    assert sorted(p.name for p in files) == ["a-1.eml", "a-2.eml", "b-1.eml", "b-2.eml"]
    first = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert first["To"] == "u0@example.com" and first["Subject"] == "Hi N0"
    before = {p: p.read_bytes() for p in files}
    again = write_previews(eng, spec, dt.date(2026, 5, 4), tmp_path / "previews", now=NOW)
    assert {p: p.read_bytes() for p in again} == before
