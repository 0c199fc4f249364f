"""Seed lists: every variant of every real send to the internal addresses, once, marked, never a contact."""

from __future__ import annotations

import datetime as dt
import email
from email import policy

import pytest
import sqlalchemy as sa

from martech.campaigns import runner
from martech.campaigns.dispatch import dispatch
from martech.campaigns.freshness import record_suppression_refresh
from martech.campaigns.seeds import SEED_COUPON_CODE, SeedListError, seed_addresses, seed_send_id, send_seeds
from martech.campaigns.spec import CampaignSettings, SeedList, load_campaign, load_campaigns
from martech.campaigns.transports import BaseTransport, OutboxTransport, SendResult
from martech.runs import Run
from martech.testing.campaigns import write_promo_campaign
from martech.warehouse import Warehouse

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 5, 4)
NOW = dt.datetime(2026, 5, 4, 9, tzinfo=dt.timezone.utc)
SEEDS = ("qa@shop.example", "brand@shop.example")


class Recording(BaseTransport):
    """Not idempotent, like SendGrid: a message handed over may have gone out."""

    name = "recording"

    def __init__(self, *, answer: bool = True, fail: bool = False) -> None:
        self.sent: list = []
        self.answer, self.fail = answer, fail

    def send_batch(self, messages):
        self.sent.extend(messages)
        if not self.answer:
            return []  # claimed, no answer: in doubt
        if self.fail:
            return [SendResult(m.send_id, error="550 mailbox unavailable") for m in messages]
        return [SendResult(m.send_id, message_id=f"<{m.send_id}@sg>") for m in messages]


@pytest.fixture()
def spec(tmp_path):
    return load_campaign(write_promo_campaign(tmp_path))


@pytest.fixture()
def wh(clean_warehouse):
    with clean_warehouse.begin() as conn:
        conn.execute(sa.text("create table if not exists staging.email_events (event_id text, event text,"
                             " event_ts timestamptz, email text, message_id text, send_id text, campaign_id text,"
                             " run_id text, contact_id text)"))
    return clean_warehouse


def plant(eng, run: dt.date, ids: list[int], *, arm: str = "treatment", attributes: str = '{"is_customer": true}'):
    with eng.begin() as conn:
        conn.execute(sa.text(
            "insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email, first_name,"
            " arm, variant, definition_hash, attributes) values ('promo', :r, :d, :c, :e, :f, :arm, :v, 'h',"
            " cast(:a as jsonb))"),
            [{"r": run.isoformat(), "d": run, "c": f"c{i:02d}", "e": f"u{i}@example.com", "f": f"N{i}", "arm": arm,
              "v": "ab"[i % 2], "a": attributes} for i in ids])


def rows(eng, sql: str, **params):
    with eng.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def test_every_variant_reaches_every_seed_once_marked_and_a_rerun_sends_nothing_again(wh, spec):
    plant(wh, DAY, list(range(6)))
    transport = Recording()
    first = send_seeds(wh, spec, DAY, transport, now=NOW, addresses=SEEDS)
    assert (first.variants, first.planned, first.sent_now, first.complete) == (2, 4, 4, True)
    got = {(m.to, m.custom_args["variant"]) for m in transport.sent}
    assert got == {(a, v) for a in SEEDS for v in "ab"}
    for m in transport.sent:
        assert m.custom_args["seed"] == "true" and "contact_id" not in m.custom_args
        assert m.send_id == seed_send_id("promo", DAY.isoformat(), 1, m.custom_args["variant"], m.to)
        # The sample member's message, without their name.
        assert m.subject in ("Hi None", "Hello None") and "N0" not in m.html and "N1" not in m.html
    again = send_seeds(wh, spec, DAY, transport, now=NOW, addresses=SEEDS)
    assert (again.planned, again.sent_now, again.already_sent) == (0, 0, 4) and len(transport.sent) == 4
    ledger = rows(wh, "select variant, status, sent_at from campaigns.seed_sends order by variant, email")
    assert [(r["variant"], r["status"], r["sent_at"]) for r in ledger] == [("a", "sent", NOW)] * 2 + [("b", "sent", NOW)] * 2
    # Seeds are not contacts: nothing of them in the send ledger or the audience.
    assert rows(wh, "select count(*) as n from campaigns.send_ledger")[0]["n"] == 0
    assert rows(wh, "select count(*) as n from audiences.audience_members where email like '%shop.example'")[0]["n"] == 0


def test_a_send_in_doubt_is_not_resent_blindly_and_an_event_settles_it(wh, spec):
    plant(wh, DAY, [0])
    lost = Recording(answer=False)
    doubt = send_seeds(wh, spec, DAY, lost, now=NOW, addresses=SEEDS[:1])
    assert (doubt.sent_now, doubt.uncertain, doubt.complete) == (0, 1, False)
    retry = Recording()
    assert send_seeds(wh, spec, DAY, retry, now=NOW, addresses=SEEDS[:1]).uncertain == 1 and retry.sent == []
    send_id = seed_send_id("promo", DAY.isoformat(), 1, "a", SEEDS[0])
    with wh.begin() as conn:
        conn.execute(sa.text("insert into staging.email_events (event_id, event, event_ts, email, message_id, send_id)"
                             " values ('e1', 'delivered', :t, :e, '<m1>', :s)"), {"t": NOW, "e": SEEDS[0], "s": send_id})
    settled = send_seeds(wh, spec, DAY, retry, now=NOW, addresses=SEEDS[:1])
    assert (settled.already_sent, settled.uncertain, retry.sent) == (1, 0, [])
    # No snapshot for a day (no real send): no seed send either.
    assert send_seeds(wh, spec, DAY + dt.timedelta(days=1), lost, now=NOW, addresses=SEEDS).variants == 0


def test_the_outbox_sends_a_seed_in_doubt_again_into_the_same_file(wh, spec, tmp_path):
    plant(wh, DAY, [0])
    send_seeds(wh, spec, DAY, Recording(answer=False), now=NOW, addresses=SEEDS[:1])
    outbox = OutboxTransport(tmp_path)
    assert send_seeds(wh, spec, DAY, outbox, now=NOW, addresses=SEEDS[:1]).sent_now == 1
    send_id = seed_send_id("promo", DAY.isoformat(), 1, "a", SEEDS[0])
    assert [p.name for p in (tmp_path / "promo" / DAY.isoformat()).glob("*.eml")] == [f"{send_id}.eml"]
    assert rows(wh, "select attempts, status from campaigns.seed_sends") == [{"attempts": 2, "status": "sent"}]


class Down(BaseTransport):
    name = "down"

    def send_batch(self, messages):
        raise ConnectionError("provider unreachable")


def test_an_unreachable_provider_leaves_seeds_in_doubt_and_blocks_only_a_required_first_run(wh, spec, tmp_path):
    plant(wh, DAY, [0])
    out = send_seeds(wh, spec, DAY, Down(), now=NOW, addresses=SEEDS[:1])  # no exception: the real send may go
    assert (out.uncertain, out.complete) == (1, False)
    path = write_promo_campaign(tmp_path / "required")
    path.write_text(path.read_text() + "require_seeds_on_first_run: true\n")
    plant(wh, DAY + dt.timedelta(days=1), [0])
    with pytest.raises(SeedListError, match=r"1 are in doubt"):
        send_seeds(wh, load_campaign(path), DAY + dt.timedelta(days=1), Down(), now=NOW, addresses=SEEDS[:1])


def test_seeds_are_never_capped_or_cooled_and_a_suppressed_seed_is_skipped(wh, spec):
    transport = Recording()
    days = [DAY + dt.timedelta(days=i) for i in range(5)]  # more mails in a week than the cap allows a contact
    for day in days:
        plant(wh, day, [0, 1])
        send_seeds(wh, spec, day, transport, now=NOW, addresses=SEEDS[:1])
    assert len(transport.sent) == 2 * len(days)
    with wh.begin() as conn:
        conn.execute(sa.text("insert into campaigns.suppressions (email, contact_id, reason, source, created_at)"
                             " values (:e, null, 'bounce', 'email_events', :t)"), {"e": SEEDS[1], "t": NOW})
    day = DAY + dt.timedelta(days=9)
    plant(wh, day, [0])
    out = send_seeds(wh, spec, day, transport, now=NOW, addresses=SEEDS)
    assert (out.sent_now, out.skipped, out.complete) == (1, 1, True)
    assert rows(wh, "select status, error from campaigns.seed_sends where email = :e", e=SEEDS[1]) == [
        {"status": "skipped", "error": "suppressed seed address"}]


def test_a_campaign_can_require_seeds_on_its_first_run(wh, tmp_path):
    path = write_promo_campaign(tmp_path)
    path.write_text(path.read_text() + "require_seeds_on_first_run: true\n")
    spec = load_campaign(path)
    plant(wh, DAY, [0, 1])
    with pytest.raises(SeedListError, match=r"no seed addresses are configured.*seed_list\.addresses"):
        send_seeds(wh, spec, DAY, Recording(), now=NOW, addresses=())
    with pytest.raises(SeedListError, match=r"2 seed message\(s\) failed"):
        send_seeds(wh, spec, DAY, Recording(fail=True), now=NOW, addresses=SEEDS[:1])
    # The retry sends only what is missing; then the real send may go.
    transport = Recording()
    assert send_seeds(wh, spec, DAY, transport, now=NOW, addresses=SEEDS[:1]).complete
    dispatch(wh, spec, DAY, transport, now=NOW)
    # Later runs do not need seeds any more.
    later = DAY + dt.timedelta(days=1)
    plant(wh, later, [0])
    assert send_seeds(wh, spec, later, Recording(), now=NOW, addresses=()).first_run is False


def test_seed_addresses_come_from_the_settings_or_the_environment():
    settings = CampaignSettings(seed_list=SeedList(addresses=(" QA@Shop.example ",)))
    assert settings.seed_list.addresses == ("qa@shop.example",)
    assert seed_addresses(settings, env={}) == ("qa@shop.example",)
    assert seed_addresses(settings, env={"MARTECH_SEED_ADDRESSES": "a@shop.example, b@shop.example"}) == (
        "a@shop.example", "b@shop.example")
    with pytest.raises(SeedListError, match=r"MARTECH_SEED_ADDRESSES\[1\] 'not-an-address' cannot be mailed"):
        seed_addresses(settings, env={"MARTECH_SEED_ADDRESSES": "a@shop.example,not-an-address"})
    assert all(s.require_seeds_on_first_run is False for s in load_campaigns())


def test_the_campaign_run_sends_seeds_beside_the_real_send_and_counts_only_contacts(wh, tmp_path, monkeypatch):
    folder = tmp_path / "campaigns"
    write_promo_campaign(folder)
    (folder / "_settings.yml").write_text("seed_list:\n  addresses: [qa@shop.example]\n")
    monkeypatch.setenv("MARTECH_CAMPAIGNS_DIR", str(folder))
    monkeypatch.delenv("MARTECH_SEED_ADDRESSES", raising=False)
    plant(wh, DAY, list(range(4)))
    plant(wh, DAY, [4], arm="holdout")
    with wh.begin() as conn:
        record_suppression_refresh(conn, DAY, 0, NOW)
    outbox = OutboxTransport(tmp_path / "outbox")
    with Warehouse(wh.url.render_as_string(hide_password=False)) as warehouse:
        for _ in range(2):  # a retry of the task sends nothing twice
            out = runner.dispatch(warehouse, "promo", Run.daily(DAY), NOW, transport=outbox)
    assert out["seeds"]["already_sent"] == 2 and out["already_sent"] == 4
    files = sorted((tmp_path / "outbox" / "promo" / DAY.isoformat()).glob("*.eml"))
    messages = [email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    seeds = [m for m in messages if m["X-Martech-Seed"] == "true"]
    assert len(messages) == 6 and sorted(m["X-Martech-Variant"] for m in seeds) == ["a", "b"]
    assert {m["To"] for m in seeds} == {"qa@shop.example"} and all(m["X-Martech-Contact-Id"] is None for m in seeds)
    index = (tmp_path / "outbox" / "promo" / DAY.isoformat() / "index.html").read_text()
    assert "6 message(s)" in index
    run = rows(wh, "select members, treatment, sent from campaigns.campaign_runs where campaign_id = 'promo'")
    assert run == [{"members": 5, "treatment": 4, "sent": 4}]
    assert rows(wh, "select count(*) as n from campaigns.send_ledger where status = 'sent'")[0]["n"] == 4


def test_a_seed_sees_a_code_that_redeems_nothing(wh, tmp_path):
    path = write_promo_campaign(tmp_path)
    path.write_text(path.read_text() + "coupon: {discount_percent: 10, validity_days: 7}\n")
    spec = load_campaign(path)
    coupon = ('{"is_customer": true, "coupon": {"code": "PROMO-REAL-CODE-0001", "discount_percent": 10,'
              ' "valid_from": "2026-05-04", "valid_until": "2026-05-10", "expires_at": "2026-05-11T00:00:00+00:00"}}')
    plant(wh, DAY, [0], attributes=coupon)
    transport = Recording()
    send_seeds(wh, spec, DAY, transport, now=NOW, addresses=SEEDS[:1])
    (message,) = transport.sent
    assert SEED_COUPON_CODE in message.html and "PROMO-REAL-CODE-0001" not in message.html
