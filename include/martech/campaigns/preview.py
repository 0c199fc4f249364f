"""``martech campaigns validate`` and ``martech campaigns preview``: for people who edit campaign YAML.

``validate`` loads every file on its own and reports every problem of every file. ``preview`` renders
the latest audience snapshot of one campaign with the current YAML and templates to
``<outbox>/previews/<campaign>/<run>/`` (the same files a real send writes first), sending nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from martech import paths
from martech.campaigns.spec import CampaignSpecError, load_campaign, load_settings, scan_campaigns

__all__ = ["preview", "validate"]

_LATEST_RUN = sa.text(
    "select run_id, run_date from audiences.audience_members where campaign_id = :c"
    " order by run_date desc, run_id desc limit 1")


def validate(directory: Path | None = None) -> tuple[int, list[str]]:
    """(valid campaigns, one line per problem in the folder's files, ``_settings.yml`` included)."""
    directory = directory or paths.campaigns_dir()
    specs, errors = scan_campaigns(directory)
    problems = [line for lines in errors.values() for line in lines]
    try:
        load_settings(directory)
    except CampaignSpecError as exc:
        problems = list(exc.errors) + problems
    return len(specs), problems


def _run_of(spec: Any, run_id: str, run_date: dt.date) -> tuple[dt.date | dt.datetime, int]:
    """The run (date, or hour for an hourly series) and step a snapshot's run id stands for."""
    base, _, step = run_id.partition(".step")
    if spec.hourly:
        return dt.datetime.strptime(base, "%Y-%m-%dT%H").replace(tzinfo=dt.timezone.utc), int(step or 1)
    return run_date, int(step or 1)


def preview(engine: Any, campaign_id: str, *, contacts: int = 1, folder: Path | None = None) -> list[Path]:
    """Render ``contacts`` treatment members per variant of the campaign's latest snapshot; the files written.

    Raises ``LookupError`` when the campaign has no snapshot yet (its ``build_audience`` task makes one).
    """
    from martech.campaigns.dispatch import write_previews

    spec = load_campaign(paths.campaigns_dir() / f"{campaign_id}.yml")
    with engine.connect() as conn:
        latest = conn.execute(_LATEST_RUN, {"c": spec.id}).first()
    if latest is None:
        raise LookupError(f"campaign {spec.id!r} has no audience snapshot yet: run its DAG's build_audience task"
                          " (or a dry run) for a date first")
    run, step = _run_of(spec, latest.run_id, latest.run_date)
    now = dt.datetime.combine(latest.run_date, dt.time(0), tzinfo=dt.timezone.utc)
    return write_previews(engine, spec, run, folder or paths.outbox_dir() / "previews", now=now, step=step,
                          samples=contacts)
