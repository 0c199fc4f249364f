"""Retention: what is older than its period goes, counted from the run date; the rest stays."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
import sqlalchemy as sa

from martech.ingest.batches import BatchResult, record_batch
from martech.privacy.retention import DEFAULT_DAYS, EXPIRED, RetentionPolicy, apply_retention

pytestmark = pytest.mark.integration

RUN = dt.date(2026, 6, 30)
OLD, RECENT = dt.date(2026, 3, 1), dt.date(2026, 6, 25)
POLICY = RetentionPolicy({"raw_events": 60, "landing": 30, "quarantine": 30, "outbox": 30, "previews": 10})


def _plant(engine, landing, outbox) -> None:
    with engine.begin() as conn:
        for i, day in enumerate((OLD, RECENT)):
            conn.execute(sa.text(
                "insert into raw.email_events (sg_event_id, email, payload, _source_file, _line_no, _batch_id,"
                " _source, _loaded_at) values (:id, 'a@example.com', :p, 'f.json', 1, 'b', 'test', :t)"),
                {"id": f"e{i}", "p": json.dumps({"n": i}), "t": dt.datetime.combine(day, dt.time(3))})
            conn.execute(sa.text(
                "insert into raw.quarantine (table_name, batch_id, source_ref, received, reason, run_date)"
                " values ('raw.crm_contacts', 'b', 'x:1', 'a@example.com', 'bad', :d)"), {"d": day})
            name = f"contacts_{day}.csv"
            path = landing / "crm" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"contact_id,email\nc{i},a@example.com\n")
            checksum = hashlib.sha256(path.read_bytes()).hexdigest()
            result = BatchResult(batch_id=f"file.crm:{name}", table="raw.crm_contacts", source_file=name)
            record_batch(conn, result, source="crm", run_date=day, checksum=checksum,
                         loaded_at=dt.datetime.combine(day, dt.time(3), tzinfo=dt.timezone.utc))
    (landing / "crm" / "contacts_2026-03-01.csv.note").write_text("not landed: kept")
    for root in (outbox, outbox / "previews"):
        for run_id in ("2026-03-01", "2026-06-01T09", "2026-06-29.step2", "notes"):
            folder = root / "winback" / run_id
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "m.eml").write_text("To: a@example.com\n")


def test_retention_removes_what_is_past_its_period(clean_warehouse, tmp_path):
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    _plant(clean_warehouse, landing, outbox)
    removed = apply_retention(clean_warehouse, RUN, landing=landing, outbox=outbox, policy=POLICY)
    assert removed == {"raw_events": 1, "landing": 1, "quarantine": 1, "outbox": 1, "previews": 2}
    with clean_warehouse.connect() as conn:
        assert conn.execute(sa.text("select sg_event_id from raw.email_events")).scalars().all() == ["e1"]
        # The old line rejected at landing keeps its place (its batch counts it), not its content.
        assert conn.execute(sa.text("select run_date, received from raw.quarantine order by 1")).all() == [
            (OLD, EXPIRED), (RECENT, "a@example.com")]
        # The batch record stays: a re-delivered old file is still recognised and not loaded twice.
        assert conn.execute(sa.text("select count(*) from raw.ingest_batches")).scalar_one() == 2
    assert sorted(p.name for p in (landing / "crm").iterdir()) == ["contacts_2026-03-01.csv.note",
                                                                    "contacts_2026-06-25.csv"]
    assert sorted(p.name for p in (outbox / "winback").iterdir()) == ["2026-06-01T09", "2026-06-29.step2", "notes"]
    assert sorted(p.name for p in (outbox / "previews" / "winback").iterdir()) == ["2026-06-29.step2", "notes"]
    # The same run again removes nothing more.
    again = apply_retention(clean_warehouse, RUN, landing=landing, outbox=outbox, policy=POLICY)
    assert again == dict.fromkeys(DEFAULT_DAYS, 0)


def test_zero_keeps_forever(clean_warehouse, tmp_path):
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    _plant(clean_warehouse, landing, outbox)
    keep = RetentionPolicy(dict.fromkeys(DEFAULT_DAYS, 0))
    assert apply_retention(clean_warehouse, RUN, landing=landing, outbox=outbox, policy=keep) == \
        dict.fromkeys(DEFAULT_DAYS, 0)


def test_periods_come_from_the_environment():
    policy = RetentionPolicy.from_env({"MARTECH_RETENTION_OUTBOX_DAYS": "7", "MARTECH_RETENTION_PREVIEWS_DAYS": ""})
    assert policy.days == {**DEFAULT_DAYS, "outbox": 7}
    assert policy.cutoff("outbox", RUN) == dt.date(2026, 6, 23)
    with pytest.raises(ValueError, match="MARTECH_RETENTION_QUARANTINE_DAYS must be a whole number"):
        RetentionPolicy.from_env({"MARTECH_RETENTION_QUARANTINE_DAYS": "ninety"})
    with pytest.raises(ValueError, match="must not be negative"):
        RetentionPolicy.from_env({"MARTECH_RETENTION_LANDING_DAYS": "-1"})


def test_retention_through_the_pipeline_step(clean_warehouse, warehouse, monkeypatch, tmp_path):
    from martech import pipeline

    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    _plant(clean_warehouse, landing, outbox)
    monkeypatch.setenv("MARTECH_LANDING_DIR", str(landing))
    monkeypatch.setenv("MARTECH_OUTBOX_DIR", str(outbox))
    summary = pipeline.apply_retention(warehouse, RUN)
    # Defaults: events 400 days (both kept), landing, outbox and previews 30, quarantine 90.
    assert summary["removed"] == {"raw_events": 0, "landing": 1, "quarantine": 1, "outbox": 1, "previews": 1}


def test_row_accounting_still_adds_up_after_retention(clean_warehouse, warehouse, tmp_path):
    """A CRM line rejected at landing, staged around, then past the quarantine period: staging's row
    accounting (rows sent = landed + quarantined at landing) holds on the next run."""
    from martech import pipeline

    crm = tmp_path / "crm"
    crm.mkdir()
    header = ("contact_id,email,first_name,last_name,birthday,country,timezone,consent_status,consent_updated_at,"
              "lifecycle_status,shop_customer_id,created_at,updated_at")
    (crm / "contacts_2026-03-01.csv").write_text(
        f"{header}\nC1,a@example.com,Ann,Lee,,DE,Europe/Berlin,opted_in,2026-01-01T00:00:00+00:00,lead,,"
        "2026-01-01T00:00:00+00:00,2026-01-01T00:00:00+00:00\nC2,b@example.com,too,few,fields\n")
    pipeline.ingest_crm(warehouse, OLD, folder=crm)
    pipeline.build_staging(warehouse, OLD)
    with clean_warehouse.connect() as conn:
        assert conn.execute(sa.text("select stage from raw.quarantine")).scalars().all() == ["landing"]
    removed = apply_retention(clean_warehouse, RUN, landing=tmp_path, outbox=tmp_path / "outbox",
                              policy=POLICY)
    assert removed["quarantine"] == 1
    summary = pipeline.build_staging(warehouse, RUN)  # raises AccountingError if the counts broke
    assert summary["rows"]["staging.contacts"] == 1
    with clean_warehouse.connect() as conn:
        assert conn.execute(sa.text("select received from raw.quarantine")).scalars().all() == [EXPIRED]
