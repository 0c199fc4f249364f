"""Signed unsubscribe tokens: who may be unsubscribed by a link, without a database lookup to trust it.

A token is ``v1.<payload>.<mac>``: the payload is the JSON list ``[send_id, contact_id, campaign_id]``
and the mac is HMAC-SHA256 over ``v1.<payload>`` with the unsubscribe secret, truncated to its first
128 bits (RFC 2104 allows truncation to half the hash; it keeps links short), both URL-safe base64
without padding. It goes into the footer link and the ``List-Unsubscribe`` header (RFC 2369 / RFC 8058
one-click), so whoever follows it can be unsubscribed without logging in, and nobody can forge one for
another address.

Tokens carry no expiry on purpose: an unsubscribe link must keep working long after the mail was sent,
and the same send must render the same bytes on a rerun (the outbox rewrites identical files). The
version prefix leaves room for another format; rotating the secret is done by passing the old and the
new secret to :func:`verify` for a while.

The secret comes from ``MARTECH_UNSUBSCRIBE_SECRET``. Without it a fixed development secret is used
and a warning is logged: fine for the outbox, never for real mail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from martech.privacy.secrets import configured_secret

__all__ = [
    "DEV_SECRET",
    "SECRET_ENV",
    "TOKEN_VERSION",
    "InvalidToken",
    "UnsubscribePayload",
    "secret_from_env",
    "sign",
    "verify",
]

log = logging.getLogger("martech.campaigns.unsubscribe")

TOKEN_VERSION = "v1"
SECRET_ENV = "MARTECH_UNSUBSCRIBE_SECRET"
# Documented, public and therefore worthless as a secret: only for local runs and tests.
DEV_SECRET = "martech-dev-unsubscribe-secret-not-for-production"
MAX_TOKEN_LENGTH = 2048
MAC_BYTES = 16
MIN_SECRET_LENGTH = 32

_warned = False

Secret = str | bytes


class InvalidToken(ValueError):
    """The token is malformed, of an unknown version, or was not signed with the given secret."""


@dataclass(frozen=True)
class UnsubscribePayload:
    send_id: str
    contact_id: str
    campaign_id: str
    version: str = TOKEN_VERSION


def secret_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``MARTECH_UNSUBSCRIBE_SECRET``, or the development secret with a loud warning (once per process)."""
    global _warned
    value = configured_secret(SECRET_ENV, DEV_SECRET, environ)
    if value:
        if len(value) < MIN_SECRET_LENGTH and not _warned:
            _warned = True
            log.warning("%s is shorter than %d characters; use a long random value "
                        "(python -c 'import secrets; print(secrets.token_urlsafe(48))')",
                        SECRET_ENV, MIN_SECRET_LENGTH)
        return value
    if not _warned:
        _warned = True
        log.warning(
            "!!! %s is not set: unsubscribe links are signed with the PUBLIC development secret. "
            "Anyone can forge them. Set %s before sending real email. !!!", SECRET_ENV, SECRET_ENV)
    return DEV_SECRET


def _key(secret: Secret) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("the unsubscribe secret must not be empty")
    return key


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64decode(text: str) -> bytes:
    if not text or not set(text) <= _B64_CHARS:
        raise InvalidToken("the token is not URL-safe base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("the token is not URL-safe base64") from exc


def _mac(key: bytes, signed_part: str) -> bytes:
    return hmac.new(key, signed_part.encode("ascii"), hashlib.sha256).digest()[:MAC_BYTES]


def sign(send_id: str, contact_id: str, campaign_id: str, secret: Secret) -> str:
    """A URL-safe token for this send; the same inputs always give the same token."""
    for name, value in (("send_id", send_id), ("contact_id", contact_id), ("campaign_id", campaign_id)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    payload = json.dumps([send_id, contact_id, campaign_id], separators=(",", ":"), ensure_ascii=False)
    signed_part = f"{TOKEN_VERSION}.{_b64encode(payload.encode('utf-8'))}"
    return f"{signed_part}.{_b64encode(_mac(_key(secret), signed_part))}"


def verify(token: str, secret: Secret | Sequence[Secret]) -> UnsubscribePayload:
    """The payload of a genuine token; raises :class:`InvalidToken` for anything else.

    ``secret`` may be a list (current secret first, then retired ones) while a secret is rotated.
    MACs are compared in constant time.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("the token is empty or too long")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise InvalidToken("the token does not have the form version.payload.signature")
    version, body, signature = parts
    if version != TOKEN_VERSION:
        raise InvalidToken(f"unknown token version {version[:10]!r}")
    given = _b64decode(signature)
    payload_bytes = _b64decode(body)
    secrets_ = [secret] if isinstance(secret, (str, bytes)) else list(secret)
    if not secrets_:
        raise ValueError("verify needs at least one secret")
    signed_part = f"{version}.{body}"
    # Every secret is tried (no early exit), so timing does not reveal which one matched.
    matched = False
    for candidate in secrets_:
        matched |= hmac.compare_digest(_mac(_key(candidate), signed_part), given)
    if not matched:
        raise InvalidToken("the token's signature does not match")
    try:
        values = json.loads(payload_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # signed but unreadable: a bug, not an attack
        raise InvalidToken("the token's payload is not readable") from exc
    if not (isinstance(values, list) and len(values) == 3 and all(isinstance(v, str) and v for v in values)):
        raise InvalidToken("the token's payload has the wrong shape")
    return UnsubscribePayload(send_id=values[0], contact_id=values[1], campaign_id=values[2], version=version)
