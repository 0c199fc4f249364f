"""Signed unsubscribe tokens: round trip, tampering, wrong secrets, and what the renderer puts in mails."""

from __future__ import annotations

import base64
import logging
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from martech.campaigns import unsubscribe
from martech.campaigns.render import Recipient, Renderer
from martech.campaigns.spec import load_campaigns
from martech.campaigns.unsubscribe import DEV_SECRET, InvalidToken, UnsubscribePayload, sign, verify

SECRET = "s3cret-for-tests-only-0123456789abcdef"
SEND_ID = "0123456789abcdef0123456789abcdef"


def test_round_trip_returns_what_was_signed() -> None:
    token = sign(SEND_ID, "C0004711", "birthday", SECRET)
    assert token.startswith("v1.")
    assert verify(token, SECRET) == UnsubscribePayload(SEND_ID, "C0004711", "birthday", "v1")
    assert sign(SEND_ID, "C0004711", "birthday", SECRET) == token  # deterministic: reruns send the same bytes


def test_token_is_url_safe_and_short() -> None:
    token = sign(SEND_ID, "C0004711", "birthday", SECRET)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert "=" not in token and len(token) < 120


def test_odd_contact_ids_survive() -> None:
    payload = verify(sign(SEND_ID, "Jürgen|.\"x\"", "win-back_2", SECRET), SECRET)
    assert payload.contact_id == "Jürgen|.\"x\"" and payload.campaign_id == "win-back_2"


def _swap(text: str, index: int) -> str:
    ch = text[index]
    return text[:index] + ("A" if ch != "A" else "B") + text[index + 1:]


def test_tampered_payload_is_rejected() -> None:
    version, body, mac = sign(SEND_ID, "C0004711", "birthday", SECRET).split(".")
    # Someone else's contact id under the original signature.
    forged = base64.urlsafe_b64encode(f'["{SEND_ID}","C0000001","birthday"]'.encode()).rstrip(b"=").decode()
    for token in (f"{version}.{forged}.{mac}", f"{version}.{_swap(body, 5)}.{mac}", f"{version}.{body}.{_swap(mac, 3)}",
                  f"{version}.{body}.{mac[:-2]}", f"{version}.{body}.{mac}AA"):
        with pytest.raises(InvalidToken):
            verify(token, SECRET)


def test_wrong_secret_is_rejected() -> None:
    token = sign(SEND_ID, "C0004711", "birthday", SECRET)
    with pytest.raises(InvalidToken, match="signature"):
        verify(token, "another-secret")
    with pytest.raises(InvalidToken):
        verify(token, DEV_SECRET)


def test_rotation_accepts_old_and_new_secret() -> None:
    old = sign(SEND_ID, "C1", "upsell", "old-secret")
    new = sign(SEND_ID, "C1", "upsell", "new-secret")
    assert verify(old, ["new-secret", "old-secret"]).contact_id == "C1"
    assert verify(new, ["new-secret", "old-secret"]).contact_id == "C1"
    with pytest.raises(InvalidToken):
        verify(old, ["new-secret"])


@pytest.mark.parametrize("token", [
    "", "v1", "v1..", "v1.abc", "v1.a.b.c", "v2.eyJ4IjoxfQ.AAAA", "v1.not base64!.AAAA", "v1.eyJ4IjoxfQ.A=A",
    "x" * 5000,
])
def test_malformed_tokens_are_rejected(token: str) -> None:
    with pytest.raises(InvalidToken):
        verify(token, SECRET)


def test_signed_but_misshapen_payload_is_rejected() -> None:
    # Correctly signed, but not the list of three ids (e.g. a token format bug).
    body = base64.urlsafe_b64encode(b'{"send_id": "x"}').rstrip(b"=").decode()
    mac = base64.urlsafe_b64encode(unsubscribe._mac(SECRET.encode(), f"v1.{body}")).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="shape"):
        verify(f"v1.{body}.{mac}", SECRET)


def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = unsubscribe.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(unsubscribe.hmac, "compare_digest", spy)
    token = sign(SEND_ID, "C1", "upsell", SECRET)
    verify(token, SECRET)
    with pytest.raises(InvalidToken):
        verify(token, "wrong")
    assert len(calls) == 2


@pytest.mark.parametrize(("args", "message"), [
    (("", "C1", "x", SECRET), "send_id"), ((SEND_ID, "", "x", SECRET), "contact_id"),
    ((SEND_ID, "C1", "x", ""), "secret"),
])
def test_sign_refuses_empty_inputs(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sign(*args)


def test_secret_from_env_warns_loudly_without_it(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setattr(unsubscribe, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="martech.campaigns.unsubscribe"):
        assert unsubscribe.secret_from_env({}) == DEV_SECRET
    assert "MARTECH_UNSUBSCRIBE_SECRET is not set" in caplog.text
    assert unsubscribe.secret_from_env({"MARTECH_UNSUBSCRIBE_SECRET": " " + SECRET + " "}) == SECRET


def test_rendered_links_and_headers_carry_a_verifiable_token() -> None:
    spec = {s.id: s for s in load_campaigns()}["upsell"]
    member = Recipient(contact_id="C0004711", email="ann@example.com", first_name="Ann", send_id=SEND_ID,
                       attributes={"last_category": "Shoes", "offer_category": "Socks",
                                   "offer_source": "category_affinity", "products": []})
    message = Renderer(unsubscribe_secret=SECRET).render(spec, "a", member)

    https, mailto = message.headers["List-Unsubscribe"].split(", ")
    url = https.strip("<>")
    assert url in message.text and url.replace("&", "&amp;") in message.html
    query = parse_qs(urlsplit(url).query)
    assert query["sid"] == [SEND_ID]
    assert verify(query["token"][0], SECRET) == UnsubscribePayload(SEND_ID, "C0004711", "upsell")

    subject = unquote(urlsplit(mailto.strip("<>")).query.removeprefix("subject="))
    assert subject == "unsubscribe " + query["token"][0]
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Another secret signs a different link, which the first secret rejects.
    other = Renderer(unsubscribe_secret="other-secret").render(spec, "a", member)
    other_token = parse_qs(urlsplit(other.headers["List-Unsubscribe"].split(", ")[0].strip("<>")).query)["token"][0]
    with pytest.raises(InvalidToken):
        verify(other_token, SECRET)
