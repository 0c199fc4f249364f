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
``variant`` (its id), ``subject`` (rendered), ``send_id``, ``unsubscribe_url``, ``shop_url`` and
``utm`` (a query string without the leading ``?``). Filter: ``money`` (two decimals).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2

from martech.campaigns.spec import CampaignSpec, Variant
from martech.paths import TEMPLATES_DIR

__all__ = [
    "RESERVED_NAMES",
    "SHOP_URL",
    "UNSUBSCRIBE_URL",
    "Recipient",
    "RenderError",
    "RenderedMessage",
    "Renderer",
    "make_environment",
    "render_message",
    "unsubscribe_url",
]

SHOP_URL = "https://shop.example"
# A signed, expiring link replaces this placeholder later; the send id is enough to find the row.
UNSUBSCRIBE_URL = "https://shop.example/unsubscribe"

# Names the renderer provides itself; audience SQL must not return personalization columns named so.
RESERVED_NAMES = frozenset({
    "first_name", "email", "contact_id", "attributes", "campaign", "variant", "subject", "send_id",
    "unsubscribe_url", "shop_url", "utm",
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
    return env


def unsubscribe_url(send_id: str) -> str:
    return f"{UNSUBSCRIBE_URL}?{urlencode({'sid': send_id})}"


_WHITESPACE = re.compile(r"\s+")


class Renderer:
    """Compiles each (campaign, variant) once; renders per recipient. Not shared across threads."""

    def __init__(self, templates_dir: Path | None = None, *, shop_url: str = SHOP_URL) -> None:
        self._templates_dir = templates_dir
        self._envs: dict[Path, jinja2.Environment] = {}
        self._compiled: dict[tuple[str, str, str], _Compiled] = {}
        self.shop_url = shop_url
        self.compilations = 0

    def _env(self, spec: CampaignSpec) -> jinja2.Environment:
        root = self._templates_dir or spec.templates_dir
        if root not in self._envs:
            self._envs[root] = make_environment(root)
        return self._envs[root]

    def compile(self, spec: CampaignSpec, variant: Variant) -> _Compiled:
        key = (spec.id, variant.id, spec.definition_hash)
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
        compiled = self.compile(spec, variant)
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
            "unsubscribe_url": unsubscribe_url(recipient.send_id),
            "shop_url": self.shop_url,
            "utm": utm,
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
        headers = {
            "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
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
