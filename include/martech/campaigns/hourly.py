"""Hourly micro-batch runs of a series campaign (the abandoned cart): what its DAG tasks call.

An hourly run stands for one instant, the top of its hour ``H`` (UTC). In order:

1. :func:`refresh_shop` pulls the shop tables the audience reads (carts, cart lines, orders) incrementally
   up to ``H`` into ``raw.*`` as batches tagged ``<date>T<HH>``. Staging is not rebuilt: the audience SQL
   reads the latest raw version of each cart and order updated before ``H`` itself.
2. :func:`build_audience` snapshots every step for ``H`` (run ids ``<date>T<HH>[.step<n>]``); each step is
   decided once per series key (the cart), see :func:`martech.campaigns.audience.build_snapshot`.
3. :func:`validate_audience` runs the pre-send gate per step, comparing the size with the same step at the
   same hour on earlier days (hourly arms are small and follow the time of day).
4. :func:`dispatch_campaign` sends each step through the ledger, then re-dispatches the steps of earlier
   hours that still hold unsent rows (messages a transport without scheduling held back for quiet hours,
   or failures to retry), and records the runs in ``campaigns.campaign_runs``.

Every function takes the warehouse URL and the run's instant explicitly; none reads the clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from martech import paths

__all__ = [
    "HOURLY_TABLES",
    "batch_tag",
    "build_audience",
    "daily_run_date",
    "dispatch_campaign",
    "parse_run_id",
    "refresh_shop",
    "validate_audience",
]

log = logging.getLogger("martech.campaigns.hourly")

# What the abandoned-cart audience reads from the shop between two daily ingests.
HOURLY_TABLES = ("carts", "cart_items", "orders")
# Earlier hours whose unsent rows each run retries: a quiet-hours deferral lasts at most one night.
SWEEP_HOURS = 36
# Peers of an hourly run for the gate's size check: the same step and hour on this many earlier days.
PEER_DAYS = 7
# Below this many members an hourly arm is never "far too large": a handful of carts is noise, not a bug.
MIN_UPPER_BOUND = 25

_RUN_ID = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2})(?:\.step(\d+))?$")


def _engine(url: str) -> Any:
    from martech.db import make_engine

    return make_engine(url)


def _spec(campaign_id: str) -> Any:
    from martech.campaigns.spec import load_campaign

    spec = load_campaign(paths.CAMPAIGNS_DIR / f"{campaign_id}.yml")
    if not spec.hourly:
        raise ValueError(f"campaign {campaign_id!r} is not an hourly series (schedule {spec.schedule!r}); "
                         "run it through martech.pipeline")
    return spec


def _hour(run_at: dt.datetime) -> dt.datetime:
    from martech.campaigns.audience import run_hour

    return run_hour(run_at)


def batch_tag(run_at: dt.datetime) -> str:
    """``2026-11-02T13``: names the hour's landing batches and its run ids."""
    return _hour(run_at).strftime("%Y-%m-%dT%H")


def daily_run_date(run_at: dt.datetime) -> dt.date:
    """The daily run whose cutoff first covers this hour's pull (the next midnight at or after it).

    Recorded as the batch's run date, so the daily raw checks of that date also check the hourly batches
    that landed its rows.
    """
    hour = _hour(run_at)
    return (hour - dt.timedelta(microseconds=1)).date() + dt.timedelta(days=1)


def parse_run_id(run_id: str) -> tuple[dt.datetime, int] | None:
    """``2026-11-02T13.step2`` -> (2026-11-02 13:00 UTC, 2); None for a daily run id."""
    m = _RUN_ID.match(run_id)
    if not m:
        return None
    at = dt.datetime.combine(dt.date.fromisoformat(m[1]), dt.time(int(m[2])), tzinfo=dt.timezone.utc)
    return at, int(m[3] or 1)


def refresh_shop(url: str, run_at: dt.datetime, *, shop_url: str | None = None,
                 shop_schema: str | None = None, tables: Sequence[str] = HOURLY_TABLES) -> dict[str, Any]:
    """Pull ``tables`` of every enabled SQL source incrementally, up to the run's hour.

    A rerun of the hour loads nothing (its batches are complete); a later hour starts from the watermark,
    so a missed hour's rows arrive with the next pull.
    """
    from martech.db import migrate
    from martech.ingest.landing import ingest_shop
    from martech.ingest.sources import of_kind

    hour = _hour(run_at)
    tag = batch_tag(hour)
    eng = _engine(url)
    results = []
    try:
        migrate(eng)
        for _name, source in of_kind("sql"):
            wanted = [t for t in tables if not source.tables or t in source.tables]
            if not wanted:
                continue
            src_url = shop_url or source.url
            src = _engine(src_url) if src_url else eng
            try:
                results += ingest_shop(src, eng, source_schema=shop_schema or source.schema_name,
                                       run_date=daily_run_date(hour), loaded_at=hour, tables=wanted,
                                       cutoff=hour, batch_tag=tag)
            finally:
                if src is not eng:
                    src.dispose()
    finally:
        eng.dispose()
    for r in results:
        log.info(r.line())
    return {"run_ts": hour.isoformat(), "batch_tag": tag, "batches": {r.table: r.batch_id for r in results},
            "rows": {r.table: r.rows_loaded for r in results}}


def build_audience(url: str, campaign_id: str, run_at: dt.datetime) -> dict[str, Any]:
    """Snapshot every step of the hourly series for the run's hour."""
    from martech.campaigns.audience import build_snapshot

    spec = _spec(campaign_id)
    hour = _hour(run_at)
    eng = _engine(url)
    try:
        outs = {step: build_snapshot(eng, spec, hour, step=step).as_dict() for step in spec.step_numbers}
    finally:
        eng.dispose()
    for step, out in outs.items():
        log.info("%s audience for %s step %d: %s", campaign_id, batch_tag(hour), step, out)
    return {"run_date": hour.date().isoformat(), "run_ts": hour.isoformat(),
            "steps": {str(k): v for k, v in outs.items()}}


def peer_run_ids(run_id: str, days: int = PEER_DAYS) -> list[str]:
    """The same step at the same hour on the ``days`` days before: what an hourly arm's size is compared to."""
    parsed = parse_run_id(run_id)
    if parsed is None:
        raise ValueError(f"{run_id!r} is not an hourly run id such as '2026-11-02T13.step2'")
    at, step = parsed
    from martech.campaigns.audience import step_run_id

    return [step_run_id(at - dt.timedelta(days=d), step) for d in range(1, days + 1)]


def validate_audience(url: str, campaign_id: str, run_at: dt.datetime) -> dict[str, Any]:
    """The pre-send gate on each step's snapshot; raises DataQualityError and so blocks the send."""
    from martech.campaigns.audience import run_id_for
    from martech.quality.audience import check_snapshot

    spec = _spec(campaign_id)
    hour = _hour(run_at)
    eng = _engine(url)
    results = warnings = 0
    try:
        for step in spec.step_numbers:
            run_id = run_id_for(spec, hour, step)
            report = check_snapshot(eng, campaign_id, run_id, hour.date(), peers=peer_run_ids(run_id),
                                    min_upper=MIN_UPPER_BOUND)
            for line in report.summary_lines():
                log.info(line)
            results += len(report.results)
            warnings += len(report.warnings)
    finally:
        eng.dispose()
    return {"run_date": hour.date().isoformat(), "run_ts": hour.isoformat(), "expectations": results,
            "warnings": warnings}


_UNSENT_RUNS = """
select distinct l.run_id, l.step
from campaigns.send_ledger as l
where l.campaign_id = :campaign_id and l.status in ('pending', 'failed')
  and l.created_at >= :since and l.created_at < :hour
order by l.run_id, l.step
"""


def dispatch_campaign(url: str, campaign_id: str, run_at: dt.datetime, now: dt.datetime,
                      transport: Any = None, transport_settings: Mapping[str, Any] | None = None,
                      *, dry_run: bool = False) -> dict[str, Any]:
    """Send each step of the hour's snapshot exactly once, then the unsent rows of earlier hours.

    ``now`` is the run's timestamp (ledger ``created_at`` / ``sent_at``). With ``dry_run`` every message is
    rendered and recorded in ``campaigns.dry_runs``; nothing is sent and earlier hours are left alone.
    """
    import sqlalchemy as sa

    from martech.campaigns.dispatch import dispatch, write_previews
    from martech.campaigns.dispatch import dry_run as _dry_run
    from martech.campaigns.freshness import require_fresh
    from martech.campaigns.transport_factory import make_transport

    spec = _spec(campaign_id)
    hour = _hour(run_at)
    eng = _engine(url)
    try:
        if dry_run:
            outs = {step: _dry_run(eng, spec, hour, now=now, step=step) for step in spec.step_numbers}
            return {"run_date": hour.date().isoformat(), "run_ts": hour.isoformat(), "dry_run": True,
                    "steps": {str(k): v for k, v in outs.items()}}
        require_fresh(eng, spec, hour.date())
        settings = dict(transport_settings or {})
        transport = transport or make_transport(settings.pop("name", None), settings)
        steps: dict[str, Any] = {}
        for step in spec.step_numbers:
            previews = write_previews(eng, spec, hour, paths.outbox_dir() / "previews", now=now, step=step)
            log.info("%s previews: %s", campaign_id, ", ".join(str(p) for p in previews) or "none")
            steps[str(step)] = dispatch(eng, spec, hour, transport, now=now, step=step).as_dict()
        with eng.connect() as conn:
            unsent = conn.execute(sa.text(_UNSENT_RUNS), {
                "campaign_id": spec.id, "since": hour - dt.timedelta(hours=SWEEP_HOURS), "hour": hour}).all()
        earlier: dict[str, Any] = {}
        for run_id, step in unsent:
            parsed = parse_run_id(run_id)
            if parsed is None or parsed[0] >= hour:
                continue
            earlier[run_id] = dispatch(eng, spec, parsed[0], transport, now=now, step=step).as_dict()
        runs = [(hour, step) for step in spec.step_numbers]
        runs += [p for p in (parse_run_id(r) for r in earlier) if p is not None]
        _record_runs(eng, spec, runs, transport.name)
    finally:
        eng.dispose()
    for key, out in {**steps, **earlier}.items():
        log.info("%s dispatch %s: %s", campaign_id, key, out)
    return {"run_date": hour.date().isoformat(), "run_ts": hour.isoformat(), "steps": steps, "earlier": earlier}


_RECORD_RUN = """
insert into campaigns.campaign_runs (campaign_id, run_id, run_date, definition_hash, conversion_window_days,
    members, treatment, holdout, sent, transport)
select :c, :r, :d, :h, :w,
    (select count(*) from audiences.audience_members where campaign_id = :c and run_id = :r),
    (select count(*) from audiences.audience_members where campaign_id = :c and run_id = :r and arm = 'treatment'),
    (select count(*) from audiences.audience_members where campaign_id = :c and run_id = :r and arm = 'holdout'),
    (select count(*) from campaigns.send_ledger where campaign_id = :c and run_id = :r and status = 'sent'),
    :tr
on conflict (campaign_id, run_id) do update set definition_hash = excluded.definition_hash,
    conversion_window_days = excluded.conversion_window_days, members = excluded.members,
    treatment = excluded.treatment, holdout = excluded.holdout, sent = excluded.sent,
    transport = excluded.transport
"""


def _record_runs(eng: Any, spec: Any, runs: Sequence[tuple[dt.datetime, int]], transport_name: str) -> None:
    """One ``campaigns.campaign_runs`` row per (hour, step) run, as ``martech.pipeline`` writes daily ones."""
    import sqlalchemy as sa

    from martech.campaigns.audience import run_id_for

    with eng.begin() as conn:
        for at, step in runs:
            conn.execute(sa.text(_RECORD_RUN), {
                "c": spec.id, "r": run_id_for(spec, at, step), "d": at.date(), "h": spec.definition_hash,
                "w": spec.conversion_window_days, "tr": transport_name})
