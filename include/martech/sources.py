"""The source configuration: which connector feeds which raw table (``include/sources.yml``).

One file, not code: each source has a ``kind`` (``sql``: a database pulled table by table into
``raw.shop_<table>``; ``crm_files``: CRM contact exports into ``raw.crm_contacts``; ``files``: CSV / JSON Lines /
Parquet exports per entity into ``raw.shop_<entity>``), its location and an ``enabled`` switch. ``${VAR}`` and
``${VAR:-default}`` are read from the environment when the file is loaded, so secrets stay out of it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from martech.paths import INCLUDE_DIR

SOURCES_FILE = INCLUDE_DIR / "sources.yml"
_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["sql", "crm_files", "files"]
    enabled: bool = True
    url: str | None = None  # sql
    schema_name: str = "shop"  # sql: the schema holding the tables ("schema" in the file)
    tables: tuple[str, ...] = ()  # sql
    path: str | None = None  # crm_files, files

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from martech.ingest import SHOP_TABLES

        known = {t.name for t in SHOP_TABLES}
        unknown = [t for t in v if t not in known]
        if unknown:
            raise ValueError(f"unknown table(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return v


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
        for key in ("url", "path"):
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
