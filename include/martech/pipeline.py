"""One function per pipeline step: what each Airflow task calls, and what tests and the demo call.

Every step takes the warehouse (:class:`martech.warehouse.Warehouse`, opened once by the caller) and
the run date explicitly (never the wall clock), logs
readable progress, and returns a small JSON-serialisable summary that becomes the task's XCom and
its asset event's metadata. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from martech import paths
from martech.campaigns.transport_factory import make_transport

if TYPE_CHECKING:
    from martech.warehouse import Warehouse

log = logging.getLogger("martech")

STAGING_MODELS = ("staging.customers", "staging.products", "staging.orders", "staging.order_items",
                  "staging.contacts", "staging.cart_items", "staging.carts", "staging.web_sessions",
                  "staging.product_views",
                  # rebuilt again by the email-events stage; here so that campaigns can always read it
                  "staging.email_events")
# Written while the staging models rebuild (quarantined rows, repairs, folded duplicates, the recount).
STAGING_SIDE_TABLES = ("raw.quarantine", "staging.corrections", "staging.merged_rows", "staging.row_accounting")
# What the landing loads append to besides the source tables themselves.
LANDING_SIDE_TABLES = ("raw.ingest_batches", "raw.ingest_state", "raw.quarantine")


def _run_ts(run_date: dt.date) -> dt.datetime:
    from martech.ingest.landing import cutoff_for

    return cutoff_for(run_date)


def _analyze_landed(eng: Any, results: Sequence[Any]) -> None:
    """Fresh statistics for the raw tables a landing load appended to (staging reads them next)."""
    from martech.db import analyze

    analyze(eng, [r.table for r in results if not r.skipped] + list(LANDING_SIDE_TABLES))


def _say(lines: list[str]) -> None:
    for line in lines:
        log.info(line)


def prepare_warehouse(wh: Warehouse) -> list[str]:
    """Create schemas and landing tables, and the analyst's read-only access (idempotent)."""
    from martech.db import migrate
    from martech.privacy.access import grant_analyst_access

    eng = wh.engine
    applied = migrate(eng)
    grant_analyst_access(eng)
    return applied


def ingest_shop(wh: Warehouse, run_date: dt.date) -> dict[str, Any]:
    """Pull the shop database's tables incrementally into raw.shop_* (sources of kind sql in sources.yml)."""
    from martech.ingest.shop_pull import pull_shop
    from martech.runs import Run

    prepare_warehouse(wh)
    eng = wh.engine
    t0, c0 = time.perf_counter(), time.process_time()
    results = pull_shop(eng, Run.daily(run_date), shop_url=wh.shop_url, shop_schema=wh.shop_schema)
    landing = {"rows": sum(r.rows_loaded for r in results), "wall_s": time.perf_counter() - t0,
               "cpu_s": time.process_time() - c0}
    _analyze_landed(eng, results)
    _say([r.line() for r in results])
    # landing: the pull alone (out of the shop, into raw, committed), not the analyze or start-up around it
    return {"run_date": run_date.isoformat(), "batches": {r.table: r.batch_id for r in results},
            "rows": {r.table: r.rows_loaded for r in results}, "landing": landing}


def ingest_crm(wh: Warehouse, run_date: dt.date, *, folder: Path | None = None) -> dict[str, Any]:
    """Load new CRM contact export files into raw.crm_contacts."""
    from martech.ingest.landing import export_files, ingest_crm_exports, unrecognised_files
    from martech.ingest.sources import of_kind

    prepare_warehouse(wh)
    configured = [s.path for _, s in of_kind("crm_files") if s.path]
    folder = folder or (Path(configured[0]) if configured else paths.landing_dir() / "crm")
    folder.mkdir(parents=True, exist_ok=True)
    eng = wh.engine
    results = ingest_crm_exports(eng, folder, run_date=run_date, loaded_at=_run_ts(run_date))
    _analyze_landed(eng, results)
    not_loaded = unrecognised_files(folder, export_files(folder, "contacts", ".csv"))
    _say([r.line() for r in results] or [f"no CRM export files in {folder}"])
    for sentence in not_loaded:
        log.warning("not loaded: %s", sentence)
    return {"run_date": run_date.isoformat(), "files": [r.source_file for r in results], "not_loaded": not_loaded,
            "rows": sum(r.rows_loaded for r in results),
            "quarantined": sum(r.rows_quarantined for r in results)}


def ingest_files(wh: Warehouse, run_date: dt.date, *, root: Any = None) -> dict[str, Any]:
    """Load shop export files (CSV / JSON Lines / Parquet) from MARTECH_FILES_URL or the landing folder.

    ``root``: a folder, an fsspec URL or a path object with its own file system (the DAG task passes an
    Airflow ObjectStoragePath when the source names a connection). Layout and column contract:
    ``martech.ingest.files`` and the README's "Bring your own data".
    """
    from martech.ingest.files import ingest_folder
    from martech.ingest.sources import of_kind

    prepare_warehouse(wh)
    configured = of_kind("files")
    if not configured and root is None:
        _say(["no enabled source of kind files in sources.yml"])
        return {"run_date": run_date.isoformat(), "files": 0, "rows": 0, "quarantined": 0}
    root = root or next((s.path for _, s in configured if s.path), None) or str(paths.landing_dir() / "files")
    if isinstance(root, str) and "://" not in root:
        Path(root).mkdir(parents=True, exist_ok=True)
    eng = wh.engine
    report: list[str] = []
    results = ingest_folder(eng, root, run_date=run_date, loaded_at=_run_ts(run_date), report=report)
    _analyze_landed(eng, results)
    _say([r.line() for r in results] or [f"no export files under {root}"])
    return {"run_date": run_date.isoformat(), "files": len(results), "not_loaded": report,
            "rows": sum(r.rows_loaded for r in results),
            "quarantined": sum(r.rows_quarantined for r in results)}


def validate_raw(wh: Warehouse, run_date: dt.date) -> dict[str, Any]:
    """Great Expectations on the raw rows landed for this run date; raise on a critical failure.

    Results are keyed by the run date (not Airflow's run id), so a rerun of the date replaces them.
    """
    import sqlalchemy as sa

    from martech.quality import raw as quality
    from martech.quality.results import check, record_results
    eng = wh.engine
    with eng.connect() as conn:
        rows = conn.execute(sa.text(
            "select table_name, batch_id from raw.ingest_batches where run_date = :d"
            " and table_name <> 'raw.email_events' order by batch_id"), {"d": run_date}).all()
    batch_ids: dict[str, list[str]] = {}
    for table, batch in rows:
        batch_ids.setdefault(table, []).append(batch)
    report = quality.validate_raw(eng, batch_ids, run_id=f"raw:{run_date.isoformat()}", run_date=run_date)
    record_results(eng, report, run_date)
    _say(report.summary_lines())
    check(report)
    return {"run_date": run_date.isoformat(), "expectations": len(report.results),
            "warnings": len(report.warnings)}


def build_staging(wh: Warehouse, run_date: dt.date, full_refresh: bool = False) -> dict[str, Any]:
    """Build the typed, deduplicated staging tables from raw, then prove no row went missing.

    The tables of ``martech.staging.incremental.INCREMENTAL`` read only the raw batches landed since their
    last run (a full rebuild the first time, or with ``full_refresh``); the others are rebuilt from all raw rows.
    Rows staging cannot use land in raw.quarantine, repairs in staging.corrections, folded duplicates
    in staging.merged_rows; ``martech.staging.accounting.check`` recounts received = staged + quarantined + merged
    (+ copies and superseded versions) per table and fails the run when it does not add up.
    """
    from martech.db import analyze, migrate, run_model
    from martech.privacy.erase import hold_back_erased
    from martech.staging import accounting, contacts, incremental

    eng = wh.engine
    params = {"run_date": run_date, "run_ts": _run_ts(run_date)}
    migrate(eng)
    held_back = hold_back_erased(eng, run_date=run_date, home=paths.home())
    accounting.guard_rebuild(eng, run_date, _run_ts(run_date))
    since = incremental.plan(eng, _run_ts(run_date), full_refresh)
    counts, seconds = {}, {}
    for model in STAGING_MODELS:
        t0 = time.perf_counter()
        counts[model] = run_model(eng, model, params)
        seconds[model] = round(time.perf_counter() - t0, 3)
    accounts = accounting.check(eng, run_date, _run_ts(run_date))
    notes = contacts.notes(eng, _run_ts(run_date))
    analyze(eng, STAGING_SIDE_TABLES)  # each model analyzed itself (run_model); these grew beside them
    refresh = {m: f"incremental since {w.isoformat()}" if w else "full" for m, w in since.items()}
    _say([f"{m}: {n} rows" for m, n in counts.items()] + [a.line() for a in accounts] + notes
         + [f"{m}: {how}" for m, how in refresh.items()]
         + [f"{t}: {n} of erased people held back (do-not-contact list)" for t, n in held_back.items()])
    return {"run_date": run_date.isoformat(), "rows": counts, "notes": notes, "held_back": held_back,
            "refresh": refresh, "quarantined": {a.table: a.quarantined for a in accounts if a.quarantined},
            "merged": {a.table: a.duplicate + a.merged for a in accounts if a.duplicate + a.merged},
            "seconds": seconds}


def validate_staging(wh: Warehouse, run_date: dt.date) -> dict[str, Any]:
    """Great Expectations on the staging tables (keys, values, references, freshness, row-count drift).

    Raises DataQualityError on a critical failure, so customer models and sends never read bad staging.
    """
    from martech.quality.staging import validate_staging as _validate

    eng = wh.engine
    report = _validate(eng, run_date)
    _say(report.summary_lines())
    return {"run_date": run_date.isoformat(), "expectations": len(report.results),
            "warnings": len(report.warnings), "rows": report.rows}


def build_customer_models(wh: Warehouse, run_date: dt.date) -> dict[str, Any]:
    """RFM scores and segments (pandas), category affinity and the customer 360 (SQL)."""
    from martech.db import analyze, run_model
    from martech.models import rfm
    from martech.models.customers import read_orders
    from martech.models.lifecycle import build_lifecycle
    from martech.privacy.access import grant_analyst_access

    eng = wh.engine
    params = {"run_date": run_date}
    with eng.connect() as conn:
        orders = read_orders(conn, run_date)
    scores = rfm.score_rfm(orders, as_of=run_date)
    counts = {"marts.customer_rfm": rfm.write_rfm(eng, scores, run_date)}
    for model in ("marts.segment_migration", "marts.product_affinity", "marts.customer_360",
                  "marts.contact_send_hours"):
        counts[model] = run_model(eng, model, params)
    grant_analyst_access(eng)  # the customer 360's address and name columns, once it exists
    counts["marts.customer_lifecycle"] = build_lifecycle(eng, run_date)
    counts["marts.clv_predictions"] = _build_clv(eng, run_date, orders)
    counts["marts.lead_scores"] = _build_lead_scores(eng, run_date)
    counts.update(_build_recommendations(eng, run_date))
    counts["marts.customer_segments"] = _build_clusters(eng, run_date)
    counts["marts.replenishment_due"] = _build_replenishment(eng, run_date)
    counts["marts.crm_stage_transitions"] = _build_crm_transitions(eng, run_date)
    # Several marts are written from pandas, not by run_model: fresh statistics for all of them.
    analyze(eng, [m.split(" ", 1)[0] for m in counts] + ["kpis.model_metrics"])
    segments = scores["segment"].value_counts().to_dict() if len(scores) else {}
    _say([f"{m}: {n} rows" for m, n in counts.items()]
         + [f"  segment {k}: {v}" for k, v in sorted(segments.items(), key=lambda kv: -kv[1])])
    return {"run_date": run_date.isoformat(), "rows": counts,
            "segments": {str(k): int(v) for k, v in segments.items()}}


def _build_crm_transitions(eng, run_date: dt.date) -> int:
    from martech.campaigns.freshness import record_build
    from martech.db import run_model

    rows = run_model(eng, "marts.crm_stage_transitions", {"run_date": run_date, "run_ts": _run_ts(run_date)})
    with eng.begin() as conn:
        record_build(conn, "marts.crm_stage_transitions", run_date, rows)
    return rows


def _build_clv(eng, run_date: dt.date, orders: Any) -> int:
    from martech.models.clv import build_clv_predictions

    result = build_clv_predictions(eng, run_date, orders=orders)
    fit = "fitted now" if result.get("refitted") else f"fit of {result.get('fitted_as_of')}"
    _say([f"clv: {result['model_version']} ({fit})", f"  churn risk: {result.get('churn_risk', {})}"])
    return int(result["rows"])  # type: ignore[call-overload]


def _build_replenishment(eng, run_date: dt.date) -> int:
    from martech.models.replenishment import build_replenishment

    result = build_replenishment(eng, run_date)
    _say([f"replenishment: {result['model_version']}, {result.get('due', 0)} reminders due"])
    return int(result["rows"])  # type: ignore[call-overload]


def _build_lead_scores(eng, run_date: dt.date) -> int:
    from martech.models.leads import build_lead_scores

    result = build_lead_scores(eng, run_date, paths.models_dir())
    if result["model_version"] is None:
        _say([f"lead scores: no open leads as of {run_date}; nothing scored"])
        return 0
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in (result.get("metrics") or {}).items())
    _say([f"lead scores: {result['model_version']} ({result['method']}) {metrics}"])
    return int(result["rows"])


def _build_recommendations(eng, run_date: dt.date) -> dict[str, int]:
    from martech.models.recommend import build_recommendations

    result = build_recommendations(eng, run_date)
    return {"marts.product_affinity (product pairs)": result["pairs"],
            "marts.recommendations": result["recommendations"]}


def _build_clusters(eng, run_date: dt.date) -> int:
    from martech.models.clusters import build_segments

    result = build_segments(eng, run_date)
    sil = result["silhouette"]
    _say([f"clusters: k={result['k']} chosen by silhouette "
          + ", ".join(f"{k}:{v:.3f}" for k, v in sil.items())])
    return int(result["customers"])


def ingest_events(wh: Warehouse, run_date: dt.date, *, folder: Path | None = None) -> dict[str, Any]:
    """Load email-event feed files into raw.email_events and rebuild staging.email_events.

    With the SendGrid transport configured, SendGrid's own suppression lists are merged too.
    """
    from martech.campaigns.freshness import record_suppression_refresh
    from martech.db import run_model
    from martech.ingest.landing import ingest_email_events
    from martech.privacy.erase import hold_back_erased

    prepare_warehouse(wh)
    folder = folder or paths.landing_dir() / "email_events"
    folder.mkdir(parents=True, exist_ok=True)
    eng = wh.engine
    results = ingest_email_events(eng, folder, run_date=run_date, loaded_at=_run_ts(run_date))
    _analyze_landed(eng, results)
    hold_back_erased(eng, run_date=run_date, home=paths.home())  # late events of an erased person
    staged = run_model(eng, "staging.email_events", {"run_date": run_date, "run_ts": _run_ts(run_date)})
    suppressed = _suppress_from_events(eng)
    settings = dict(wh.transport_settings)
    if settings.pop("name", None) == "sendgrid":
        from martech.campaigns import sendgrid_suppressions

        sg = make_transport("sendgrid", settings)
        with eng.begin() as conn:
            from_sendgrid = sendgrid_suppressions.merge(conn, sg._client, asm_group_id=sg.asm_group_id)
        _say([f"campaigns.suppressions: {from_sendgrid} new from SendGrid's suppression lists"])
        suppressed += from_sendgrid
    with eng.begin() as conn:
        record_suppression_refresh(conn, run_date, suppressed, _run_ts(run_date))
    _say([r.line() for r in results] + [f"staging.email_events: {staged} rows",
                                        f"campaigns.suppressions: {suppressed} new from events"])
    return {"run_date": run_date.isoformat(), "files": len(results),
            "rows": sum(r.rows_loaded for r in results), "staged": staged, "suppressed": suppressed}


def _suppress_from_events(eng) -> int:
    """Unsubscribes, bounces and spam reports become suppressions (the first reason recorded wins)."""
    import sqlalchemy as sa

    with eng.begin() as conn:
        result = conn.execute(sa.text(
            "insert into campaigns.suppressions (email, contact_id, reason, source, created_at)"
            " select distinct on (lower(btrim(email))) lower(btrim(email)), contact_id,"
            " case event when 'unsubscribe' then 'unsubscribe' when 'spamreport' then 'spamreport'"
            " else 'bounce' end, 'email_events', event_ts"
            " from staging.email_events where event in ('unsubscribe', 'spamreport', 'bounce')"
            " and coalesce(btrim(email), '') <> ''"
            " order by lower(btrim(email)), event_ts, event_id"
            " on conflict (email) do nothing"))
        return int(result.rowcount or 0)


def build_kpis(wh: Warehouse, run_date: dt.date) -> dict[str, Any]:
    """Rebuild the kpis tables as of the run date (``martech.kpis.build``)."""
    from martech.kpis.build import build_kpis as _build

    eng = wh.engine
    counts = _build(eng, run_date)
    _say([f"{name}: {n} rows" for name, n in counts.items()])
    return {"run_date": run_date.isoformat(), "rows": counts}


def apply_retention(wh: Warehouse, run_date: dt.date) -> dict[str, Any]:
    """Remove raw events, quarantined rows, landed files, outbox and previews past their retention."""
    from martech.privacy.retention import apply_retention as _apply

    eng = wh.engine
    prepare_warehouse(wh)
    removed = _apply(eng, run_date, landing=paths.landing_dir(), outbox=paths.outbox_dir())
    _say([f"retention: {n} {kind} removed" for kind, n in removed.items()])
    return {"run_date": run_date.isoformat(), "removed": removed}


def erase_person(wh: Warehouse, run_date: dt.date, *, request_id: str, contact_id: str | None = None,
                 email: str | None = None) -> dict[str, Any]:
    """Erase one person everywhere the project writes (see martech.privacy.erase); returns counts only."""
    from martech.privacy.erase import erase_person as _erase

    prepare_warehouse(wh)
    eng = wh.engine
    counts = _erase(eng, request_id=request_id, run_date=run_date, home=paths.home(),
                    contact_id=contact_id or None, email=email or None)
    _say([f"erasure {request_id}: {n} in {where}" for where, n in counts.items()])
    return {"run_date": run_date.isoformat(), "request_id": request_id, "counts": counts}

