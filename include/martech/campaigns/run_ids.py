"""Run and send identifiers shared by audience building and dispatch: run ids per campaign (over
:class:`martech.runs.Run`) and send ids."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import TYPE_CHECKING

from martech.runs import Run

if TYPE_CHECKING:
    from martech.campaigns.spec import CampaignSpec


def as_run_date(value: date | str) -> date:
    """A run date from a ``date`` or an ISO ``YYYY-MM-DD`` string (Airflow's ``ds``)."""
    return Run.daily(value).date


def run_hour(value: datetime) -> datetime:
    """The hour a micro-batch run stands for: ``value`` truncated to the hour, in UTC."""
    return Run.hour(value).cutoff


def run_instant(run: date | str | datetime) -> datetime:
    """The instant a run sees data up to: the hour for an instant, the start (UTC) of a date."""
    return Run.of(run).cutoff


def step_run_id(run_date: date | str | datetime, step: int = 1) -> str:
    """The run id of one step of a run: the ISO date (daily) or ``<date>T<HH>`` (an instant: hourly), with
    ``.step<n>`` appended after the first step."""
    return Run.of(run_date).run_id(step)


def run_of(spec: CampaignSpec, run: Run | date | str | datetime) -> Run:
    """``spec``'s run: hourly series run per hour (a date means its 00:00 run), the others per date."""
    run = Run.of(run)
    if spec.hourly:
        return run if run.hourly else Run.hour(run.cutoff)
    if run.hourly:
        raise TypeError(f"campaign {spec.id!r} runs daily: pass its run date, not an instant ({run.cutoff!r})")
    return run


def run_id_for(spec: CampaignSpec, run: Run | date | str | datetime, step: int = 1) -> str:
    """The run id of ``spec``'s run: hourly series get one per hour (a date means its 00:00 run)."""
    return run_of(spec, run).run_id(step)


def make_send_id(campaign_id: str, run_id: str, step: int, contact_id: str) -> str:
    """First 32 hex digits of sha256(``campaign_id|run_id|step|contact_id``).

    The plan step computes the same value in SQL; a test keeps the two in step.
    """
    return hashlib.sha256(f"{campaign_id}|{run_id}|{step}|{contact_id}".encode()).hexdigest()[:32]
