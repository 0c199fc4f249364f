"""Run and send identifiers shared by audience building and dispatch: run dates, run hours, run ids and send ids."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from martech.campaigns.spec import CampaignSpec


def as_run_date(value: date | str) -> date:
    """A run date from a ``date`` or an ISO ``YYYY-MM-DD`` string (Airflow's ``ds``)."""
    if isinstance(value, datetime):
        raise TypeError(f"run_date must be a date, not a datetime ({value!r}); pass value.date()")
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def run_hour(value: datetime) -> datetime:
    """The hour a micro-batch run stands for: ``value`` truncated to the hour, in UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"an hourly run needs a timezone-aware instant, got {value!r}")
    return value.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def run_instant(run: date | str | datetime) -> datetime:
    """The instant a run sees data up to: the hour for an instant, the start (UTC) of a date."""
    if isinstance(run, datetime):
        return run_hour(run)
    if isinstance(run, str) and "T" in run:
        return run_hour(datetime.fromisoformat(run))
    return datetime.combine(as_run_date(run), time(0), tzinfo=timezone.utc)


def step_run_id(run_date: date | str | datetime, step: int = 1) -> str:
    """The run id of one step of a run: the ISO date (daily) or ``<date>T<HH>`` (an instant: hourly), with
    ``.step<n>`` appended after the first step."""
    base = (run_hour(run_date).strftime("%Y-%m-%dT%H") if isinstance(run_date, datetime)
            else as_run_date(run_date).isoformat())
    return base if step == 1 else f"{base}.step{step}"


def run_id_for(spec: CampaignSpec, run: date | str | datetime, step: int = 1) -> str:
    """The run id of ``spec``'s run: hourly series get one per hour (a date means its 00:00 run)."""
    if spec.hourly:
        return step_run_id(run_instant(run), step)
    if isinstance(run, datetime):
        raise TypeError(f"campaign {spec.id!r} runs daily: pass its run date, not an instant ({run!r})")
    return step_run_id(run, step)


def make_send_id(campaign_id: str, run_id: str, step: int, contact_id: str) -> str:
    """First 32 hex digits of sha256(``campaign_id|run_id|step|contact_id``).

    The plan step computes the same value in SQL; a test keeps the two in step.
    """
    return hashlib.sha256(f"{campaign_id}|{run_id}|{step}|{contact_id}".encode()).hexdigest()[:32]
