"""The event webhook against a real warehouse: signatures, durability, dedupe, suppressions, one-click."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from martech.campaigns import unsubscribe
from martech.events import signature
from martech.events import webhook as webhook_mod
from martech.events.webhook import EVENTS_PATH, WebhookSettings, create_app
from martech.testing.sendgrid_vector import VECTOR_BODY, VECTOR_KEY, VECTOR_SIGNATURE, VECTOR_TIMESTAMP

pytestmark = pytest.mark.integration

PRIVATE = ec.generate_private_key(ec.SECP256R1())  # a key of our own: SendGrid's vector has no private half
NOW = 1_790_000_000
SECRET = "s" * 40


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock():
    return Clock(NOW)


@pytest.fixture()
def client(engine, clock):
    app = create_app(engine, WebhookSettings(public_key=signature.public_key_text(PRIVATE), max_body_bytes=64_000,
                                             unsubscribe_secrets=(SECRET,)), clock=clock)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _signed(body: bytes, stamp: str = str(NOW)) -> dict[str, str]:
    return {signature.SIGNATURE_HEADER: signature.sign(PRIVATE, stamp.encode(), body),
            signature.TIMESTAMP_HEADER: stamp, "content-type": "application/json"}


def post(client, events, stamp: str = str(NOW)):
    body = events if isinstance(events, bytes) else json.dumps(events).encode()
    return client.post(EVENTS_PATH, content=body, headers=_signed(body, stamp))


def _tag() -> str:
    return uuid.uuid4().hex[:12]


def _count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def _ev(tag: str, event: str, ts: int = NOW - 60, **extra):
    return {"email": f"{tag}@example.com", "timestamp": ts, "event": event, "sg_event_id": f"{tag}-{event}-{ts}",
            "sg_message_id": f"msg-{tag}", "send_id": f"send-{tag}", "campaign_id": "winback", **extra}


def test_sendgrids_published_vector_is_accepted_and_stored(engine):
    app = create_app(engine, WebhookSettings(public_key=VECTOR_KEY, unsubscribe_secrets=(SECRET,)),
                     clock=Clock(int(VECTOR_TIMESTAMP) + 30))
    with TestClient(app) as c:
        headers = {signature.SIGNATURE_HEADER: VECTOR_SIGNATURE, signature.TIMESTAMP_HEADER: VECTOR_TIMESTAMP.decode()}
        first = c.post(EVENTS_PATH, content=VECTOR_BODY, headers=headers)
        again = c.post(EVENTS_PATH, content=VECTOR_BODY, headers=headers)
    assert first.status_code == 200 and again.status_code == 200
    assert again.json()["stored"] == 0
    assert _count(engine, "select count(*) from raw.webhook_events where email = 'hello@world.com'") == 1
    assert _count(engine, "select count(*) from campaigns.suppressions where email = 'hello@world.com'"
                          " and reason = 'bounce' and source = 'webhook'") == 1


def test_rejections(client, clock):
    body = json.dumps([_ev(_tag(), "delivered")]).encode()
    assert client.post(EVENTS_PATH, content=body).status_code == 401
    assert client.post(EVENTS_PATH, content=body, headers={signature.TIMESTAMP_HEADER: str(NOW)}).status_code == 401
    forged = _signed(body)
    assert client.post(EVENTS_PATH, content=body + b" ", headers=forged).status_code == 403
    stale = str(NOW - 301)
    assert client.post(EVENTS_PATH, content=body, headers=_signed(body, stale)).status_code == 403
    assert client.post(EVENTS_PATH, content=body, headers=_signed(body, str(NOW - 299))).status_code == 200
    assert client.post(EVENTS_PATH, content=body, headers=_signed(body, "12ab")).status_code == 403
    big = json.dumps([_ev(_tag(), "open", note="x" * 70_000)]).encode()
    assert client.post(EVENTS_PATH, content=big, headers=_signed(big)).status_code == 413
    for bad in (b'{"event": "open"}', b"[1, 2]", b"not json", b"[NaN]", b"\xff\xfe"):
        assert post(client, bad).status_code == 400, bad


def test_acknowledged_only_after_commit(client, engine, monkeypatch):
    tag = _tag()
    events = [_ev(tag, "delivered"), _ev(tag, "bounce")]
    real = webhook_mod.store_events

    def store_then_crash(conn, evs, **kw):
        real(conn, evs, **kw)
        raise RuntimeError("the process died before committing")

    monkeypatch.setattr(webhook_mod, "store_events", store_then_crash)
    assert post(client, events).status_code == 500  # no 2xx: SendGrid keeps the batch and retries
    stored = "select count(*) from raw.webhook_events where email = :e"
    assert _count(engine, stored, e=f"{tag}@example.com") == 0
    monkeypatch.setattr(webhook_mod, "store_events", real)
    assert post(client, events).json() == {"received": 2, "stored": 2, "suppressed": 1}
    assert _count(engine, stored, e=f"{tag}@example.com") == 2


def test_duplicates_are_stored_once_on_either_key(client, engine):
    tag = _tag()
    ev = _ev(tag, "delivered")
    assert post(client, [ev, ev]).json()["stored"] == 1  # a duplicate inside one batch
    assert post(client, [ev]).json()["stored"] == 0  # a retry
    assert post(client, [{**ev, "sg_event_id": "changed-on-retry"}]).json()["stored"] == 0
    no_id = {k: v for k, v in _ev(tag, "processed").items() if k != "sg_event_id"}
    assert post(client, [no_id]).json()["stored"] == 1
    assert post(client, [no_id]).json()["stored"] == 0
    assert _count(engine, "select count(*) from raw.webhook_events where email = :e", e=f"{tag}@example.com") == 2


def test_out_of_order_unknown_and_machine_opens_reach_staging(client, engine):
    from martech.db import run_model

    tag = _tag()
    opened = _ev(tag, "open", NOW - 30, sg_machine_open=False, useragent="Mail")
    machine = _ev(tag, "open", NOW - 20, sg_machine_open=True)
    delivered = _ev(tag, "delivered", NOW - 50)
    novel = _ev(tag, "amp_interaction", NOW - 10, brand_new={"nested": [1, 2]})
    for batch in ([opened], [machine, novel], [delivered]):  # the open is reported before the delivery
        assert post(client, batch).status_code == 200
    run_ts = dt.datetime.fromtimestamp(NOW, tz=dt.timezone.utc)
    run_model(engine, "staging.email_events", {"run_date": run_ts.date(), "run_ts": run_ts})
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select event, machine_open from staging.email_events where email = :e"
                                    " order by event_ts"), {"e": f"{tag}@example.com"}).all()
        kept = conn.execute(sa.text("select payload -> 'brand_new' from raw.webhook_events"
                                    " where event = 'amp_interaction' and email = :e"),
                            {"e": f"{tag}@example.com"}).scalar_one()
    assert [tuple(r) for r in rows] == [("delivered", False), ("open", False), ("open", True),
                                        ("amp_interaction", False)]
    assert kept == {"nested": [1, 2]}


def _ledger_row(engine, tag: str) -> str:
    send_id = f"send-{tag}"
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into campaigns.send_ledger (send_id, campaign_id, run_id, step, contact_id, email, variant,"
            " status, created_at) values (:s, 'winback', '2026-11-02', 1, :c, :e, 'a', 'sent', now())"),
            {"s": send_id, "c": f"contact-{tag}", "e": f"{tag}@example.com"})
    return send_id


@pytest.mark.parametrize("event", ["bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe"])
def test_suppressing_events_suppress_at_once_with_the_ledgers_contact(client, engine, event):
    tag = _tag()
    _ledger_row(engine, tag)
    assert post(client, [_ev(tag, event)]).json()["suppressed"] == 1
    with engine.connect() as conn:
        row = conn.execute(sa.text("select contact_id, reason from campaigns.suppressions where email = :e"),
                           {"e": f"{tag}@example.com"}).one()
    assert row.contact_id == f"contact-{tag}"
    assert row.reason == {"dropped": "bounce", "group_unsubscribe": "unsubscribe"}.get(event, event)


def test_one_click_unsubscribe(client, engine):
    tag = _tag()
    send_id = _ledger_row(engine, tag)
    token = unsubscribe.sign(send_id, f"contact-{tag}", "winback", SECRET)
    suppressed = "select count(*) from campaigns.suppressions where email = :e"
    for path in (f"/unsubscribe/{token}", f"/unsubscribe?sid={send_id}&token={token}"):
        page = client.get(path)
        assert page.status_code == 200 and 'method="post"' in page.text and "One-Click" in page.text
    assert _count(engine, suppressed, e=f"{tag}@example.com") == 0  # GET never unsubscribes
    assert client.post(f"/unsubscribe/{token}", content=b"").status_code == 400
    forged = unsubscribe.sign(send_id, f"contact-{tag}", "winback", "another secret of forty characters....")
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert client.post(f"/unsubscribe/{forged}", content=b"List-Unsubscribe=One-Click", headers=form).status_code == 400
    ok = client.post(f"/unsubscribe?sid={send_id}&token={token}", content=b"List-Unsubscribe=One-Click", headers=form)
    assert ok.status_code == 200 and "unsubscribed" in ok.text
    assert client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=form).status_code == 200
    assert _count(engine, suppressed + " and reason = 'unsubscribe' and source = 'one_click'", e=f"{tag}@example.com") == 1
    assert _count(engine, "select count(*) from raw.webhook_events where send_id = :s and event = 'unsubscribe'",
                  s=send_id) == 1
    unknown = unsubscribe.sign("no-such-send", "c", "winback", SECRET)
    assert client.post(f"/unsubscribe/{unknown}", content=b"List-Unsubscribe=One-Click", headers=form).status_code == 404


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20)
_event_like = st.fixed_dictionaries(
    {}, optional={"event": st.sampled_from(["open", "click", "bounce", "dropped", "unsubscribe", "weird"]) | st.text(),
                  "email": st.emails() | st.text(), "timestamp": st.integers() | st.floats() | st.text(),
                  "sg_event_id": st.text() | st.integers(), "sg_message_id": _json, "url": _json,
                  "sg_machine_open": _json, "send_id": _json, "contact_id": _json})
_bodies = (st.binary(max_size=300)
           | st.lists(_event_like | st.dictionaries(st.text(max_size=10), _json, max_size=6), max_size=5)
           .map(lambda evs: json.dumps(evs, allow_nan=True).encode())
           | _json.map(lambda v: json.dumps(v).encode()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_fuzzed_signed_bodies_never_give_a_server_error(client, body):
    assert post(client, body).status_code in (200, 400, 413)


_header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=120)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sig=_header_text, stamp=_header_text, length=st.none() | _header_text, body=st.binary(max_size=200),
       genuine=st.booleans())
def test_fuzzed_headers_are_refused_with_a_4xx(client, sig, stamp, length, body, genuine):
    headers: dict[str, str | bytes] = {signature.SIGNATURE_HEADER: sig.encode("latin-1"),
                                       signature.TIMESTAMP_HEADER: stamp.encode("latin-1")}
    if genuine:  # signed, so the Content-Length and body checks behind the signature are reached too
        headers = dict(_signed(body))
    if length is not None:
        headers["content-length"] = length.encode("latin-1")
    status = client.post(EVENTS_PATH, content=body, headers=headers).status_code
    assert status < 500 and (status >= 400 or genuine)


def test_the_list_unsubscribe_header_of_a_rendered_mail_works_one_click(client, engine, monkeypatch):
    from martech.campaigns import render

    monkeypatch.setenv(render.UNSUBSCRIBE_URL_ENV, "http://testserver/unsubscribe")
    assert render.Renderer().unsubscribe_base == "http://testserver/unsubscribe"
    tag = _tag()
    send_id = _ledger_row(engine, tag)
    url = render.unsubscribe_url(send_id, f"contact-{tag}", "winback", secret=SECRET,
                                 base=render.Renderer().unsubscribe_base)
    headers = render.list_unsubscribe_headers(url)
    target = headers["List-Unsubscribe"].strip("<>")
    # What a mailbox provider does on "unsubscribe": POST the header's body to the header's URL.
    answer = client.post(target, content=headers["List-Unsubscribe-Post"].encode(),
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    assert _count(engine, "select count(*) from campaigns.suppressions where email = :e", e=f"{tag}@example.com") == 1
