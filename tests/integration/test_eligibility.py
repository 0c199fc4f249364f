"""Eligibility with reasons, cooldowns, the frequency cap, the power check, coupons and the snapshot
record, against a real PostgreSQL.

Like tests/integration/test_campaigns.py, the source tables are minimal fixtures in a database of this
module's own. Every test campaign is a YAML written to a temporary folder (with its own
``_settings.yml`` where the cap matters) whose audience is a fixed list of contacts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from martech.campaigns import coupons as coupons_module
from martech.campaigns.audience import AudienceSqlError, assign_arm, build_snapshot, minimum_detectable_effect
from martech.campaigns.dispatch import dispatch, make_send_id
from martech.campaigns.eligibility import EMAIL_PATTERN, REASONS, email_problem
from martech.campaigns.spec import CampaignSpec, CampaignSpecError, load_campaign, load_campaigns, load_settings
from martech.campaigns.suppressions import Suppression, add_suppressions
from martech.campaigns.transports import OutboxTransport

pytestmark = pytest.mark.integration

RUN = date(2024, 6, 10)
SECRET = "coupon-secret-for-tests"
CONTACTS_DDL = """
create schema if not exists staging;
create table staging.contacts (
    contact_id text primary key, email text, first_name text, last_name text, birthday date, country text,
    timezone text, consent_status text, lifecycle_status text, customer_id bigint,
    created_at timestamptz, updated_at timestamptz);
"""
RESET = ("staging.contacts", "campaigns.send_ledger", "campaigns.suppressions", "campaigns.coupons",
         "audiences.audience_members", "audiences.exclusions", "audiences.snapshots", "raw.ingest_batches")


# -- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(module_warehouse) -> Engine:
    return module_warehouse.create(CONTACTS_DDL)


@pytest.fixture()
def db(warehouse: Engine, module_warehouse, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("MARTECH_COUPON_SECRET", SECRET)
    return module_warehouse.truncate(RESET)


def add_contacts(engine: Engine, *rows: dict[str, Any]) -> None:
    base = {"email": None, "first_name": "Test", "consent_status": "opted_in", "lifecycle_status": "customer",
            "birthday": None}
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into staging.contacts (contact_id, email, first_name, consent_status, lifecycle_status,"
            " birthday) values (:contact_id, :email, :first_name, :consent_status, :lifecycle_status, :birthday)"),
            [{**base, "email": f"{r['contact_id']}@example.com", **r} for r in rows])


def people(*ids: str, **fields: Any) -> list[dict[str, Any]]:
    return [{"contact_id": i, **fields} for i in ids]


def make_campaign(folder: Path, campaign_id: str, ids: Sequence[str], *, extra_sql: str = "",
                  settings: str | None = None, **fields: Any) -> CampaignSpec:
    """A campaign over the given contacts (plus ``extra_sql`` rows), using the birthday templates."""
    (folder / "audiences").mkdir(parents=True, exist_ok=True)
    listed = ", ".join(f"'{i}'" for i in ids) or "null"
    sql = ("select contact_id, email, first_name, true as is_customer\n"
           f"from staging.contacts where contact_id in ({listed})\n{extra_sql}")
    (folder / "audiences" / f"{campaign_id}.sql").write_text(sql)
    definition = {
        "id": campaign_id, "name": campaign_id, "owner": "test", "description": "test",
        "schedule": "0 8 * * *", "audience_sql": f"audiences/{campaign_id}.sql", "template": "birthday",
        "holdout_share": 0, "variants": [{"id": "a", "weight": 1, "subject": "Hi"}], **fields,
    }
    (folder / f"{campaign_id}.yml").write_text(json.dumps(definition))  # JSON is YAML
    if settings is not None:
        (folder / "_settings.yml").write_text(settings)
    return load_campaign(folder / f"{campaign_id}.yml")


def sent(engine: Engine, contact_id: str, campaign_id: str, day: date, *, status: str = "sent",
         email: str | None = None) -> None:
    """A ledger row as dispatch would have left it for a run on ``day``."""
    run_id = day.isoformat()
    at = datetime.combine(day, time(9), tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into campaigns.send_ledger (send_id, campaign_id, run_id, step, contact_id, email, variant,"
            " status, attempts, created_at, sent_at) values (:sid, :c, :r, 1, :cid, :email, 'a', :status, 1,"
            " :at, :sent_at)"),
            {"sid": make_send_id(campaign_id, run_id, 1, contact_id), "c": campaign_id, "r": run_id,
             "cid": contact_id, "email": email or f"{contact_id}@example.com", "status": status, "at": at,
             "sent_at": at if status == "sent" else None})


def in_holdout(engine: Engine, contact_id: str, campaign_id: str, day: date) -> None:
    """An earlier run's holdout membership of ``contact_id``."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email, first_name,"
            " arm, variant, definition_hash) values (:c, :r, :d, :cid, :email, 'T', 'holdout', 'a', 'h')"),
            {"c": campaign_id, "r": day.isoformat(), "d": day, "cid": contact_id,
             "email": f"{contact_id}@example.com"})


def exclusions(engine: Engine, campaign_id: str, run: date = RUN) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "select contact_id, reason, detail from audiences.exclusions where campaign_id = :c and run_id = :r"
            " order by contact_id, reason"), {"c": campaign_id, "r": run.isoformat()})]


def member_ids(engine: Engine, campaign_id: str, run: date = RUN) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "select contact_id from audiences.audience_members where campaign_id = :c and run_id = :r"
            " order by contact_id"), {"c": campaign_id, "r": run.isoformat()}).scalars())


def table(engine: Engine, name: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"select t::text from {name} as t order by 1"))]


def snapshot_row(engine: Engine, campaign_id: str, run: date = RUN) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(
            "select * from audiences.snapshots where campaign_id = :c and run_id = :r"),
            {"c": campaign_id, "r": run.isoformat()}).mappings().one())


def reasons_of(rows: list[tuple[str, str, str | None]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for contact_id, reason, _ in rows:
        out.setdefault(contact_id, []).append(reason)
    return out


# -- the email pattern (pure) --------------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "ann@example.com", "ann.o'brien+news@mail.example.co.uk", "  Ann@Example.COM ", "x@a-b.io", "1@2.de",
])
def test_email_pattern_accepts(address: str) -> None:
    assert email_problem(address) is None


@pytest.mark.parametrize(("address", "reason"), [
    (None, "missing_email"), ("", "missing_email"), ("   ", "missing_email"),
    ("ann", "invalid_email"), ("ann@", "invalid_email"), ("@example.com", "invalid_email"),
    ("ann@example", "invalid_email"), ("ann@@example.com", "invalid_email"), ("ann example@x.com", "invalid_email"),
    ("ann..b@example.com", "invalid_email"), (".ann@example.com", "invalid_email"),
    ("ann@-example.com", "invalid_email"), ("ann@example.c", "invalid_email"), ("a" * 250 + "@x.com", "invalid_email"),
])
def test_email_pattern_rejects(address: str | None, reason: str) -> None:
    problem = email_problem(address)
    assert problem is not None and problem[0] == reason
    assert EMAIL_PATTERN.pattern.startswith("^")


# -- the power check (pure) ----------------------------------------------------------------------------


def test_mde_matches_the_textbook_sample_size() -> None:
    # 8,158 per arm detect 5% -> 6% at alpha 0.05 (two-sided) and power 0.8 (Fleiss, no continuity correction).
    assert minimum_detectable_effect(8158, 8158, 0.05) == pytest.approx(0.01, abs=2e-5)
    assert minimum_detectable_effect(8158, 8158, 0.05, power=0.9) > 0.01
    small, large = minimum_detectable_effect(900, 100, 0.05), minimum_detectable_effect(90_000, 10_000, 0.05)
    assert small is not None and large is not None and large < small
    assert minimum_detectable_effect(100, 0, 0.05) is None
    assert minimum_detectable_effect(1, 1, 0.5) is None


# -- stage 1 and 2: facts about the contact, duplicates ------------------------------------------------


def test_every_candidate_is_a_member_or_excluded_with_its_reasons(db: Engine, tmp_path: Path) -> None:
    add_contacts(db, *people("ok1", "ok2"),
                 {"contact_id": "nomail", "email": None}, {"contact_id": "blank", "email": "  "},
                 {"contact_id": "typo", "email": "ann(at)example.com"},
                 {"contact_id": "out", "consent_status": "opted_out"},
                 {"contact_id": "unk", "consent_status": "unknown"},
                 {"contact_id": "bounced"}, {"contact_id": "movedon", "email": "new@example.com"},
                 {"contact_id": "twice", "consent_status": "opted_out", "email": "Twice@Example.com"},
                 {"contact_id": "dup1", "email": "shared@example.com"},
                 {"contact_id": "dup2", "email": " SHARED@example.com"},
                 {"contact_id": "dup0", "email": "shared@example.com", "consent_status": "opted_out"})
    with db.begin() as conn:
        add_suppressions(conn, [
            Suppression(email="bounced@example.com", reason="bounce", created_at=datetime(2024, 5, 1, tzinfo=timezone.utc)),
            Suppression(email="old@example.com", contact_id="movedon", reason="spamreport",
                        created_at=datetime(2024, 5, 1, tzinfo=timezone.utc)),
            Suppression(email="twice@example.com", reason="unsubscribe",
                        created_at=datetime(2024, 5, 1, tzinfo=timezone.utc)),
        ])
    ids = ["ok1", "ok2", "nomail", "blank", "typo", "out", "unk", "bounced", "movedon", "twice", "dup0", "dup1",
           "dup2"]
    spec = make_campaign(tmp_path, "promo", ids,
                         extra_sql="union all select 'ghost', 'ghost@example.com', 'Ghost', true")
    summary = build_snapshot(db, spec, RUN)

    assert member_ids(db, "promo") == ["dup1", "ok1", "ok2"]
    assert exclusions(db, "promo") == [
        ("blank", "missing_email", "blank"),
        ("bounced", "suppressed", "bounce"),
        ("dup0", "no_consent", "opted_out"),
        ("dup2", "duplicate_email", "dup1"),
        ("ghost", "no_consent", "no row in staging.contacts"),
        ("movedon", "suppressed", "spamreport"),
        ("nomail", "missing_email", "null"),
        ("out", "no_consent", "opted_out"),
        ("twice", "no_consent", "opted_out"),
        ("twice", "suppressed", "unsubscribe"),  # one row per reason
        ("typo", "invalid_email", "does not match the address pattern"),
        ("unk", "no_consent", "unknown"),
    ]
    with db.connect() as conn:
        emails = dict(conn.execute(sa.text(
            "select contact_id || ':' || reason, email from audiences.exclusions where campaign_id = 'promo'")).all())
    assert emails["dup2:duplicate_email"] == "shared@example.com" and emails["nomail:missing_email"] is None

    excluded = {r[0] for r in exclusions(db, "promo")}
    assert excluded.isdisjoint(member_ids(db, "promo"))
    assert len(excluded) + summary.members == summary.candidates == 14
    assert summary.exclusions == {"missing_email": 2, "invalid_email": 1, "no_consent": 5, "suppressed": 3,
                                  "duplicate_email": 1}
    assert (summary.excluded, summary.duplicate_emails_dropped) == (11, 1)
    row = snapshot_row(db, "promo")
    assert (row["candidates"], row["members"], row["excluded"]) == (14, 3, 11)
    assert row["exclusions"] == summary.exclusions


def test_why_did_contact_4711_not_get_the_birthday_mail(db: Engine) -> None:
    add_contacts(db, {"contact_id": "4711", "birthday": date(1980, 6, 10), "consent_status": "opted_out"},
                 {"contact_id": "4712", "birthday": date(1981, 6, 10)})
    build_snapshot(db, {s.id: s for s in load_campaigns()}["birthday"], RUN)
    with db.connect() as conn:
        why = conn.execute(sa.text(
            "select run_id, reason, detail from audiences.exclusions"
            " where campaign_id = 'birthday' and contact_id = '4711'")).all()
    assert [tuple(r) for r in why] == [("2024-06-10", "no_consent", "opted_out")]
    assert member_ids(db, "birthday") == ["4712"]


def test_rerun_replaces_exclusions_identically(db: Engine, tmp_path: Path) -> None:
    add_contacts(db, *people("a", "b", "c"), {"contact_id": "d", "consent_status": "opted_out"},
                 {"contact_id": "e", "email": "bad"})
    sent(db, "c", "promo", RUN - timedelta(days=2))
    spec = make_campaign(tmp_path, "promo", ["a", "b", "c", "d", "e"], cooldown_days=7, holdout_share=0.3,
                         coupon={"discount_percent": 10})
    build_snapshot(db, spec, RUN)
    first = {name: table(db, name) for name in ("audiences.exclusions", "audiences.audience_members",
                                                 "audiences.snapshots", "campaigns.coupons")}
    build_snapshot(db, spec, RUN)
    assert {name: table(db, name) for name in first} == first
    # Consent given before the rerun: d's exclusion is replaced, not kept beside the new membership.
    with db.begin() as conn:
        conn.execute(sa.text("update staging.contacts set consent_status = 'double_opt_in' where contact_id = 'd'"))
    build_snapshot(db, spec, RUN)
    assert reasons_of(exclusions(db, "promo")) == {"c": ["cooldown"], "e": ["invalid_email"]}
    assert "d" in member_ids(db, "promo")


# -- stage 3: cooldown and frequency cap ---------------------------------------------------------------


def test_cooldown_counts_this_campaigns_sends_and_holdout_within_the_window(db: Engine, tmp_path: Path) -> None:
    ids = ["recent", "edge", "old", "failed", "other", "held", "alias", "today"]
    add_contacts(db, *people(*ids))
    sent(db, "recent", "promo", RUN - timedelta(days=3))
    sent(db, "edge", "promo", RUN - timedelta(days=7))       # 7 days ago: still within cooldown_days 7
    sent(db, "old", "promo", RUN - timedelta(days=8))        # outside
    sent(db, "failed", "promo", RUN - timedelta(days=1), status="failed")  # never reached the mailbox
    sent(db, "other", "news", RUN - timedelta(days=1))       # another campaign
    in_holdout(db, "held", "promo", RUN - timedelta(days=5))  # would have been sent: holdout counts too
    sent(db, "previous-id", "promo", RUN - timedelta(days=2), email="ALIAS@example.com ")  # same address
    sent(db, "today", "promo", RUN, status="pending")        # this run's own plan is not history
    spec = make_campaign(tmp_path, "promo", ids, cooldown_days=7, settings="frequency_cap: {max_emails: null}\n")
    summary = build_snapshot(db, spec, RUN)

    assert exclusions(db, "promo") == [
        ("alias", "cooldown", "sent 2024-06-08 (run 2024-06-08), cooldown_days 7"),
        ("edge", "cooldown", "sent 2024-06-03 (run 2024-06-03), cooldown_days 7"),
        ("held", "cooldown", "holdout 2024-06-05 (run 2024-06-05), cooldown_days 7"),
        ("recent", "cooldown", "sent 2024-06-07 (run 2024-06-07), cooldown_days 7"),
    ]
    assert member_ids(db, "promo") == ["failed", "old", "other", "today"]
    assert summary.exclusions == {"cooldown": 4}
    # Without cooldown_days (the default) nobody is held back.
    plain = make_campaign(tmp_path / "plain", "promo", ids, settings="frequency_cap: {max_emails: null}\n")
    assert plain.cooldown_days == 0
    assert build_snapshot(db, plain, RUN).members == len(ids)


def pick(campaign_id: str, arm: str, prefix: str, share: float = 0.5) -> str:
    """A contact id that lands in ``arm`` of ``campaign_id``."""
    return next(f"{prefix}{i}" for i in range(1000)
                if assign_arm(campaign_id, campaign_id, f"{prefix}{i}", share) == arm)


def test_frequency_cap_counts_the_window_and_higher_priority_plans(db: Engine, tmp_path: Path) -> None:
    cap = "frequency_cap:\n  max_emails: 2\n  window_days: 7\n"
    d = RUN
    full = "full"                                   # 2 sends in the window
    aged = "aged"                                   # 2 sends, both older than the 7-day window
    planned = pick("high", "treatment", "planned")  # 1 send + today's high-priority treatment
    held = pick("high", "holdout", "held")          # 1 send + today's high-priority holdout (not a mail)
    lower = "lower"                                 # 1 send + today's lower-priority treatment
    own = "own"                                     # 1 send + this campaign's holdout last week
    ids = [full, aged, planned, held, lower, own]
    add_contacts(db, *people(*ids))
    sent(db, full, "news", d - timedelta(days=1))
    sent(db, full, "promo", d - timedelta(days=6))
    sent(db, aged, "news", d - timedelta(days=7))
    sent(db, aged, "news", d - timedelta(days=8))
    for contact in (planned, held, lower, own):
        sent(db, contact, "news", d - timedelta(days=2))
    in_holdout(db, own, "mid", d - timedelta(days=4))

    high = make_campaign(tmp_path, "high", [planned, held], priority=10, holdout_share=0.5, settings=cap)
    low = make_campaign(tmp_path, "low", [lower], priority=90, settings=cap)
    mid = make_campaign(tmp_path, "mid", ids, priority=50, settings=cap)
    assert load_settings(tmp_path).frequency_cap.max_emails == 2
    build_snapshot(db, low, d)    # built first, but it cannot take the day from a higher priority
    build_snapshot(db, high, d)
    assert member_ids(db, "high") == sorted([planned, held])
    summary = build_snapshot(db, mid, d)

    got = {c: (reason, detail) for c, reason, detail in exclusions(db, "mid")}
    assert sorted(got) == sorted([full, planned, own])
    assert got[full] == ("frequency_cap",
                         "2 of max 2 in 7 days: news 2024-06-09 sent, promo 2024-06-04 sent")
    assert got[planned] == ("frequency_cap",
                            "2 of max 2 in 7 days: high 2024-06-10 planned, news 2024-06-08 sent")
    assert got[own] == ("frequency_cap", "2 of max 2 in 7 days: news 2024-06-08 sent, mid 2024-06-06 holdout")
    assert member_ids(db, "mid") == sorted([aged, held, lower])
    assert summary.exclusions == {"frequency_cap": 3}
    assert snapshot_row(db, "mid")["frequency_cap"] == 2 and snapshot_row(db, "high")["priority"] == 10


def test_cooldown_and_cap_are_both_recorded(db: Engine, tmp_path: Path) -> None:
    add_contacts(db, *people("busy", "calm"))
    sent(db, "busy", "promo", RUN - timedelta(days=1))
    sent(db, "busy", "news", RUN - timedelta(days=2))
    spec = make_campaign(tmp_path, "promo", ["busy", "calm"], cooldown_days=3,
                         settings="frequency_cap: {max_emails: 2}\n")
    build_snapshot(db, spec, RUN)
    assert reasons_of(exclusions(db, "promo")) == {"busy": ["cooldown", "frequency_cap"]}
    assert set(REASONS) == {"converted", "missing_email", "invalid_email", "no_consent", "suppressed", "duplicate_email",
                            "cooldown", "frequency_cap"}


def test_rerun_after_dispatch_keeps_the_sent_members(db: Engine, tmp_path: Path) -> None:
    ids = [f"r{i:02d}" for i in range(20)]
    add_contacts(db, *people(*ids))
    sent(db, "r00", "news", RUN - timedelta(days=1))
    spec = make_campaign(tmp_path, "promo", ids, cooldown_days=30, holdout_share=0.2,
                         settings="frequency_cap: {max_emails: 1}\n", coupon={"discount_percent": 10})
    build_snapshot(db, spec, RUN)
    before = {name: table(db, name) for name in ("audiences.exclusions", "audiences.audience_members",
                                                  "campaigns.coupons")}
    outbox = OutboxTransport(tmp_path / "outbox")
    result = dispatch(db, spec, RUN, outbox, now=datetime.combine(RUN, time(9), tzinfo=timezone.utc))
    assert result.sent_now > 0
    build_snapshot(db, spec, RUN)  # its own sends are not "history": nobody falls into cooldown or cap
    assert {name: table(db, name) for name in before} == before
    assert reasons_of(exclusions(db, "promo")) == {"r00": ["frequency_cap"]}
    # The next day the run's recipients *and* holdout are in cooldown alike.
    nxt = build_snapshot(db, spec, RUN + timedelta(days=1))
    assert nxt.members == 0 and nxt.exclusions == {"cooldown": 19, "frequency_cap": 20}


def test_bad_settings_file_is_explained(tmp_path: Path) -> None:
    (tmp_path / "_settings.yml").write_text("frequency_cap: {max_emails: 0, window: 7}\n")
    with pytest.raises(CampaignSpecError) as info:
        load_settings(tmp_path)
    message = str(info.value)
    assert "_settings.yml: frequency_cap.max_emails must be at least 1" in message
    assert "frequency_cap.window is not a known field" in message and "window_days" in message
    assert load_settings(tmp_path / "missing").frequency_cap.max_emails == 3
    shipped = load_settings()  # include/campaigns/_settings.yml
    assert (shipped.frequency_cap.max_emails, shipped.frequency_cap.window_days) == (3, 7)


# -- power check and input watermark --------------------------------------------------------------------


def test_power_warning_when_the_holdout_is_too_small(db: Engine, tmp_path: Path, caplog) -> None:
    ids = [f"p{i:03d}" for i in range(300)]
    add_contacts(db, *people(*ids))
    hopeful = make_campaign(tmp_path, "promo", ids, holdout_share=0.1, baseline_conversion=0.05,
                            min_detectable_effect=0.01)
    with caplog.at_level(logging.WARNING, logger="martech.campaigns.audience"):
        summary = build_snapshot(db, hopeful, RUN)
    expected = minimum_detectable_effect(summary.treatment, summary.holdout, 0.05)
    assert expected is not None and summary.mde == pytest.approx(expected)
    assert summary.power_warning and summary.mde > 0.01
    assert summary.mde_relative == pytest.approx(expected / 0.05)
    assert "cannot detect the min_detectable_effect of 0.0100" in caplog.text
    row = snapshot_row(db, "promo")
    assert row["power_warning"] is True and float(row["mde"]) == pytest.approx(expected, abs=1e-6)
    assert float(row["min_detectable_effect"]) == 0.01 and float(row["baseline_conversion"]) == 0.05

    modest = make_campaign(tmp_path / "modest", "promo", ids, holdout_share=0.1, min_detectable_effect=0.5)
    assert not build_snapshot(db, modest, RUN).power_warning
    silent = make_campaign(tmp_path / "silent", "promo", ids, holdout_share=0.1)  # no target: no warning
    assert silent.baseline_conversion == 0.05 and silent.min_detectable_effect is None
    assert not build_snapshot(db, silent, RUN).power_warning
    no_holdout = make_campaign(tmp_path / "none", "promo", ids, min_detectable_effect=0.05)
    summary = build_snapshot(db, no_holdout, RUN)
    assert summary.mde is None and summary.power_warning


def test_snapshot_records_the_input_watermark(db: Engine, tmp_path: Path) -> None:
    add_contacts(db, *people("w1"))
    spec = make_campaign(tmp_path, "promo", ["w1"])
    build_snapshot(db, spec, RUN)
    assert snapshot_row(db, "promo")["input_loaded_at"] is None
    with db.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.ingest_batches (batch_id, source, table_name, run_date, status, rows_received,"
            " rows_loaded, loaded_at) values (:b, 'test', :t, :d, 'complete', 1, 1, :at)"), [
            {"b": b, "t": t, "d": at.date(), "at": at} for b, t, at in [
                ("crm-1", "raw.crm_contacts", datetime(2024, 6, 9, tzinfo=timezone.utc)),
                ("crm-2", "raw.crm_contacts", datetime(2024, 6, 10, tzinfo=timezone.utc)),
                ("crm-3", "raw.crm_contacts", datetime(2024, 6, 11, tzinfo=timezone.utc)),  # after the run date
                ("shop-1", "raw.shop_orders", datetime(2024, 6, 8, tzinfo=timezone.utc)),
            ]])
    build_snapshot(db, spec, RUN)
    row = snapshot_row(db, "promo")
    assert row["input_loaded_at"] == datetime(2024, 6, 10, tzinfo=timezone.utc)
    assert row["input_batch_ids"] == {"raw.crm_contacts": "crm-2", "raw.shop_orders": "shop-1"}
    assert row["definition_hash"] == spec.definition_hash


# -- coupons -------------------------------------------------------------------------------------------


def coupon_rows(engine: Engine, campaign_id: str = "promo", run: date = RUN) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r["contact_id"]: dict(r) for r in conn.execute(sa.text(
            "select * from campaigns.coupons where campaign_id = :c and run_id = :r"),
            {"c": campaign_id, "r": run.isoformat()}).mappings()}


def test_birthday_coupons_are_unique_idempotent_and_valid_for_a_week(db: Engine) -> None:
    ids = [f"b{i:03d}" for i in range(60)]
    add_contacts(db, *people(*ids, birthday=date(1990, 6, 10)), {"contact_id": "nope", "birthday": date(1990, 6, 10),
                                                               "consent_status": "opted_out"})
    spec = {s.id: s for s in load_campaigns()}["birthday"]
    summary = build_snapshot(db, spec, RUN)
    rows = coupon_rows(db, "birthday")
    assert summary.coupons == len(rows) == 60 and "nope" not in rows  # members of both arms, nobody else
    assert len({r["code"] for r in rows.values()}) == 60
    for contact_id, r in rows.items():
        assert r["code"].startswith("BDAY-") and coupons_module.is_well_formed(r["code"])
        assert r["send_id"] == make_send_id("birthday", "2024-06-10", 1, contact_id)
        assert r["code"] == coupons_module.coupon_code(r["send_id"], SECRET, prefix="BDAY")
        assert (r["discount_percent"], r["valid_from"], r["expires_at"]) == (
            15, datetime(2024, 6, 10, tzinfo=timezone.utc), datetime(2024, 6, 17, tzinfo=timezone.utc))
    with db.connect() as conn:
        attrs = dict(conn.execute(sa.text(
            "select contact_id, attributes -> 'coupon' from audiences.audience_members"
            " where campaign_id = 'birthday'")).all())
    assert attrs["b000"] == {"code": rows["b000"]["code"], "discount_percent": 15, "valid_from": "2024-06-10",
                             "valid_until": "2024-06-16", "expires_at": "2024-06-17T00:00:00+00:00"}

    before = table(db, "campaigns.coupons"), table(db, "audiences.audience_members")
    assert build_snapshot(db, spec, RUN).coupons == 60
    assert (table(db, "campaigns.coupons"), table(db, "audiences.audience_members")) == before


def test_coupons_follow_the_snapshot_but_sent_ones_are_never_changed(db: Engine, tmp_path: Path) -> None:
    add_contacts(db, *people("c1", "c2", "c3"))
    spec = make_campaign(tmp_path, "promo", ["c1", "c2", "c3"], coupon={"discount_percent": 10, "prefix": "P"})
    build_snapshot(db, spec, RUN)
    first = coupon_rows(db)
    sent(db, "c1", "promo", RUN)  # c1's mail went out
    with db.begin() as conn:
        conn.execute(sa.text("update staging.contacts set consent_status = 'opted_out'"
                             " where contact_id in ('c1', 'c2')"))
    # The definition changes: more percent, longer validity.
    richer = make_campaign(tmp_path, "promo", ["c1", "c2", "c3"],
                           coupon={"discount_percent": 25, "validity_days": 30, "prefix": "P"})
    build_snapshot(db, richer, RUN)
    now = coupon_rows(db)
    assert sorted(now) == ["c1", "c3"]                # c2 left unsent: its coupon is gone
    assert now["c1"] == first["c1"]                   # c1 was mailed: code and terms as sent
    assert now["c3"]["code"] == first["c3"]["code"]   # unsent: same code, new terms
    assert now["c3"]["discount_percent"] == 25
    assert now["c3"]["expires_at"] == datetime(2024, 7, 10, tzinfo=timezone.utc)


def test_a_taken_code_is_replaced_by_the_next_candidate(db: Engine, tmp_path: Path) -> None:
    add_contacts(db, *people("k1", "k2"))
    send_id = make_send_id("promo", RUN.isoformat(), 1, "k1")
    taken = coupons_module.coupon_code(send_id, SECRET, prefix="PROMO")
    with db.begin() as conn:  # another campaign's coupon happens to hold k1's first candidate
        conn.execute(sa.text(
            "insert into campaigns.coupons values (:code, 'other', '2024-01-01', 'x', 'sid', 5, :f, :e)"),
            {"code": taken, "f": datetime(2024, 1, 1, tzinfo=timezone.utc),
             "e": datetime(2024, 1, 2, tzinfo=timezone.utc)})
    spec = make_campaign(tmp_path, "promo", ["k1", "k2"], coupon={"discount_percent": 10})
    build_snapshot(db, spec, RUN)
    rows = coupon_rows(db)
    assert rows["k1"]["code"] == coupons_module.coupon_code(send_id, SECRET, prefix="PROMO", attempt=1)
    build_snapshot(db, spec, RUN)
    assert coupon_rows(db) == rows  # the rerun keeps the replacement


def test_discount_attribute_sets_the_percent_per_member(db: Engine, tmp_path: Path) -> None:
    add_contacts(db, *people("t1", "t2", "t3"))
    folder = tmp_path / "tiers"
    spec = make_campaign(folder, "promo", ["t1", "t2", "t3"],
                         coupon={"discount_percent": 5, "discount_attribute": "pct"})
    sql = spec.audience_sql_path.read_text().replace(
        "true as is_customer", "true as is_customer, case contact_id when 't1' then 20 when 't2' then null"
        " else 12.0 end as pct")
    spec.audience_sql_path.write_text(sql)
    spec = load_campaign(folder / "promo.yml")
    build_snapshot(db, spec, RUN)
    assert {c: r["discount_percent"] for c, r in coupon_rows(db).items()} == {"t1": 20, "t2": 5, "t3": 12}

    spec.audience_sql_path.write_text(sql.replace("12.0", "12.5"))
    with pytest.raises(AudienceSqlError, match=r"pct \(the coupon's discount_attribute\) must be a whole percentage"):
        build_snapshot(db, load_campaign(folder / "promo.yml"), RUN)


# -- property: caps, cooldowns, suppressions and consent together ----------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PERSON = st.tuples(
    st.sampled_from(["opted_in", "double_opt_in", "opted_out", "unknown"]),  # consent
    st.booleans(),  # suppressed
    st.integers(min_value=0, max_value=4),  # marketing mails already sent in the last 7 days
    st.booleans(),  # got this campaign 10 days ago (inside its cooldown)
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people_=st.lists(_PERSON, min_size=1, max_size=12), cap=st.integers(min_value=1, max_value=4))
def test_property_no_send_to_suppressed_unconsented_capped_or_cooling_contacts(db, tmp_path_factory, people_, cap):
    with db.begin() as conn:
        conn.execute(sa.text(f"truncate {', '.join(RESET)}"))
    folder = tmp_path_factory.mktemp("prop")
    ids = [f"q{i:02d}" for i in range(len(people_))]
    add_contacts(db, *[{"contact_id": cid, "consent_status": consent} for cid, (consent, *_) in zip(ids, people_)])
    for cid, (_, suppressed, prior, cooling) in zip(ids, people_):
        if suppressed:
            with db.begin() as conn:
                add_suppressions(conn, [Suppression(email=f"{cid}@example.com", contact_id=None, reason="bounce",
                                                    source="test", created_at=datetime(2024, 6, 1, tzinfo=timezone.utc))])
        for k in range(prior):
            sent(db, cid, f"other{k}", RUN - timedelta(days=k + 1))
        if cooling:
            sent(db, cid, "prop", RUN - timedelta(days=10))
    spec = make_campaign(folder, "prop", ids, cooldown_days=14,
                         settings=f"frequency_cap:\n  max_emails: {cap}\n  window_days: 7\n")
    build_snapshot(db, spec, RUN)
    dispatch(db, spec, RUN, OutboxTransport(folder / "outbox"), now=datetime.combine(RUN, time(9), tzinfo=timezone.utc))
    with db.connect() as conn:
        got = {r for (r,) in conn.execute(sa.text(
            "select contact_id from campaigns.send_ledger where campaign_id = 'prop' and run_id = :r"
            " and status = 'sent'"), {"r": RUN.isoformat()})}
    for cid, (consent, suppressed, prior, cooling) in zip(ids, people_):
        eligible = (consent in ("opted_in", "double_opt_in") and not suppressed and prior < cap and not cooling)
        # Exactly the eligible contacts are sent to: never an ineligible one, and nobody eligible is lost.
        assert (cid in got) == eligible, (cid, consent, suppressed, prior, cooling, cap)
