"""The public development secrets must never sign or derive anything that reaches real recipients.

The unsubscribe and coupon secrets fall back to documented development values so that local runs and
tests need no setup. With a transport that delivers real email (``smtp``, ``sendgrid``) that fallback
would let anyone forge unsubscribe links or predict coupon codes, so it is refused instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

REAL_TRANSPORTS = ("smtp", "sendgrid")
TRANSPORT_ENV = "MARTECH_TRANSPORT"


class DevelopmentSecretError(RuntimeError):
    pass


def refuse_development_secret(secret_env: str, value: str, dev_secret: str,
                              environ: Mapping[str, str] | None = None) -> None:
    """Raise when ``value`` is empty or the development secret while the transport sends real email."""
    environ = os.environ if environ is None else environ
    transport = (environ.get(TRANSPORT_ENV) or "outbox").strip()
    if transport in REAL_TRANSPORTS and (not value or value == dev_secret):
        raise DevelopmentSecretError(
            f"{TRANSPORT_ENV}={transport} delivers real email but {secret_env} is "
            f"{'not set' if not value else 'the public development secret'}; set {secret_env} to a long random "
            "value (python -c 'import secrets; print(secrets.token_urlsafe(48))') in the environment of the "
            "Airflow workers")


def configured_secret(secret_env: str, dev_secret: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of ``secret_env`` stripped ('' when it is not set), refused as
    :func:`refuse_development_secret` says."""
    environ = os.environ if environ is None else environ
    value = (environ.get(secret_env) or "").strip()
    refuse_development_secret(secret_env, value, dev_secret, environ)
    return value
