"""The SendGrid transport against a local server that checks SendGrid's published mail-send schema."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from martech.campaigns.sendgrid_transport import (
    SUBSTITUTION_LIMIT,
    SendGridTransport,
    parse_attempt,
)
from martech.campaigns.transports import OutboundMessage
from martech.testing.fake_sendgrid import FakeSendGrid, mail_send_validator

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def msg(i: int, **changes) -> OutboundMessage:
    fields = dict(
        send_id=f"{i:032x}", to=f"user{i}@example.com", sender="Shop Example <hello@shop.example>",
        subject=f"Hello Ann {i}", html=f"<p>Hi Ann {i}</p>", text=f"Hi Ann {i}", sent_at=NOW,
        headers={"List-Unsubscribe": f"<https://shop.example/u?t={i}>",
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "X-Other": "dropped"},
        custom_args={"send_id": f"{i:032x}", "campaign_id": "winback", "run_id": "2026-03-01",
                     "contact_id": f"C{i}", "variant": "a", "step": "1"},
    )
    return OutboundMessage(**{**fields, **changes})


@pytest.fixture()
def sg():
    with FakeSendGrid() as fake:
        yield fake


def transport(sg: FakeSendGrid, **kw) -> SendGridTransport:
    waits: list[float] = []
    t = SendGridTransport("SG.key", host=sg.url, sleep=waits.append, **{"timeout": 1.0, **kw})
    t.waits = waits  # type: ignore[attr-defined]
    return t


def test_the_validator_rejects_what_sendgrid_rejects() -> None:
    v = mail_send_validator()
    good = {"personalizations": [{"to": [{"email": "a@example.com"}]}], "from": {"email": "s@example.com"},
            "subject": "x", "content": [{"type": "text/plain", "value": "x"}]}
    assert not list(v.iter_errors(good))
    assert list(v.iter_errors({k: good[k] for k in good if k != "from"}))  # from is required
    assert list(v.iter_errors({**good, "personalizations": [{"to": [{"email": "a@example.com"}]}] * 1001}))
    assert list(v.iter_errors({**good, "personalizations": [{"to": [{"name": "no address"}]}]}))


def test_one_request_per_batch_with_ids_only_in_custom_args(sg) -> None:
    t = transport(sg, categories=("martech",), asm_group_id=42, sandbox=True)
    ref = t.begin_attempt()
    results = t.send_batch([msg(i) for i in range(3)], attempt_ref=ref)
    assert [r.ok for r in results] == [True] * 3 and len({r.message_id for r in results}) == 1
    assert not sg.state.rejected
    (req,) = sg.state.accepted
    assert req["batch_id"] == parse_attempt(ref)[0]
    assert req["send_at"] == int(parse_attempt(ref)[1].timestamp())
    assert [r[1] for r in req["recipients"]] == [f"{i:032x}" for i in range(3)]
    body = t.request_body([msg(i) for i in range(3)], ref)
    assert body["categories"] == ["martech", "winback"] and body["asm"] == {"group_id": 42}
    assert body["mail_settings"]["sandbox_mode"]["enable"] is True
    for i, p in enumerate(body["personalizations"]):
        # ids only: nothing in custom_args is an address, a name or a subject
        assert set(p["custom_args"]) == {"send_id", "campaign_id", "run_id", "contact_id", "variant", "step",
                                         "attempt"}  # attempt: the batch id, for the Email Activity lookup
        assert "@" not in json.dumps(p["custom_args"]) and "Ann" not in json.dumps(p["custom_args"])
        assert p["headers"] == {"List-Unsubscribe": f"<https://shop.example/u?t={i}>",
                                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        assert p["substitutions"]["-martech_html-"] == f"<p>Hi Ann {i}</p>"
    assert body["content"][1] == {"type": "text/html", "value": "-martech_html-"}


def test_identical_messages_go_inline_without_substitutions(sg) -> None:
    t = transport(sg)
    same = [msg(i, subject="Same", html="<p>Same</p>", text="Same") for i in range(4)]
    body = t.request_body(same, None)
    assert body["subject"] == "Same" and all("substitutions" not in p for p in body["personalizations"])
    assert t.send_batch(same)[0].ok and not sg.state.rejected


def test_a_thousand_personalizations_per_request_and_big_messages_alone(sg) -> None:
    t = transport(sg, timeout=60.0)  # the fake validates 1000 personalizations: slow on a loaded machine
    assert t.batch_size == 1000
    big = msg(5000, html="<p>" + "x" * (SUBSTITUTION_LIMIT + 10) + "</p>")
    groups = t.group([msg(i) for i in range(1000)] + [big])
    assert [len(g) for g in groups] == [1000, 1]
    for g in groups:
        assert all(r.ok for r in t.send_batch(g, attempt_ref=t.begin_attempt()))
    assert not sg.state.rejected
    assert [len(r["recipients"]) for r in sg.state.accepted] == [1000, 1]
    with pytest.raises(ValueError, match="batch_size"):
        transport(sg, batch_size=1001)


def test_empty_batch_makes_no_request(sg) -> None:
    t = transport(sg)
    assert t.send_batch([]) == [] and t.requests == 0


def test_429_waits_for_the_reset_then_sends_once(sg) -> None:
    t = transport(sg)
    sg.fault("429", "429")
    results = t.send_batch([msg(1)], attempt_ref=t.begin_attempt())
    assert results[0].ok
    assert len(t.waits) == 2 and all(0 < w <= 1.5 for w in t.waits)  # X-RateLimit-Reset is 1 s ahead
    assert not sg.state.deliveries()  # scheduled: nothing goes out before its send time
    sg.settle()
    assert dict(sg.state.deliveries()) == {f"{1:032x}": 1}


def test_400_is_a_definite_failure_with_sendgrids_message(sg) -> None:
    t = transport(sg)
    sg.fault("400")
    (result,) = t.send_batch([msg(1)], attempt_ref=t.begin_attempt())
    assert not result.ok and "injected rejection" in (result.error or "")
    # A body that breaks the schema is refused by the server, not silently accepted.
    (bad,) = t.send_batch([msg(2, to="not an address")], attempt_ref=t.begin_attempt())
    assert not bad.ok and "400" in (bad.error or "")
    assert not sg.state.deliveries()


@pytest.mark.parametrize("fault", ["500", "accept_500", "accept_slow"])
def test_5xx_and_timeouts_leave_the_send_in_doubt_and_cancel_makes_it_safe(sg, fault) -> None:
    t = transport(sg, timeout=0.3)
    sg.fault(fault, slow_s=0.8)
    ref = t.begin_attempt()
    assert t.send_batch([msg(1)], attempt_ref=ref) == []  # no answer: in doubt, never a guess
    assert t.cancel_attempt(ref) is True
    assert t.cancel_attempt(ref) is True  # repeating a cancel (crash after the first) still confirms it
    assert t.send_batch([msg(1)], attempt_ref=t.begin_attempt())[0].ok
    sg.settle()
    assert dict(sg.state.deliveries()) == {f"{1:032x}": 1}  # accepted or not, the cancelled batch sent nothing


def test_no_cancel_too_close_to_the_send_time(sg) -> None:
    now = [datetime.now(timezone.utc)]
    t = transport(sg, hold=timedelta(minutes=20), cancel_margin=timedelta(minutes=10), clock=lambda: now[0])
    ref = t.begin_attempt()
    now[0] += timedelta(minutes=11)
    assert t.cancel_attempt(ref) is False  # SendGrid no longer guarantees it: the dispatcher keeps it in doubt
    assert "POST scheduled_sends" not in sg.state.requests


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="API key"):
        SendGridTransport("")
    with pytest.raises(ValueError, match="hold"):
        SendGridTransport("k", hold=timedelta(minutes=5), cancel_margin=timedelta(minutes=10))
    with pytest.raises(ValueError, match="attempt reference"):
        parse_attempt("no-at-sign")


def test_transport_is_chosen_by_configuration(monkeypatch) -> None:
    from martech.campaigns.smtp_transport import SmtpTransport
    from martech.campaigns.transport_factory import make_transport

    monkeypatch.setenv("MARTECH_SENDGRID_API_KEY", "SG.env")
    monkeypatch.setenv("MARTECH_SENDGRID_HOST", "http://127.0.0.1:9")
    t = make_transport("sendgrid", {"sandbox": "true", "asm_group_id": 7})
    assert isinstance(t, SendGridTransport) and t.sandbox and t.asm_group_id == 7
    monkeypatch.setenv("MARTECH_SMTP_URL", "smtp://mailer:secret@127.0.0.1:2525?security=starttls")
    s = make_transport("smtp")
    assert isinstance(s, SmtpTransport)
    assert (s.host, s.port, s.username, s.password, s.security) == ("127.0.0.1", 2525, "mailer", "secret",
                                                                     "starttls")
    monkeypatch.delenv("MARTECH_SENDGRID_API_KEY")
    with pytest.raises(ValueError, match="API key"):
        make_transport("sendgrid")
    with pytest.raises(ValueError, match="not a known transport"):
        make_transport("pigeon")


def test_send_window_becomes_a_per_recipient_send_at(sg) -> None:
    t = transport(sg)
    later = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=5)
    body = t.request_body([msg(1, send_at=later), msg(2)], None)
    assert body["personalizations"][0]["send_at"] == int(later.timestamp())
    assert "send_at" not in body["personalizations"][1]
    assert t.send_batch([msg(1, send_at=later), msg(2)], attempt_ref=t.begin_attempt())[0].ok
    assert not sg.state.rejected


def test_sendgrid_suppression_lists_are_read_page_by_page(sg) -> None:
    from martech.campaigns import sendgrid_suppressions

    lists = sg.state.suppression_lists
    lists["bounces"] = [{"created": 1_700_000_000 + i, "email": f"b{i}@example.com", "reason": "550", "status": "5.1.1"}
                        for i in range(1203)]
    lists["spam_reports"] = [{"created": 1_700_000_100, "email": "Spam@Example.com", "ip": "10.0.0.1"}]
    lists["unsubscribes"] = [{"created": 1_700_005_000, "email": "gone@example.com"}]
    lists["asm_42"] = ["group@example.com"]
    client = transport(sg)._client
    got = sendgrid_suppressions.fetch(client, asm_group_id=42)
    reasons = {s.email: (s.reason, s.source) for s in got}
    assert len(reasons) == 1203 + 3
    assert reasons["b1202@example.com"] == ("bounce", "sendgrid:bounces")  # the third page was read
    assert reasons["Spam@Example.com"] == ("spamreport", "sendgrid:spam_reports")
    assert reasons["gone@example.com"] == ("unsubscribe", "sendgrid:unsubscribes")
    assert reasons["group@example.com"] == ("unsubscribe", "sendgrid:asm_group_42")
    assert sg.state.requests["GET /v3/suppression/bounces"] == 3
    newer = sendgrid_suppressions.fetch(client, start_time=1_700_002_000)  # after every bounce
    assert [s.email for s in newer] == ["gone@example.com"]


def fake_clock(sg: FakeSendGrid):
    return lambda: datetime.fromtimestamp(sg.now(), tz=timezone.utc)


def test_fake_sends_at_each_personalizations_own_time(sg) -> None:
    t = transport(sg, clock=fake_clock(sg))
    later = fake_clock(sg)() + timedelta(hours=3)
    ref = t.begin_attempt()
    body = t.request_body([msg(1, send_at=later), msg(2)], ref)
    t._call("POST", "mail/send", body)
    sg.advance(21 * 60)  # past the request's send_at (20 minutes), not the personalization's
    assert dict(sg.state.deliveries()) == {f"{2:032x}": 1}
    sg.advance(3 * 3600)
    assert dict(sg.state.deliveries()) == {f"{1:032x}": 1, f"{2:032x}": 1}
    past = dict(body, send_at=int(sg.now()) - 60, personalizations=[dict(body["personalizations"][1], send_at=None)])
    del past["personalizations"][0]["send_at"], past["batch_id"]
    t._call("POST", "mail/send", past)  # a send time already past goes out at once
    assert sg.state.deliveries()[f"{2:032x}"] == 2


def test_fake_refuses_a_cancel_within_ten_minutes_of_any_send_time(sg) -> None:
    t = transport(sg, clock=fake_clock(sg))
    ref = t.begin_attempt()
    soon = fake_clock(sg)() + timedelta(minutes=5)  # a personalization due in 5 minutes
    body = t.request_body([msg(1), msg(2)], ref)
    body["personalizations"][0]["send_at"] = int(soon.timestamp())
    t._call("POST", "mail/send", body)
    batch_id, _ = parse_attempt(ref)
    with pytest.raises(Exception, match="10 minutes"):
        t._call("POST", "user/scheduled_sends", {"batch_id": batch_id, "status": "cancel"})
    assert sg.state.refused_cancels and t.cancel_attempt(ref) is False
    sg.settle()
    assert sorted(sg.state.deliveries()) == [f"{1:032x}", f"{2:032x}"]


def test_fake_allows_ten_cancelled_batches_until_their_send_time_passes(sg) -> None:
    t = transport(sg, clock=fake_clock(sg), cancel_budget=10)
    refs = []
    for i in range(11):
        ref = t.begin_attempt()
        assert t.send_batch([msg(i)], attempt_ref=ref)[0].ok
        refs.append(ref)
    assert all(t.cancel_attempt(ref) for ref in refs[:10])
    assert t.cancel_attempt(refs[10]) is False  # the transport does not even ask: it will be delivered
    with pytest.raises(Exception, match="maximum of 10"):  # and SendGrid would refuse it
        t._call("POST", "user/scheduled_sends", {"batch_id": parse_attempt(refs[10])[0], "status": "cancel"})
    sg.advance(20 * 60 + 1)  # the ten cancelled batches reach their send time: discarded, no longer counted
    assert dict(sg.state.deliveries()) == {f"{10:032x}": 1}
    assert len(sg.state.discarded) == 10 and sg.state.live_holds() == []
    later = t.begin_attempt()
    assert t.send_batch([msg(20)], attempt_ref=later)[0].ok
    assert t.cancel_attempt(later) is True


def test_fake_5xx_burst_lasts_seconds_of_its_clock_and_asks_to_retry_after(sg) -> None:
    t = transport(sg, clock=fake_clock(sg), max_retries=0)
    ref = t.begin_attempt()
    sg.burst(3, status=503, retry_after=2)
    assert t.send_batch([msg(1)], attempt_ref=ref) == [] and t.retry_after == 2
    sg.advance(2)
    assert t.send_batch([msg(1)], attempt_ref=ref) == []  # still inside the 3 seconds
    sg.advance(1.5)
    assert t.send_batch([msg(1)], attempt_ref=ref)[0].ok and t.retry_after is None
    assert len(sg.state.accepted) == 1


def test_accepted_then_dropped_is_settled_from_email_activity(sg) -> None:
    t = transport(sg, clock=fake_clock(sg))
    sg.fault("accept_drop")
    ref = t.begin_attempt()
    assert t.send_batch([msg(1)], attempt_ref=ref) == []  # no answer at all
    assert t.lookup_attempt(ref) is None  # before the send time SendGrid's records cannot tell
    sg.advance(51 * 60)
    found = t.lookup_attempt(ref)
    assert found is not None and set(found) == {"user1@example.com"}
    other = t.begin_attempt()
    sg.fault("500")
    assert t.send_batch([msg(2)], attempt_ref=other) == []
    sg.advance(51 * 60)
    assert t.lookup_attempt(other) == {}  # processed nothing: proven not accepted
    sg.state.activity = False
    t.activity = None
    assert t.lookup_attempt(other) is None and t.activity is False  # no add-on: 403, the webhook decides


def test_fake_webhook_repeats_and_reorders_events_with_our_ids(sg) -> None:
    t = transport(sg, clock=fake_clock(sg))
    assert t.send_batch([msg(i) for i in range(20)], attempt_ref=t.begin_attempt())[0].ok
    sg.settle()
    events = sg.state.webhook_events(seed=3)
    assert len(events) > 40  # processed + delivered per recipient, some twice
    assert len({e["sg_event_id"] for e in events}) == 40
    assert [e["timestamp"] for e in events] != sorted(e["timestamp"] for e in events)
    assert {e["send_id"] for e in events} == {f"{i:032x}" for i in range(20)}
