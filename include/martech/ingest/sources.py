"""The source configuration: which connector feeds which raw table (``include/sources.yml``).

One file, not code: each source has a ``kind`` (``sql``: a database pulled table by table into
``raw.shop_<table>``; ``crm_files``: CRM contact exports into ``raw.crm_contacts``; ``files``: CSV / JSON Lines /
Parquet exports per entity into ``raw.shop_<entity>``; ``hubspot``: CRM v3 objects into ``raw.hubspot_<object>``;
``shopify``: Admin API resources into ``raw.shopify_<object>``), its location and an ``enabled`` switch. The SaaS
kinds name the Airflow connection holding their token (``conn_id``); the token itself never appears here. ``${VAR}`` and
``${VAR:-default}`` are read from the environment when the file is loaded, so secrets stay out of it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from martech.paths import INCLUDE_DIR

SOURCES_FILE = INCLUDE_DIR / "sources.yml"
_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["sql", "crm_files", "files", "hubspot", "shopify"]
    enabled: bool = True
    url: str | None = None  # sql; hubspot, shopify: an API base URL other than the public one (proxy, test)
    schema_name: str = "shop"  # sql: the schema holding the tables ("schema" in the file)
    tables: tuple[str, ...] = ()  # sql
    path: str | None = None  # crm_files, files
    conn_id: str | None = Field(None, validate_default=True)  # hubspot, shopify: Airflow connection with the token
    objects: tuple[str, ...] = Field((), validate_default=True)  # hubspot, shopify: what to pull (default: all)
    shop: str | None = Field(None, validate_default=True)  # shopify: <name>.myshopify.com
    api_version: str = "2025-01"  # shopify: the Admin API version (YYYY-MM)
    write_back: bool = False  # hubspot: write the scores back as contact properties (the crm_sync DAG)

    @field_validator("write_back")
    @classmethod
    def _write_back_kind(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("kind") != "hubspot":
            raise ValueError("only a source of kind hubspot takes write_back")
        return v

    @field_validator("conn_id")
    @classmethod
    def _default_conn(cls, v: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        return v or (kind if kind in SAAS_OBJECTS else None)

    @field_validator("objects")
    @classmethod
    def _known_objects(cls, v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        kind = info.data.get("kind")
        if kind not in SAAS_OBJECTS:
            if v:
                raise ValueError(f"only sources of kind {' or '.join(SAAS_OBJECTS)} take objects")
            return v
        known = SAAS_OBJECTS[kind]
        unknown = [o for o in v if o not in known]
        if unknown:
            raise ValueError(f"unknown {kind} object(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return v or known

    @field_validator("shop")
    @classmethod
    def _shop_domain(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("kind") != "shopify":
            return v
        if not v:
            if info.data.get("enabled", True):
                raise ValueError("required for kind shopify: the shop's domain, e.g. my-shop.myshopify.com"
                                 " (or MARTECH_SHOPIFY_SHOP)")
            return None
        v = v.strip().lower().removeprefix("https://").rstrip("/")
        if "." not in v:
            v += ".myshopify.com"
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*\.myshopify\.com", v):
            raise ValueError(f"expected <name>.myshopify.com, got {v!r}")
        return v

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, v: str) -> str:
        if not re.fullmatch(r"\d{4}-(01|04|07|10)|unstable", v):
            raise ValueError(f"expected a Shopify API version like 2025-01 (January, April, July, October), got {v!r}")
        return v

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from martech.ingest.landing import SHOP_TABLES

        known = {t.name for t in SHOP_TABLES}
        unknown = [t for t in v if t not in known]
        if unknown:
            raise ValueError(f"unknown table(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return v


SAAS_OBJECTS: dict[str, tuple[str, ...]] = {
    "hubspot": ("contacts", "deals"),
    "shopify": ("customers", "orders", "abandoned_checkouts"),
}


class SourcesError(ValueError):
    """The source configuration is invalid; the message names the file, the source and the field."""


def _expand(text: str) -> str:
    return _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), text)


def load_sources(path: Path = SOURCES_FILE) -> dict[str, Source]:
    try:
        data = yaml.safe_load(_expand(Path(path).read_text())) or {}
    except yaml.YAMLError as exc:
        raise SourcesError(f"{path}: not valid YAML: {exc}") from None
    raw = data.get("sources")
    if not isinstance(raw, dict) or not raw:
        raise SourcesError(f"{path}: needs a 'sources:' mapping of source name to settings")
    out: dict[str, Source] = {}
    problems: list[str] = []
    for name, settings in raw.items():
        settings = dict(settings or {})
        if "schema" in settings:
            settings["schema_name"] = settings.pop("schema")
        for key in ("url", "path", "shop", "conn_id"):
            if settings.get(key) == "":
                settings[key] = None
        try:
            out[name] = Source.model_validate(settings)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]).replace("schema_name", "schema")
                problems.append(f"{path}: source {name!r}, field {field or '-'}: {err['msg']}")
    if problems:
        raise SourcesError("\n".join(problems))
    return out


def of_kind(kind: str, path: Path = SOURCES_FILE) -> list[tuple[str, Source]]:
    """The enabled sources of one kind, in file order."""
    return [(n, s) for n, s in load_sources(path).items() if s.kind == kind and s.enabled]
