"""ECDSA verification of SendGrid's signed Event Webhook."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from martech.events import signature
from martech.events.store import event_key, normalise
from martech.testing.sendgrid_vector import VECTOR_BODY, VECTOR_KEY, VECTOR_SIGNATURE, VECTOR_TIMESTAMP

OTHER_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+"
             "y7GjUuFDb/R1NGe1OPzpA==")


def test_published_vector_verifies():
    assert signature.verify(signature.load_public_key(VECTOR_KEY), VECTOR_SIGNATURE, VECTOR_TIMESTAMP, VECTOR_BODY)


@pytest.mark.parametrize("change", ["body", "timestamp", "reserialised", "key", "signature"])
def test_any_change_breaks_the_vector(change):
    key, sig, stamp, body = signature.load_public_key(VECTOR_KEY), VECTOR_SIGNATURE, VECTOR_TIMESTAMP, VECTOR_BODY
    if change == "body":
        body = body.replace(b"dropped", b"dropper")
    elif change == "timestamp":
        stamp = b"1600112503"
    elif change == "reserialised":  # the same JSON without the trailing CR LF: not the bytes that were signed
        body = body.rstrip()
    elif change == "key":
        key = signature.load_public_key(OTHER_KEY)
    else:
        sig = sig[:-8] + "AAAAAAA="
    assert not signature.verify(key, sig, stamp, body)


@pytest.mark.parametrize("sig", ["", "not base64!", "A" * 500, "MEUCIA=="])
def test_malformed_signatures_are_false_not_errors(sig):
    assert not signature.verify(signature.load_public_key(VECTOR_KEY), sig, VECTOR_TIMESTAMP, VECTOR_BODY)


def test_sign_round_trip_and_pem_key():
    private = ec.generate_private_key(ec.SECP256R1())
    sig = signature.sign(private, b"1700000000", b"[]")
    shown = signature.public_key_text(private)
    assert signature.verify(signature.load_public_key(shown), sig, b"1700000000", b"[]")
    pem = "-----BEGIN PUBLIC KEY-----\n" + shown + "\n-----END PUBLIC KEY-----\n"
    assert signature.verify(signature.load_public_key(pem), sig, b"1700000000", b"[]")


@pytest.mark.parametrize("text", ["", "bm90IGEga2V5", "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----"])
def test_unusable_keys_name_the_setting(text):
    with pytest.raises(ValueError, match="verification key"):
        signature.load_public_key(text)


def test_other_curves_are_refused():
    other = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError, match="P-256"):
        signature.load_public_key(signature.public_key_text(other))


NOW = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)


def test_composite_key_ignores_the_event_id_and_email_case():
    first = {"event": "delivered", "sg_message_id": "m1", "email": "A@x.example", "timestamp": 1, "sg_event_id": "a"}
    retry = {**first, "sg_event_id": "b", "email": "a@x.example"}
    assert event_key(first) == event_key(retry)
    assert event_key(first) != event_key({**first, "timestamp": 2})


@pytest.mark.parametrize("stamp", [None, "soon", 1e300, float("nan"), True, -5, [1]])
def test_unreadable_timestamps_become_null(stamp):
    assert normalise({"event": "open", "timestamp": stamp}, received_at=NOW)["event_ts"] is None


def test_rows_keep_unknown_fields_and_flag_machine_opens():
    row = normalise({"event": "Open", "timestamp": 1700000000, "sg_machine_open": True, "new_field": {"a": 1},
                     "email": " Bo@X.example ", "note": "nul\x00 and \ud800"}, received_at=NOW)
    assert row["event"] == "open" and row["machine_open"] and row["email"] == "bo@x.example"
    assert row["payload"]["new_field"] == {"a": 1}
    assert "\x00" not in row["payload"]["note"] and "\ud800" not in row["payload"]["note"]
    assert row["event_ts"] == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc)
