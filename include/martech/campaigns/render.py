"""Render a campaign message (subject, HTML, plain text, headers) from Jinja templates.

Layout: ``include/templates/_layout.html.j2`` and ``_layout.txt.j2`` wrap every message, shared pieces
live in ``_partials/``, and each campaign has a folder with ``body.html.j2`` and ``body.txt.j2`` that
extend the layouts. The subject line of each variant (in the YAML) is a Jinja template too.

HTML is autoescaped, text and subject are not; every template uses ``StrictUndefined`` so a missing
personalization column fails loudly instead of sending "Hello ,". A :class:`Renderer` compiles the
templates of a (campaign, variant) once and renders them per recipient; the dispatcher keeps one
renderer per run.

Variables available to templates: ``first_name``, ``email``, ``contact_id``, every personalization
column of the audience SQL by its name (also as ``attributes``), ``campaign`` (``id``, ``name``),
``variant`` (its id), ``subject`` (rendered), ``send_id``, ``unsubscribe_url``, ``shop_url``,
``utm`` (a query string without the leading ``?``) and ``coupon`` (``code``, ``discount_percent``,
``valid_from``, ``valid_until``, ``expires_at``; None when the campaign has no coupon) and
``loyalty_card`` (the same keys; None without one). Filters: ``money`` (two decimals), ``long_date``
(``2024-06-07`` -> ``7 June 2024``), ``local_time(timezone)`` (an instant such as ``coupon.expires_at``
in the contact's time zone: ``9 December 2026, 01:00 CET``; UTC when the zone is empty or unknown).

A campaign with ``content`` entries renders each recipient with the first entry matching its
``country`` and ``language`` columns (:meth:`CampaignSpec.localized`).

The unsubscribe link carries a signed token (:mod:`martech.campaigns.unsubscribe`), and every message
gets the RFC 8058 one-click headers: ``List-Unsubscribe: <https://...>, <mailto:...>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from martech.campaigns import unsubscribe
from martech.campaigns.spec import CampaignSpec, Variant
from martech.paths import TEMPLATES_DIR

__all__ = [
    "RESERVED_NAMES",
    "SHOP_URL",
    "UNSUBSCRIBE_MAILTO",
    "UNSUBSCRIBE_URL",
    "Recipient",
    "RenderError",
    "RenderedMessage",
    "Renderer",
    "list_unsubscribe_headers",
    "make_environment",
    "render_message",
    "unsubscribe_mailto",
    "unsubscribe_url",
]

SHOP_URL = "https://shop.example"
# The one-click endpoint: takes GET (a page with a button) and POST "List-Unsubscribe=One-Click"
# (RFC 8058), verifies the token and adds the address to campaigns.suppressions.
UNSUBSCRIBE_URL = "https://shop.example/unsubscribe"
UNSUBSCRIBE_URL_ENV = "MARTECH_UNSUBSCRIBE_URL"
# Mailbox for clients that only offer the mailto: variant; the token travels in the subject.
UNSUBSCRIBE_MAILTO = "unsubscribe@shop.example"

# Names the renderer provides itself; audience SQL must not return personalization columns named so.
RESERVED_NAMES = frozenset({
    "first_name", "email", "contact_id", "attributes", "campaign", "variant", "subject", "send_id",
    "unsubscribe_url", "shop_url", "utm", "coupon", "loyalty_card",
})


class RenderError(ValueError):
    """A template could not be rendered for a recipient (undefined variable, syntax error, ...)."""


@dataclass(frozen=True)
class Recipient:
    """Who a message is for: a member of the audience snapshot plus the ledger's send id."""

    contact_id: str
    email: str
    first_name: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    send_id: str = "preview"

    @classmethod
    def of(cls, member: Recipient | Mapping[str, Any]) -> Recipient:
        if isinstance(member, Recipient):
            return member
        return cls(
            contact_id=str(member["contact_id"]),
            email=str(member["email"]),
            first_name=member.get("first_name"),
            attributes=dict(member.get("attributes") or {}),
            send_id=str(member.get("send_id") or "preview"),
        )


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    html: str
    text: str
    headers: dict[str, str]


@dataclass(frozen=True)
class _Compiled:
    subject: jinja2.Template
    html: jinja2.Template
    text: jinja2.Template


def _money(value: Any) -> str:
    if value is None:
        return ""
    try:
        return format(Decimal(str(value)), ",.2f")
    except InvalidOperation as exc:
        raise ValueError(f"money filter: {value!r} is not a number") from exc


def make_environment(templates_dir: Path = TEMPLATES_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["money"] = _money
    env.filters["long_date"] = _long_date
    env.filters["local_time"] = _local_time
    return env


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def _long_date(value: Any) -> str:
    """``2024-06-07`` (or a date / datetime) -> ``7 June 2024``."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        raise ValueError(f"long_date filter: {value!r} is not a date")
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def _local_time(value: Any, tz: Any = None) -> str:
    """An instant (ISO text or aware datetime) as ``9 December 2026, 01:00 CET`` in zone ``tz``."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ValueError(f"local_time filter: {value!r} is not an instant")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        zone: tzinfo = ZoneInfo(str(tz)) if tz else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        zone = timezone.utc
    local = value.astimezone(zone)
    return f"{_long_date(local)}, {local:%H:%M} {local.tzname()}"


def _link(base: str, send_id: str, token: str) -> str:
    return f"{base}?{urlencode({'sid': send_id, 'token': token})}"


def _mailto(address: str, token: str) -> str:
    return f"mailto:{address}?subject={quote('unsubscribe ' + token, safe='')}"


def unsubscribe_url(send_id: str, contact_id: str, campaign_id: str, *, secret: str | bytes,
                    base: str = UNSUBSCRIBE_URL) -> str:
    """``<base>?sid=<send_id>&token=<signed token>``; the endpoint trusts the token, not the sid."""
    return _link(base, send_id, unsubscribe.sign(send_id, contact_id, campaign_id, secret))


def unsubscribe_mailto(send_id: str, contact_id: str, campaign_id: str, *, secret: str | bytes,
                       address: str = UNSUBSCRIBE_MAILTO) -> str:
    """``mailto:<address>?subject=unsubscribe%20<signed token>``."""
    return _mailto(address, unsubscribe.sign(send_id, contact_id, campaign_id, secret))


def list_unsubscribe_headers(url: str, mailto: str | None = None) -> dict[str, str]:
    """RFC 2369 ``List-Unsubscribe`` (https first, then mailto) and RFC 8058 one-click POST."""
    value = f"<{url}>" if mailto is None else f"<{url}>, <{mailto}>"
    return {"List-Unsubscribe": value, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


_WHITESPACE = re.compile(r"\s+")


class Renderer:
    """Compiles each (campaign, variant) once; renders per recipient. Not shared across threads."""

    def __init__(self, templates_dir: Path | None = None, *, shop_url: str = SHOP_URL,
                 unsubscribe_secret: str | bytes | None = None, unsubscribe_base: str | None = None,
                 unsubscribe_address: str | None = UNSUBSCRIBE_MAILTO) -> None:
        self._templates_dir = templates_dir
        self._envs: dict[Path, jinja2.Environment] = {}
        self._compiled: dict[tuple[str, str, str, str, str], _Compiled] = {}
        self.shop_url = shop_url
        self.compilations = 0
        self._unsubscribe_secret = unsubscribe_secret
        # The one-click endpoint of `martech webhook` (its /unsubscribe), where it is deployed.
        self.unsubscribe_base = unsubscribe_base or os.environ.get(UNSUBSCRIBE_URL_ENV) or UNSUBSCRIBE_URL
        self.unsubscribe_address = unsubscribe_address

    @property
    def unsubscribe_secret(self) -> str | bytes:
        """The given secret, else ``MARTECH_UNSUBSCRIBE_SECRET`` (read on first use)."""
        if self._unsubscribe_secret is None:
            self._unsubscribe_secret = unsubscribe.secret_from_env()
        return self._unsubscribe_secret

    def _env(self, spec: CampaignSpec) -> jinja2.Environment:
        root = self._templates_dir or spec.templates_dir
        if root not in self._envs:
            self._envs[root] = make_environment(root)
        return self._envs[root]

    def compile(self, spec: CampaignSpec, variant: Variant) -> _Compiled:
        key = (spec.id, variant.id, spec.definition_hash, spec.template, variant.subject)
        compiled = self._compiled.get(key)
        if compiled is None:
            env = self._env(spec)
            try:
                compiled = _Compiled(
                    subject=env.from_string(variant.subject),
                    html=env.get_template(f"{spec.template}/body.html.j2"),
                    text=env.get_template(f"{spec.template}/body.txt.j2"),
                )
            except jinja2.TemplateError as exc:
                where = getattr(exc, "filename", None) or f"variant {variant.id!r} subject"
                raise RenderError(f"campaign {spec.id!r}: cannot compile {where}: {exc}") from exc
            self._compiled[key] = compiled
            self.compilations += 1
        return compiled

    def render(self, spec: CampaignSpec, variant: Variant | str,
               member: Recipient | Mapping[str, Any]) -> RenderedMessage:
        if isinstance(variant, str):
            variant = spec.variant(variant)
        recipient = Recipient.of(member)
        if spec.content:
            spec = spec.localized(recipient.attributes.get("country"), recipient.attributes.get("language"))
            variant = spec.variant(variant.id)
        compiled = self.compile(spec, variant)
        coupon = recipient.attributes.get("coupon")
        if spec.coupon is not None and not coupon:
            raise RenderError(f"campaign {spec.id!r} gives a coupon but contact {recipient.contact_id!r} has "
                              "none in its attributes: render members of a snapshot built by build_snapshot")
        card = recipient.attributes.get("loyalty_card")
        if spec.loyalty_card is not None and not card:
            raise RenderError(f"campaign {spec.id!r} gives a loyalty card but contact {recipient.contact_id!r} has "
                              "none in its attributes: render members of a snapshot built by build_snapshot")
        token = unsubscribe.sign(recipient.send_id, recipient.contact_id, spec.id, self.unsubscribe_secret)
        link = _link(self.unsubscribe_base, recipient.send_id, token)
        mailto = None if self.unsubscribe_address is None else _mailto(self.unsubscribe_address, token)
        utm = urlencode({
            "utm_source": "martech", "utm_medium": "email",
            "utm_campaign": spec.id, "utm_content": variant.id,
        })
        context: dict[str, Any] = {
            **recipient.attributes,
            "attributes": dict(recipient.attributes),
            "first_name": recipient.first_name,
            "email": recipient.email,
            "contact_id": recipient.contact_id,
            "campaign": {"id": spec.id, "name": spec.name},
            "variant": variant.id,
            "send_id": recipient.send_id,
            "unsubscribe_url": link,
            "shop_url": self.shop_url,
            "utm": utm,
            "coupon": coupon or None,
            "loyalty_card": card or None,
        }
        part = "subject"
        try:
            subject = _WHITESPACE.sub(" ", compiled.subject.render(context)).strip()
            context["subject"] = subject
            part = f"{spec.template}/body.html.j2"
            html = compiled.html.render(context)
            part = f"{spec.template}/body.txt.j2"
            text = compiled.text.render(context)
        except (jinja2.TemplateError, ValueError, TypeError) as exc:
            raise RenderError(
                f"campaign {spec.id!r} variant {variant.id!r}: {part} failed for contact "
                f"{recipient.contact_id!r}: {exc}"
            ) from exc
        headers = list_unsubscribe_headers(link, mailto)
        return RenderedMessage(subject=subject, html=html, text=text, headers=headers)


_default_renderer: Renderer | None = None


def render_message(spec: CampaignSpec, variant: Variant | str,
                   member: Recipient | Mapping[str, Any], *, renderer: Renderer | None = None
                   ) -> RenderedMessage:
    """Render one message; pass the run's ``renderer`` to reuse compiled templates."""
    global _default_renderer
    if renderer is None:
        if _default_renderer is None:
            _default_renderer = Renderer()
        renderer = _default_renderer
    return renderer.render(spec, variant, member)
