"""One campaign run, daily or hourly: what the tasks of a ``campaign_<id>`` DAG call.

A run is a :class:`martech.runs.Run`: a date for a daily campaign, an hour for an hourly series (see
:mod:`martech.campaigns.hourly` for the hourly pull of the shop that precedes it). For each step of the
campaign, in order:

1. :func:`build_audience` snapshots the audience (holdout and variant by a stable hash);
2. :func:`validate_audience` runs the pre-send gate (an hourly arm's size is compared with the same
   step at the same hour on earlier days);
3. :func:`dispatch` passes the freshness gate, writes the previews, sends the seed list
   (:mod:`martech.campaigns.seeds`), sends through the ledger, for an
   hourly series also re-dispatches earlier hours' unsent rows, and records every run it touched in
   ``campaigns.campaign_runs`` (through :mod:`martech.campaigns.run_ledger`, the table's one writer).

Every function takes the warehouse (:class:`martech.warehouse.Warehouse`) and the run explicitly; none
reads the clock.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from martech import paths
from martech.runs import Run

if TYPE_CHECKING:
    from martech.warehouse import Warehouse

__all__ = ["build_audience", "dispatch", "validate_audience"]

log = logging.getLogger("martech.campaigns")

# Earlier hours whose unsent rows each hourly run retries: a quiet-hours deferral lasts at most one night.
SWEEP_HOURS = 36
# Peers of an hourly run for the gate's size check: the same step and hour on this many earlier days.
PEER_DAYS = 7
# Below this many members an hourly arm is never "far too large": a handful of carts is noise, not a bug.
MIN_UPPER_BOUND = 25
# What a snapshot writes; analyzed after it, as the tables grow by a whole audience per run.
AUDIENCE_TABLES = ("audiences.audience_members", "audiences.exclusions", "audiences.snapshots", "campaigns.coupons")


def _open(wh: Warehouse, campaign_id: str, run: Run | Any) -> tuple[Any, Any, Run]:
    from martech.campaigns.run_ids import run_of
    from martech.campaigns.spec import load_campaign

    spec = load_campaign(paths.campaigns_dir() / f"{campaign_id}.yml")
    return spec, wh.engine, run_of(spec, run)


def _head(run: Run) -> dict[str, Any]:
    return {"run_date": run.date.isoformat(), **({"run_ts": run.cutoff.isoformat()} if run.hourly else {})}


def _summary(run: Run, outs: Mapping[int, Any], **extra: Any) -> dict[str, Any]:
    """The task's XCom: the run, then one step's summary as is, or a series' summaries by step."""
    head = _head(run)
    if list(outs) == [1] and not run.hourly:
        return {**head, **extra, **dict(outs[1])}
    return {**head, **extra, "steps": {str(k): dict(v) for k, v in outs.items()}}


def build_audience(wh: Warehouse, campaign_id: str, run: Run) -> dict[str, Any]:
    """Snapshot every step of the campaign's audience for the run."""
    from martech.campaigns.audience import build_snapshot
    from martech.db import analyze

    spec, eng, run = _open(wh, campaign_id, run)
    outs = {step: build_snapshot(eng, spec, run.value, step=step).as_dict() for step in spec.step_numbers}
    analyze(eng, AUDIENCE_TABLES)  # the gate, the dispatch and the KPIs read them next
    for step, out in outs.items():
        log.info("%s audience for %s step %d: %s", campaign_id, run, step, out)
    return _summary(run, outs)


def peer_run_ids(run_id: str, days: int = PEER_DAYS) -> list[str]:
    """The same step at the same hour on the ``days`` days before: what an hourly arm's size is compared to."""
    run, step = Run.parse(run_id)
    if not run.hourly:
        raise ValueError(f"{run_id!r} is not an hourly run id such as '2026-11-02T13.step2'")
    return [run.days_before(d).run_id(step) for d in range(1, days + 1)]


def validate_audience(wh: Warehouse, campaign_id: str, run: Run) -> dict[str, Any]:
    """The pre-send gate on each step's snapshot; raises DataQualityError and so blocks the send."""
    from martech.quality.audience import check_snapshot

    spec, eng, run = _open(wh, campaign_id, run)
    results = warnings = 0
    for step in spec.step_numbers:
        run_id = run.run_id(step)
        # an hourly arm is compared with the same step and hour on earlier days, a daily one with its last runs
        report = check_snapshot(eng, campaign_id, run_id, run.date,
                                peers=peer_run_ids(run_id) if run.hourly else None,
                                min_upper=MIN_UPPER_BOUND if run.hourly else 1)
        for line in report.summary_lines():
            log.info(line)
        results += len(report.results)
        warnings += len(report.warnings)
    return {**_head(run), "expectations": results, "warnings": warnings}


_UNSENT_RUNS = """
select distinct l.run_id, l.step
from campaigns.send_ledger as l
where l.campaign_id = :campaign_id and l.status in ('pending', 'failed')
  and l.created_at >= :since and l.created_at < :hour
order by l.run_id, l.step
"""


def dispatch(wh: Warehouse, campaign_id: str, run: Run, now: dt.datetime, transport: Any = None, *,
             dry_run: bool = False) -> dict[str, Any]:
    """Send the run's treatment arm exactly once per step and record the runs.

    ``now`` is the run's timestamp (ledger ``created_at`` / ``sent_at``); ``transport`` defaults to the one
    the warehouse's ``transport_settings`` name. A real send first passes the
    freshness gate (:func:`martech.campaigns.freshness.require_fresh`) and writes a preview per variant
    to ``<outbox>/previews/<campaign>/<run>/``. ``dry_run`` renders everything and records what would be
    sent in ``campaigns.dry_runs`` (with the change against the previous run's audience), sending nothing
    and leaving earlier hours alone.
    """
    import sqlalchemy as sa

    from martech.campaigns.dispatch import DispatchIncompleteError, write_previews
    from martech.campaigns.dispatch import dispatch as send
    from martech.campaigns.dispatch import dry_run as _dry_run
    from martech.campaigns.freshness import require_fresh
    from martech.campaigns.seeds import seed_addresses, send_seeds
    from martech.campaigns.spec import load_settings
    from martech.campaigns.transport_factory import make_transport

    spec, eng, run = _open(wh, campaign_id, run)
    outs: dict[int, Any]
    if dry_run:
        outs = {step: _dry_run(eng, spec, run.value, now=now, step=step) for step in spec.step_numbers}
        log.info("%s DRY RUN for %s: %s", campaign_id, run, outs)
        return _summary(run, outs, dry_run=True)
    require_fresh(eng, spec, run.date)
    seeds = seed_addresses(load_settings(spec.campaigns_dir))
    settings = dict(wh.transport_settings)
    transport = transport or make_transport(settings.pop("name", None), settings)
    outs = {}
    incomplete: list[Any] = []
    for step in spec.step_numbers:
        previews = write_previews(eng, spec, run.value, paths.outbox_dir() / "previews", now=now, step=step)
        log.info("%s previews: %s", campaign_id,
                 ", ".join(str(p) for p in previews) or "none (empty treatment arm)")
        # The seed list gets every variant first: a first run that requires it stops here if it failed.
        seeded = send_seeds(eng, spec, run.value, transport, now=now, step=step, addresses=seeds)
        sent = send(eng, spec, run.value, transport, now=now, step=step, strict=False)
        incomplete += [sent] if sent.incomplete else []
        outs[step] = {**sent.as_dict(), "seeds": seeded.as_dict()}
    touched = [(run, step) for step in spec.step_numbers]
    earlier: dict[str, Any] = {}
    if run.hourly:
        with eng.connect() as conn:
            unsent = conn.execute(sa.text(_UNSENT_RUNS), {
                "campaign_id": spec.id, "since": run.cutoff - dt.timedelta(hours=SWEEP_HOURS),
                "hour": run.cutoff}).all()
        for run_id, step in unsent:
            before, _ = Run.parse(run_id)
            if before.hourly and before < run:
                again = send(eng, spec, before.value, transport, now=now, step=step, strict=False)
                incomplete += [again] if again.incomplete else []
                earlier[run_id] = again.as_dict()
                touched.append((before, step))
    _record_runs(eng, spec, touched, transport.name)
    # Every step (and earlier hour) had its turn; the task fails if any of them ended incomplete.
    if incomplete:
        raise DispatchIncompleteError(incomplete[0]) if len(incomplete) == 1 else RuntimeError(
            f"{campaign_id} dispatch incomplete (recorded in campaigns.campaign_runs; the next run settles"
            f" them): {'; '.join(s.describe() for s in incomplete)}")
    for key, out in {**{run.run_id(k): v for k, v in outs.items()}, **earlier}.items():
        log.info("%s dispatch %s: %s", campaign_id, key, out)
    return _summary(run, outs, **({"earlier": earlier} if run.hourly else {}))


def _record_runs(eng: Any, spec: Any, runs: Sequence[tuple[Run, int]], transport_name: str) -> None:
    """One ``campaigns.campaign_runs`` row per (run, step), counted from the snapshot and the ledger."""
    from martech.campaigns.run_ledger import record_counts

    with eng.begin() as conn:
        for run, step in runs:
            record_counts(conn, spec, run.run_id(step), run.date, transport_name)
