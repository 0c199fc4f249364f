"""Seed sends and what their recipients do never reach a KPI: every kpis table is the same with and without them."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.campaigns import runner
from martech.campaigns.freshness import record_suppression_refresh
from martech.campaigns.transports import OutboxTransport
from martech.kpis.build import SQL_MODELS, build_kpis
from martech.runs import Run
from martech.testing.campaigns import write_promo_campaign

pytestmark = pytest.mark.integration

AS_OF = dt.date(2026, 6, 1)
NOW = dt.datetime(2026, 6, 1, 9, tzinfo=dt.timezone.utc)
KPI_DAY = AS_OF + dt.timedelta(days=8)
TABLES = (*[t for t in SQL_MODELS if t.startswith("kpis.")], "campaigns.member_outcomes", "kpis.campaign_uplift")


def _events(conn, where: str) -> None:
    """A delivery, a human open and a click for each send the filter picks (seed or ledger)."""
    for n, event in enumerate(("delivered", "open", "click")):
        conn.execute(sa.text(
            f"insert into staging.email_events (event_id, event, event_ts, email, message_id, send_id, campaign_id,"
            f" run_id, contact_id) select send_id || '-' || :e, :e, :t, email, message_id, send_id,"
            f" campaign_id, run_id, {where}"), {"e": event, "t": NOW + dt.timedelta(hours=n + 1)})


def _tables(eng) -> dict[str, list]:
    with eng.connect() as conn:
        return {t: sorted(map(tuple, conn.execute(sa.text(f"select * from {t}")).all()), key=repr) for t in TABLES}


def test_seed_sends_and_their_events_change_no_kpi(simulated_staging, warehouse, tmp_path, monkeypatch):
    eng = simulated_staging(AS_OF, customers=300, seed=3)
    pipeline.build_customer_models(warehouse, AS_OF)
    folder = tmp_path / "campaigns"
    write_promo_campaign(folder)
    (folder / "audiences" / "promo.sql").write_text(  # what the birthday template it borrows needs
        "select contact_id, email, first_name, customer_id is not null as is_customer from staging.contacts\n")
    (folder / "_settings.yml").write_text("seed_list:\n  addresses: [qa@shop.example, brand@shop.example]\n")
    monkeypatch.setenv("MARTECH_CAMPAIGNS_DIR", str(folder))
    runner.build_audience(warehouse, "promo", Run.daily(AS_OF))
    with eng.begin() as conn:
        record_suppression_refresh(conn, AS_OF, 0, NOW)
    out = runner.dispatch(warehouse, "promo", Run.daily(AS_OF), NOW, transport=OutboxTransport(tmp_path / "out"))
    assert out["seeds"]["sent_now"] == 4 and out["sent_now"] > 100
    with eng.begin() as conn:
        _events(conn, "contact_id from campaigns.send_ledger where status = 'sent'")
    build_kpis(eng, KPI_DAY)
    without = _tables(eng)
    assert sum(r[0] for r in _q(eng, "select sum(sent) from kpis.campaign_daily")) == out["sent_now"]
    with eng.begin() as conn:
        # Seed events as the webhook stores them: the seed's send id, no contact id.
        _events(conn, "null from campaigns.seed_sends where status = 'sent'")
        assert conn.execute(sa.text("select count(*) from staging.email_events where contact_id is null")).scalar() == 12
    build_kpis(eng, KPI_DAY)
    assert _tables(eng) == without


def _q(eng, sql: str):
    with eng.connect() as conn:
        return conn.execute(sa.text(sql)).all()
