"""The email transport a run sends through, chosen by name (outbox, smtp, sendgrid) and its settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from martech import paths


def make_transport(name: str | None = None, settings: Mapping[str, Any] | None = None):
    """The email transport named by ``name`` / MARTECH_TRANSPORT (default: outbox).

    ``settings`` come from the Airflow connection of the transport (resolved by the DAG task, see
    ``dagkit.transport_settings``) or, outside Airflow, from environment variables:
    sendgrid — ``api_key`` (MARTECH_SENDGRID_API_KEY), ``host`` (MARTECH_SENDGRID_HOST), ``sandbox``,
    ``asm_group_id``; smtp — ``host``, ``port``, ``username``, ``password``, ``security``
    (MARTECH_SMTP_URL, e.g. ``smtp://user:secret@mail.example:587?security=starttls``).
    """
    import os

    from martech.campaigns.transports import OutboxTransport

    name = name or os.environ.get("MARTECH_TRANSPORT", "outbox")
    conf = dict(settings or {})
    if name == "outbox":
        return OutboxTransport(paths.outbox_dir())
    if name == "sendgrid":
        from martech.campaigns.sendgrid_transport import DEFAULT_HOST, SendGridTransport

        group = conf.get("asm_group_id") or os.environ.get("MARTECH_SENDGRID_ASM_GROUP")
        return SendGridTransport(
            conf.get("api_key") or os.environ.get("MARTECH_SENDGRID_API_KEY", ""),
            host=conf.get("host") or os.environ.get("MARTECH_SENDGRID_HOST", DEFAULT_HOST),
            sandbox=str(conf.get("sandbox", os.environ.get("MARTECH_SENDGRID_SANDBOX", ""))).lower()
            in ("1", "true", "yes"),
            asm_group_id=int(group) if group else None, categories=("martech",))
    if name == "smtp":
        from urllib.parse import parse_qs, urlsplit

        from martech.campaigns.smtp_transport import SmtpTransport

        if not conf.get("host") and os.environ.get("MARTECH_SMTP_URL"):
            u = urlsplit(os.environ["MARTECH_SMTP_URL"])
            conf = {"host": u.hostname, "port": u.port, "username": u.username, "password": u.password,
                    "security": parse_qs(u.query).get("security", ["none"])[0]}
        if not conf.get("host"):
            raise ValueError("the smtp transport needs a server: Airflow connection 'smtp' or MARTECH_SMTP_URL")
        return SmtpTransport(str(conf["host"]), int(conf.get("port") or 25), username=conf.get("username"),
                             password=conf.get("password"), security=str(conf.get("security") or "none"))
    raise ValueError(f"MARTECH_TRANSPORT={name!r} is not a known transport; use outbox, smtp or sendgrid")
