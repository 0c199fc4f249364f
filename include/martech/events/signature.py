"""SendGrid's signed Event Webhook: ECDSA P-256 with SHA-256 over ``timestamp header bytes + raw body``.

SendGrid shows the verification key as base64 of the DER-encoded SubjectPublicKeyInfo; the signature
header is base64 of a DER-encoded ECDSA signature. The signed bytes are the timestamp header exactly as
sent followed by the request body exactly as received: a body parsed and serialised again no longer
verifies, so verification runs before any JSON parsing.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "load_public_key", "public_key_text", "sign", "verify"]

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
_MAX_SIGNATURE_CHARS = 200  # a DER P-256 signature is at most 72 bytes (96 base64 characters)


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The key as SendGrid shows it (base64 DER), or a PEM block; raises ValueError naming the problem."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ValueError("the SendGrid webhook verification key is not a base64 DER (or PEM) public key: "
                         "copy it from Settings → Mail Settings → Event Webhook → Signature verification") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the SendGrid webhook verification key must be an ECDSA P-256 public key")
    return key


def verify(key: ec.EllipticCurvePublicKey, signature_b64: str, timestamp: bytes, body: bytes) -> bool:
    """True when ``signature_b64`` signs ``timestamp + body`` with the private half of ``key``."""
    if not signature_b64 or len(signature_b64) > _MAX_SIGNATURE_CHARS:
        return False
    try:
        der = base64.b64decode(signature_b64.strip(), validate=True)
        key.verify(der, timestamp + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def sign(private_key: ec.EllipticCurvePrivateKey, timestamp: bytes, body: bytes) -> str:
    """The signature header value for ``timestamp + body`` (what SendGrid computes; for tests and the simulator)."""
    return base64.b64encode(private_key.sign(timestamp + body, ec.ECDSA(hashes.SHA256()))).decode("ascii")


def public_key_text(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The public half in SendGrid's display form (base64 DER)."""
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")
