"""A small campaign folder for tests: one two-variant campaign whose audience is every contact."""

from __future__ import annotations

from pathlib import Path

PROMO_YAML = (
    "id: promo\nname: Promo\nowner: test\ndescription: test\nschedule: '0 8 * * *'\n"
    "audience_sql: audiences/promo.sql\ntemplate: birthday\nholdout_share: 0.2\n"
    "variants:\n  - {id: a, weight: 1, subject: 'Hi {{ first_name }}'}\n"
    "  - {id: b, weight: 1, subject: 'Hello {{ first_name }}'}\n"
)


def write_promo_campaign(folder: Path) -> Path:
    """Write ``promo.yml`` and its audience SQL into ``folder`` (created if needed); the YAML's path."""
    (folder / "audiences").mkdir(parents=True, exist_ok=True)
    (folder / "audiences" / "promo.sql").write_text("select contact_id, email, first_name from staging.contacts\n")
    path = folder / "promo.yml"
    path.write_text(PROMO_YAML)
    return path
