"""A small campaign folder for tests: one two-variant campaign whose audience is every contact."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

PROMO_YAML = (
    "id: promo\nname: Promo\nowner: test\ndescription: test\nschedule: '0 8 * * *'\n"
    "audience_sql: audiences/promo.sql\ntemplate: birthday\nholdout_share: 0.2\n"
    "variants:\n  - {id: a, weight: 1, subject: 'Hi {{ first_name }}'}\n"
    "  - {id: b, weight: 1, subject: 'Hello {{ first_name }}'}\n"
)


EVERY_CONTACT = "select contact_id, email, first_name from staging.contacts\n"


def write_campaign(folder: Path, campaign_id: str, yaml_text: str, audience_sql: str = EVERY_CONTACT) -> Path:
    """Write ``<campaign_id>.yml`` and ``audiences/<campaign_id>.sql`` into ``folder`` (created if needed);
    the YAML's path. ``yaml_text`` names ``audience_sql: audiences/<campaign_id>.sql``."""
    (folder / "audiences").mkdir(parents=True, exist_ok=True)
    (folder / "audiences" / f"{campaign_id}.sql").write_text(audience_sql)
    path = folder / f"{campaign_id}.yml"
    path.write_text(yaml_text)
    return path


def write_promo_campaign(folder: Path) -> Path:
    """Write ``promo.yml`` and its audience SQL into ``folder`` (created if needed); the YAML's path."""
    return write_campaign(folder, "promo", PROMO_YAML)


def plant_members(engine: Any, campaign_id: str, run_date: date,
                  members: Iterable[tuple[str, str, str, str, str]]) -> None:
    """Insert audience members ``(contact_id, email, first_name, arm, variant)`` into the run's snapshot
    (run id = the date), customers all, as a test's audience without building one."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email, first_name,"
            " arm, variant, definition_hash, attributes) values (:cid, :r, :d, :c, :e, :f, :arm, :v, 'h',"
            " '{\"is_customer\": true}')"),
            [{"cid": campaign_id, "r": run_date.isoformat(), "d": run_date, "c": c, "e": e, "f": f, "arm": arm,
              "v": v} for c, e, f, arm, v in members])
