"""kpis.campaign_uplift against the simulator's truth: do the 95 % intervals hold the true uplift?

Twenty independent replicates at small scale: twenty send days a window apart, each with a fresh random
split of three campaigns' audiences (true effect none, normal and large), events posted signed to the
webhook, orders played by the simulator, then one staging and KPI build. The truth of each replicate is
the simulator's own: mean over treatment members of (treated_p − baseline_p) for conversions, times the
expected order value for revenue (``sim_truth.campaign_effects``).
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.kpis.build import build_kpis
from martech.simulate import play_responses
from martech.simulate.webhook import webhook_poster

pytestmark = pytest.mark.integration

START = dt.date(2026, 3, 2)
REPLICATES = 20
WINDOW = 7
SCALES = {"nothing": 0.0, "normal": 1.0, "large": 2.0}


def _run(conn, campaign: str, day: dt.date, contacts: list[tuple[str, str]], rng: np.random.Generator) -> None:
    run_id = day.isoformat()
    arms = np.where(rng.random(len(contacts)) < 0.5, "treatment", "holdout")
    variants = np.where(rng.random(len(contacts)) < 0.5, "a", "b") if campaign == "normal" else ["a"] * len(contacts)
    conn.execute(sa.text(
        "insert into campaigns.campaign_runs values (:c, :r, :d, 'h', :w, :m, :t, :h, :t, 'outbox')"),
        {"c": campaign, "r": run_id, "d": day, "w": WINDOW, "m": len(contacts), "t": int((arms == "treatment").sum()),
         "h": int((arms == "holdout").sum())})
    members, sends = [], []
    for (contact_id, email), arm, variant in zip(contacts, arms, variants):
        members.append({"c": campaign, "r": run_id, "d": day, "k": contact_id, "e": email, "a": str(arm),
                        "v": str(variant)})
        if arm == "treatment":
            send_id = hashlib.sha256(f"{campaign}|{run_id}|{contact_id}".encode()).hexdigest()[:32]
            sends.append({"s": send_id, "c": campaign, "r": run_id, "k": contact_id, "e": email, "v": str(variant),
                          "t": dt.datetime.combine(day, dt.time(9), dt.timezone.utc)})
    conn.execute(sa.text(
        "insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email, arm, variant,"
        " definition_hash, step) values (:c, :r, :d, :k, :e, :a, :v, 'h', 1)"), members)
    conn.execute(sa.text(
        "insert into campaigns.send_ledger (send_id, campaign_id, run_id, step, contact_id, email, variant, status,"
        " transport, message_id, attempts, created_at, sent_at)"
        " values (:s, :c, :r, 1, :k, :e, :v, 'sent', 'outbox', :s, 1, :t, :t)"), sends)


@pytest.fixture(scope="module")
def replicated(simulated_staging, warehouse, tmp_path_factory):
    eng = simulated_staging(START, customers=1500, seed=3)
    with eng.connect() as conn:
        contacts = [tuple(r) for r in conn.execute(sa.text(
            "select contact_id, email from staging.contacts where customer_id is not null and email is not null"
            " order by contact_id"))]
    groups = {name: contacts[k::3] for k, name in enumerate(SCALES)}  # disjoint audiences
    poster = webhook_poster(eng)
    landing = tmp_path_factory.mktemp("responses")
    days = [START + dt.timedelta(days=WINDOW * k) for k in range(REPLICATES)]
    for k, day in enumerate(days):
        rng = np.random.default_rng(100 + k)
        with eng.begin() as conn:
            for campaign, members in groups.items():
                _run(conn, campaign, day, members, rng)
        play_responses(eng, landing, send_date=day, days=WINDOW, seed=100 + k, post_events=poster,
                       effect_scale=SCALES)
    as_of = days[-1] + dt.timedelta(days=WINDOW)
    pipeline.ingest_shop(warehouse, as_of)
    pipeline.build_staging(warehouse, as_of)
    build_kpis(eng, as_of)
    with eng.connect() as conn:
        truth = {(r.campaign_id, r.run_id): (r.conversions, r.revenue) for r in conn.execute(sa.text(
            "select campaign_id, run_id, avg(treated_p - baseline_p) as conversions,"
            " avg((treated_p - baseline_p) * expected_order_value) as revenue"
            " from sim_truth.campaign_effects where arm = 'treatment' group by 1, 2"))}
        rows = conn.execute(sa.text(
            "select campaign_id, period_start, uplift_low, uplift_high, revenue_uplift_per_member,"
            " revenue_uplift_low, revenue_uplift_high, p_value, revenue_p_value from kpis.campaign_uplift"
            " where period = 'day' and treatment = '*' and control = 'holdout'")).all()
    return eng, truth, rows


def _coverage(replicated, campaign: str) -> tuple[int, int, int]:
    _, truth, rows = replicated
    mine = [r for r in rows if r.campaign_id == campaign]
    assert len(mine) == REPLICATES
    conv = sum(r.uplift_low <= truth[(campaign, r.period_start.isoformat())][0] <= r.uplift_high for r in mine)
    rev = sum(r.revenue_uplift_low <= truth[(campaign, r.period_start.isoformat())][1] <= r.revenue_uplift_high
              for r in mine)
    positives = sum(r.p_value is not None and r.p_value < 0.05 for r in mine)
    print(f"{campaign}: conversions covered {conv}/{REPLICATES}, revenue covered {rev}/{REPLICATES},"
          f" significant at 0.05 {positives}/{REPLICATES}")
    return conv, rev, positives


@pytest.mark.parametrize("campaign", list(SCALES))
def test_95_intervals_cover_the_true_uplift(replicated, campaign):
    conv, rev, _ = _coverage(replicated, campaign)
    assert conv >= 18 and rev >= 18


def test_the_zero_effect_campaign_is_rarely_significant_and_the_large_one_is_found(replicated):
    _, _, false_positives = _coverage(replicated, "nothing")
    _, _, found = _coverage(replicated, "large")
    assert false_positives <= 3  # expected 1 in 20 at alpha 0.05; 4 or more has probability < 2 %
    assert found >= 10


def test_every_replicate_has_events_through_the_webhook_and_kpi_rows(replicated):
    eng, _, _ = replicated
    with eng.connect() as conn:
        per_run = conn.execute(sa.text(
            "select d.campaign_id, d.send_date, sum(d.sent), sum(d.delivered), sum(d.opened)"
            " from kpis.campaign_daily as d group by 1, 2")).all()
        webhook = conn.execute(sa.text("select count(*) from raw.webhook_events where source = 'webhook'")).scalar_one()
        engagement = dict(conn.execute(sa.text("select campaign_id, click_to_open_rate from kpis.engagement")).all())
    assert len(per_run) == REPLICATES * len(SCALES)
    assert all(sent > 0 and delivered > 0 and opened > 0 for _, _, sent, delivered, opened in per_run)
    assert webhook > 0
    assert set(engagement) == {*SCALES, "*"} and all(0 < r < 1 for r in engagement.values())
