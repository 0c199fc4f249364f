"""One campaign run, daily or hourly: what the tasks of a ``campaign_<id>`` DAG call.

A run is a :class:`martech.runs.Run`: a date for a daily campaign, an hour for an hourly series (see
:mod:`martech.campaigns.hourly` for the hourly pull of the shop that precedes it). For each step of the
campaign, in order:

1. :func:`build_audience` snapshots the audience (holdout and variant by a stable hash);
2. :func:`validate_audience` runs the pre-send gate (an hourly arm's size is compared with the same
   step at the same hour on earlier days);
3. the dispatch, in three parts that the DAG runs as three tasks and :func:`dispatch` runs in one
   process: :func:`prepare_dispatch` (once: the freshness gate, the previews, the seed list
   :mod:`martech.campaigns.seeds`, the customer hash partitions with work), :func:`dispatch_partition`
   (per partition: sends its contacts through the ledger, for an hourly series also earlier hours'
   unsent rows) and :func:`finish_dispatch` (once: records every run it touched in
   ``campaigns.campaign_runs`` from the ledger, through :mod:`martech.campaigns.run_ledger`).

Every function takes the warehouse (:class:`martech.warehouse.Warehouse`) and the run explicitly; none
reads the clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from martech import paths
from martech.runs import Run

if TYPE_CHECKING:
    from martech.warehouse import Warehouse

__all__ = ["build_audience", "dispatch", "dispatch_dry_run", "dispatch_partition", "finish_dispatch", "partition_count",
           "prepare_dispatch", "validate_audience"]

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


def _transport(wh: Warehouse, transport: Any) -> Any:
    from martech.campaigns.transport_factory import make_transport

    if transport is not None:
        return transport
    settings = dict(wh.transport_settings)
    return make_transport(settings.pop("name", None), settings)


def partition_count(campaigns_dir: Any = None) -> int:
    """How many customer hash partitions a run's sends are split into (``dispatch.partitions`` of
    ``_settings.yml``)."""
    from martech.campaigns.spec import load_settings

    return load_settings(campaigns_dir or paths.campaigns_dir()).dispatch.partitions


def dispatch_dry_run(wh: Warehouse, campaign_id: str, run: Run, now: dt.datetime) -> dict[str, Any]:
    """Render every treatment member and record in ``campaigns.dry_runs`` what a real send would do (with
    the change against the previous run's audience), sending nothing and leaving earlier hours alone."""
    from martech.campaigns.dispatch import dry_run as _dry_run

    spec, eng, run = _open(wh, campaign_id, run)
    outs = {step: _dry_run(eng, spec, run.value, now=now, step=step) for step in spec.step_numbers}
    log.info("%s DRY RUN for %s: %s", campaign_id, run, outs)
    return _summary(run, outs, dry_run=True)


def prepare_dispatch(wh: Warehouse, campaign_id: str, run: Run, now: dt.datetime,
                     transport: Any = None) -> list[dict[str, Any]]:
    """What a run does once before its partitions send: the freshness gate, the previews and the seed list.

    Returns one assignment per customer hash partition with work to do, what :func:`dispatch_partition`
    takes: the partition and the count, for an hourly series the earlier hours with unsent rows that every
    partition retries (``earlier``), and the seed sends' summary by step (``seeds``).
    """
    from martech.campaigns.dispatch import write_previews
    from martech.campaigns.freshness import require_fresh
    from martech.campaigns.seeds import seed_addresses, send_seeds
    from martech.campaigns.spec import load_settings

    spec, eng, run = _open(wh, campaign_id, run)
    require_fresh(eng, spec, run.date)
    settings = load_settings(spec.campaigns_dir)
    seeds = seed_addresses(settings)
    transport = _transport(wh, transport)
    seeded: dict[str, Any] = {}
    for step in spec.step_numbers:
        previews = write_previews(eng, spec, run.value, paths.outbox_dir() / "previews", now=now, step=step)
        log.info("%s previews: %s", campaign_id,
                 ", ".join(str(p) for p in previews) or "none (empty treatment arm)")
        # The seed list gets every variant first: a first run that requires it stops here if it failed.
        seeded[str(step)] = send_seeds(eng, spec, run.value, transport, now=now, step=step,
                                       addresses=seeds).as_dict()
    count, earlier = settings.dispatch.partitions, _earlier(eng, spec, run)
    busy = _busy_partitions(eng, spec, [run.run_id(step) for step in spec.step_numbers] + [r for r, _ in earlier],
                            count)
    log.info("%s %s: %d of %d partitions have contacts to send or settle", campaign_id, run, len(busy), count)
    return [{"partition": i, "count": count, "earlier": earlier, "seeds": seeded} for i in busy]


def _busy_partitions(eng: Any, spec: Any, run_ids: Sequence[str], count: int) -> list[int]:
    """The partitions with a treatment member or an unsent ledger row in ``run_ids``: a partition without
    either would do nothing, so it gets no task instance (a small run maps to few, an empty one to none)."""
    import sqlalchemy as sa

    from martech.campaigns.partitions import partition_sql

    with eng.connect() as conn:
        return sorted(int(p) for (p,) in conn.execute(sa.text(_BUSY.format(part=partition_sql("c"))), {
            "campaign_id": spec.id, "run_ids": list(run_ids), "partitions": count}))


_BUSY = """
select distinct {part}
from (
    select m.contact_id as c from audiences.audience_members as m
    where m.campaign_id = :campaign_id and m.run_id = any(cast(:run_ids as text[])) and m.arm = 'treatment'
    union
    select l.contact_id from campaigns.send_ledger as l
    where l.campaign_id = :campaign_id and l.run_id = any(cast(:run_ids as text[]))
      and l.status in ('pending', 'failed')
) as contacts
"""


def _earlier(eng: Any, spec: Any, run: Run) -> list[list[Any]]:
    """An hourly run's earlier hours (run id, step) with rows still unsent: each partition retries its own."""
    import sqlalchemy as sa

    if not run.hourly:
        return []
    with eng.connect() as conn:
        unsent = conn.execute(sa.text(_UNSENT_RUNS), {
            "campaign_id": spec.id, "since": run.cutoff - dt.timedelta(hours=SWEEP_HOURS),
            "hour": run.cutoff}).all()
    out: list[list[Any]] = []
    for run_id, step in unsent:
        before, _ = Run.parse(run_id)
        if before.hourly and before < run:
            out.append([run_id, int(step)])
    return out


def dispatch_partition(wh: Warehouse, campaign_id: str, run: Run, now: dt.datetime, assignment: Mapping[str, Any],
                       transport: Any = None) -> dict[str, Any]:
    """Send one customer hash partition of the run (an ``assignment`` of :func:`prepare_dispatch`), every
    step and the earlier hours it lists.

    Independent of the other partitions (its own rows, its own lock), so a retry or a rerun of it sends
    nothing twice; ``campaigns.campaign_runs`` is left to :func:`finish_dispatch`. Raises when the
    partition ends incomplete, after every step had its turn, so the task's retry settles it.
    """
    from martech.campaigns.dispatch import dispatch as send
    from martech.campaigns.partitions import Partition

    started = time.process_time()
    spec, eng, run = _open(wh, campaign_id, run)
    part = Partition(int(assignment["partition"]), int(assignment["count"]))
    transport = _transport(wh, transport)
    steps: dict[str, Any] = {}
    done: dict[str, Any] = {}
    incomplete: list[Any] = []
    for step in spec.step_numbers:
        sent = send(eng, spec, run.value, transport, now=now, step=step, strict=False, partition=part,
                    record=False)
        incomplete += [sent] if sent.incomplete else []
        steps[str(step)] = sent.as_dict()
    for run_id, step in assignment.get("earlier") or ():
        before, _ = Run.parse(run_id)
        again = send(eng, spec, before.value, transport, now=now, step=int(step), strict=False, partition=part,
                     record=False)
        incomplete += [again] if again.incomplete else []
        done[run_id] = again.as_dict()
    # this process's CPU time (not the database's): what a partition costs a worker
    result = {"partition": part.index, "steps": steps, "earlier": done,
              "cpu_s": round(time.process_time() - started, 3)}
    if incomplete:
        raise PartitionIncompleteError(f"{campaign_id} {part} dispatch incomplete (the next run settles them):"
                                       f" {'; '.join(s.describe() for s in incomplete)}", result)
    log.info("%s %s of %s: %s", campaign_id, part, run, steps)
    return result


class PartitionIncompleteError(RuntimeError):
    """A partition ended with rows in doubt, waiting for a retry, or newly given up (recorded, not lost)."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


_ADDED_UP = ("ledger_rows_created", "sent_now", "already_sent", "failed",
             "skipped", "deferred", "newly_abandoned")


def _added_up(parts: Sequence[Mapping[str, Any]], recorded: Any) -> dict[str, Any]:
    """One step's summary: the ledger's state of the whole run, this dispatch's counts summed over the
    partitions that reported them (members and arms come from the snapshot in any case)."""
    out = recorded.as_dict()
    for key in _ADDED_UP:
        out[key] = sum(int(p.get(key) or 0) for p in parts)
    return out


def finish_dispatch(wh: Warehouse, campaign_id: str, run: Run, now: dt.datetime,
                    assignments: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any] | None] = (),
                    transport: Any = None) -> dict[str, Any]:
    """Once every partition had its turn: count the run (and the earlier hours it retried) from the
    ledger into ``campaigns.campaign_runs`` and return the run's summary.

    ``results``: what the partitions returned (their counts of this dispatch; a failed partition returned
    nothing, and the ledger still counts its rows). Raises when the ledger says the run is incomplete.
    """
    from martech.campaigns.dispatch import DispatchIncompleteError, record_run

    prepared = assignments[0] if assignments else {}
    spec, eng, run = _open(wh, campaign_id, run)
    transport = _transport(wh, transport)
    done = [r for r in results if r]
    # (run id, step) -> what the partitions said of it
    parts: dict[str, list[Mapping[str, Any]]] = {}
    for r in done:
        for step, out in r["steps"].items():
            parts.setdefault(run.run_id(int(step)), []).append(out)
        for run_id, out in r["earlier"].items():
            parts.setdefault(run_id, []).append(out)
    touched = [(run, step) for step in spec.step_numbers]
    touched += [(Run.parse(run_id)[0], int(step)) for run_id, step in prepared.get("earlier", [])]
    recorded = {}
    for before, step in touched:
        run_id = before.run_id(step)
        newly = sum(int(p.get("newly_abandoned") or 0) for p in parts.get(run_id, []))
        recorded[run_id] = record_run(eng, spec, before.value, transport, now=now, step=step, newly_abandoned=newly)
    _record_runs(eng, spec, touched, transport.name)
    incomplete = [s for s in recorded.values() if s.incomplete]
    if incomplete:
        raise DispatchIncompleteError(incomplete[0]) if len(incomplete) == 1 else RuntimeError(
            f"{campaign_id} dispatch incomplete (recorded in campaigns.campaign_runs; the next run settles"
            f" them): {'; '.join(s.describe() for s in incomplete)}")
    summaries = {run_id: _added_up(parts.get(run_id, []), s) for run_id, s in recorded.items()}
    for run_id, out in summaries.items():
        log.info("%s dispatch %s: %s", campaign_id, run_id, out)
    seeds = prepared.get("seeds") or {}
    outs = {step: {**summaries.pop(run.run_id(step)), "seeds": seeds.get(str(step))} for step in spec.step_numbers}
    return _summary(run, outs, **({"earlier": summaries} if run.hourly else {}))


def dispatch(wh: Warehouse, campaign_id: str, run: Run, now: dt.datetime, transport: Any = None, *,
             dry_run: bool = False) -> dict[str, Any]:
    """Send the run's treatment arm exactly once per step and record the runs, in this process: what the
    DAG's ``prepare_dispatch``, mapped ``dispatch_partition`` and ``dispatch`` tasks do one after another.

    ``now`` is the run's timestamp (ledger ``created_at`` / ``sent_at``); ``transport`` defaults to the one
    the warehouse's ``transport_settings`` name. A real send first passes the
    freshness gate (:func:`martech.campaigns.freshness.require_fresh`) and writes a preview per variant
    to ``<outbox>/previews/<campaign>/<run>/``. ``dry_run`` renders everything and records what would be
    sent in ``campaigns.dry_runs`` (with the change against the previous run's audience), sending nothing
    and leaving earlier hours alone. Every partition has its turn before an incomplete one raises.
    """
    if dry_run:
        return dispatch_dry_run(wh, campaign_id, run, now)
    transport = _transport(wh, transport)
    assignments = prepare_dispatch(wh, campaign_id, run, now, transport)
    results = []
    for assignment in assignments:
        try:
            results.append(dispatch_partition(wh, campaign_id, run, now, assignment, transport))
        except PartitionIncompleteError as exc:  # recorded, and raised, by finish_dispatch
            log.warning("%s", exc)
            results.append(exc.result)
    return finish_dispatch(wh, campaign_id, run, now, assignments, results, transport)
def _record_runs(eng: Any, spec: Any, runs: Sequence[tuple[Run, int]], transport_name: str) -> None:
    """One ``campaigns.campaign_runs`` row per (run, step), counted from the snapshot and the ledger."""
    from martech.campaigns.run_ledger import record_counts

    with eng.begin() as conn:
        for run, step in runs:
            record_counts(conn, spec, run.run_id(step), run.date, transport_name)
