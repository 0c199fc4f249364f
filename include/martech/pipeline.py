"""One function per pipeline step: what each Airflow task calls, and what tests and the demo call.

Every step takes the warehouse URL and the run date explicitly (never the wall clock), logs
readable progress, and returns a small JSON-serialisable summary that becomes the task's XCom and
its asset event's metadata. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from martech import paths
from martech.campaigns.transport_factory import make_transport

log = logging.getLogger("martech")

STAGING_MODELS = ("staging.customers", "staging.products", "staging.orders", "staging.order_items",
                  "staging.contacts", "staging.cart_items", "staging.carts", "staging.web_sessions",
                  "staging.product_views",
                  # rebuilt again by the email-events stage; here so that campaigns can always read it
                  "staging.email_events")


def _engine(url: str):
    from martech.db import make_engine

    return make_engine(url)


def _run_ts(run_date: dt.date) -> dt.datetime:
    from martech.ingest.landing import cutoff_for

    return cutoff_for(run_date)


def _say(lines: list[str]) -> None:
    for line in lines:
        log.info(line)


def prepare_warehouse(url: str) -> list[str]:
    """Create schemas and landing tables, and the analyst's read-only access (idempotent)."""
    from martech.db import migrate
    from martech.privacy.access import grant_analyst_access

    eng = _engine(url)
    try:
        applied = migrate(eng)
        grant_analyst_access(eng)
        return applied
    finally:
        eng.dispose()


def ingest_shop(url: str, run_date: dt.date, *, shop_url: str | None = None,
                shop_schema: str | None = None) -> dict[str, Any]:
    """Pull the shop database's tables incrementally into raw.shop_* (sources of kind sql in sources.yml)."""
    import sqlalchemy as sa

    from martech.ingest import byod
    from martech.ingest.landing import ingest_shop as _ingest
    from martech.ingest.sources import SourcesError, of_kind

    prepare_warehouse(url)
    eng = _engine(url)
    results = []
    try:
        for name, source in of_kind("sql"):
            src_url = shop_url or source.url
            schema = shop_schema or source.schema_name
            if not src_url and byod.enabled():
                _say([f"source {name}: the simulator's shop database is off ({byod.VARIABLE}=1); not pulled"])
                continue
            if not src_url and not sa.inspect(eng).get_table_names(schema=schema):
                raise SourcesError(
                    f"source {name} (include/sources.yml): no shop database given (MARTECH_SHOP_URL or the Airflow"
                    f" connection shop_db) and the warehouse has no {schema} schema the simulator would have"
                    f" written; to load export files only, set {byod.VARIABLE}=1 (or run `martech --byod ...`),"
                    " else run `martech simulate` or set MARTECH_SHOP_URL")
            src = _engine(src_url) if src_url else eng
            try:
                results += _ingest(src, eng, source_schema=schema, run_date=run_date,
                                   loaded_at=_run_ts(run_date), tables=source.tables or None)
            finally:
                if src is not eng:
                    src.dispose()
    finally:
        eng.dispose()
    _say([r.line() for r in results])
    return {"run_date": run_date.isoformat(), "batches": {r.table: r.batch_id for r in results},
            "rows": {r.table: r.rows_loaded for r in results}}


def ingest_crm(url: str, run_date: dt.date, *, folder: Path | None = None) -> dict[str, Any]:
    """Load new CRM contact export files into raw.crm_contacts."""
    from martech.ingest.landing import export_files, ingest_crm_exports, unrecognised_files
    from martech.ingest.sources import of_kind

    prepare_warehouse(url)
    configured = [s.path for _, s in of_kind("crm_files") if s.path]
    folder = folder or (Path(configured[0]) if configured else paths.landing_dir() / "crm")
    folder.mkdir(parents=True, exist_ok=True)
    eng = _engine(url)
    try:
        results = ingest_crm_exports(eng, folder, run_date=run_date, loaded_at=_run_ts(run_date))
    finally:
        eng.dispose()
    not_loaded = unrecognised_files(folder, export_files(folder, "contacts", ".csv"))
    _say([r.line() for r in results] or [f"no CRM export files in {folder}"])
    for sentence in not_loaded:
        log.warning("not loaded: %s", sentence)
    return {"run_date": run_date.isoformat(), "files": [r.source_file for r in results], "not_loaded": not_loaded,
            "rows": sum(r.rows_loaded for r in results),
            "quarantined": sum(r.rows_quarantined for r in results)}


def ingest_files(url: str, run_date: dt.date, *, root: Any = None) -> dict[str, Any]:
    """Load shop export files (CSV / JSON Lines / Parquet) from MARTECH_FILES_URL or the landing folder.

    ``root``: a folder, an fsspec URL or a path object with its own file system (the DAG task passes an
    Airflow ObjectStoragePath when the source names a connection). Layout and column contract:
    ``martech.ingest.files`` and the README's "Bring your own data".
    """
    from martech.ingest.files import ingest_folder
    from martech.ingest.sources import of_kind

    prepare_warehouse(url)
    configured = of_kind("files")
    if not configured and root is None:
        _say(["no enabled source of kind files in sources.yml"])
        return {"run_date": run_date.isoformat(), "files": 0, "rows": 0, "quarantined": 0}
    root = root or next((s.path for _, s in configured if s.path), None) or str(paths.landing_dir() / "files")
    if isinstance(root, str) and "://" not in root:
        Path(root).mkdir(parents=True, exist_ok=True)
    eng = _engine(url)
    try:
        report: list[str] = []
        results = ingest_folder(eng, root, run_date=run_date, loaded_at=_run_ts(run_date), report=report)
    finally:
        eng.dispose()
    _say([r.line() for r in results] or [f"no export files under {root}"])
    return {"run_date": run_date.isoformat(), "files": len(results), "not_loaded": report,
            "rows": sum(r.rows_loaded for r in results),
            "quarantined": sum(r.rows_quarantined for r in results)}


def validate_raw(url: str, run_date: dt.date) -> dict[str, Any]:
    """Great Expectations on the raw rows landed for this run date; raise on a critical failure.

    Results are keyed by the run date (not Airflow's run id), so a rerun of the date replaces them.
    """
    import sqlalchemy as sa

    from martech.quality import raw as quality
    eng = _engine(url)
    try:
        with eng.connect() as conn:
            rows = conn.execute(sa.text(
                "select table_name, batch_id from raw.ingest_batches where run_date = :d"
                " and table_name <> 'raw.email_events' order by batch_id"), {"d": run_date}).all()
        batch_ids: dict[str, list[str]] = {}
        for table, batch in rows:
            batch_ids.setdefault(table, []).append(batch)
        report = quality.validate_raw(eng, batch_ids, run_id=f"raw:{run_date.isoformat()}", run_date=run_date)
        quality.record_results(eng, report, run_date)
    finally:
        eng.dispose()
    _say(report.summary_lines())
    quality.check(report)
    return {"run_date": run_date.isoformat(), "expectations": len(report.results),
            "warnings": len(report.warnings)}


def build_staging(url: str, run_date: dt.date) -> dict[str, Any]:
    """Rebuild the typed, deduplicated staging tables from raw, then prove no row went missing.

    Rows staging cannot use land in raw.quarantine, repairs in staging.corrections, folded duplicates
    in staging.merged_rows; ``martech.staging.accounting.check`` recounts received = staged + quarantined + merged
    (+ copies and superseded versions) per table and fails the run when it does not add up.
    """
    from martech.db import migrate, run_model
    from martech.staging import accounting

    eng = _engine(url)
    params = {"run_date": run_date, "run_ts": _run_ts(run_date)}
    try:
        migrate(eng)
        accounting.guard_rebuild(eng, run_date, _run_ts(run_date))
        counts = {m: run_model(eng, m, params) for m in STAGING_MODELS}
        accounts = accounting.check(eng, run_date, _run_ts(run_date))
        _analyze(eng, STAGING_MODELS)
    finally:
        eng.dispose()
    _say([f"{m}: {n} rows" for m, n in counts.items()] + [a.line() for a in accounts])
    return {"run_date": run_date.isoformat(), "rows": counts,
            "quarantined": {a.table: a.quarantined for a in accounts if a.quarantined},
            "merged": {a.table: a.duplicate + a.merged for a in accounts if a.duplicate + a.merged}}


def _analyze(eng: Any, tables: Sequence[str]) -> None:
    """Fresh planner statistics for rebuilt tables, so the next stage does not plan on the old ones."""
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.exec_driver_sql(f"analyze {table}")


def validate_staging(url: str, run_date: dt.date) -> dict[str, Any]:
    """Great Expectations on the staging tables (keys, values, references, freshness, row-count drift).

    Raises DataQualityError on a critical failure, so customer models and sends never read bad staging.
    """
    from martech.quality.staging import validate_staging as _validate

    eng = _engine(url)
    try:
        report = _validate(eng, run_date)
    finally:
        eng.dispose()
    _say(report.summary_lines())
    return {"run_date": run_date.isoformat(), "expectations": len(report.results),
            "warnings": len(report.warnings), "rows": report.rows}


def build_customer_models(url: str, run_date: dt.date) -> dict[str, Any]:
    """RFM scores and segments (pandas), category affinity and the customer 360 (SQL)."""
    import pandas as pd
    import sqlalchemy as sa

    from martech.db import run_model
    from martech.models import rfm
    from martech.models.lifecycle import build_lifecycle
    from martech.privacy.access import grant_analyst_access

    eng = _engine(url)
    params = {"run_date": run_date}
    try:
        with eng.connect() as conn:
            orders = pd.read_sql_query(
                sa.text("select customer_id, order_ts, net_amount from staging.orders"
                        " where status <> 'cancelled' and order_ts < :d"),
                conn, params={"d": run_date})
        orders["net_amount"] = orders["net_amount"].astype(float)
        scores = rfm.score_rfm(orders, as_of=run_date)
        counts = {"marts.customer_rfm": rfm.write_rfm(eng, scores, run_date)}
        for model in ("marts.segment_migration", "marts.product_affinity", "marts.customer_360"):
            counts[model] = run_model(eng, model, params)
        grant_analyst_access(eng)  # the customer 360's address and name columns, once it exists
        counts["marts.customer_lifecycle"] = build_lifecycle(eng, run_date)
        counts["marts.clv_predictions"] = _build_clv(eng, run_date)
        counts["marts.lead_scores"] = _build_lead_scores(eng, run_date)
        counts.update(_build_recommendations(eng, run_date))
        counts["marts.customer_segments"] = _build_clusters(eng, run_date)
    finally:
        eng.dispose()
    segments = scores["segment"].value_counts().to_dict() if len(scores) else {}
    _say([f"{m}: {n} rows" for m, n in counts.items()]
         + [f"  segment {k}: {v}" for k, v in sorted(segments.items(), key=lambda kv: -kv[1])])
    return {"run_date": run_date.isoformat(), "rows": counts,
            "segments": {str(k): int(v) for k, v in segments.items()}}


def _build_clv(eng, run_date: dt.date) -> int:
    from martech.models.clv import build_clv_predictions

    result = build_clv_predictions(eng, run_date)
    _say([f"clv: {result['model_version']}", f"  churn risk: {result.get('churn_risk', {})}"])
    return int(result["rows"])  # type: ignore[call-overload]


def _build_lead_scores(eng, run_date: dt.date) -> int:
    from martech.models.leads import build_lead_scores

    result = build_lead_scores(eng, run_date, paths.models_dir())
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


def _daily_spec(spec: Any) -> Any:
    """The spec of a campaign run by date; hourly series have run ids per hour and their own entry points."""
    if spec.hourly:
        raise ValueError(f"campaign {spec.id!r} is an hourly series: run it for an hour through"
                         " martech.campaigns.hourly (its DAG does), not for a date")
    return spec


def build_audience(url: str, campaign_id: str, run_date: dt.date) -> dict[str, Any]:
    """Snapshot the campaign's audience for the run, with holdout and variant assignment."""
    from martech.campaigns.audience import build_snapshot
    from martech.campaigns.spec import load_campaign

    spec = _daily_spec(load_campaign(paths.CAMPAIGNS_DIR / f"{campaign_id}.yml"))
    eng = _engine(url)
    try:
        outs = {step: _as_dict(build_snapshot(eng, spec, run_date, step=step)) for step in spec.step_numbers}
    finally:
        eng.dispose()
    for step, out in outs.items():
        _say([f"{campaign_id} audience for {run_date} step {step}: {out}"])
    return {"run_date": run_date.isoformat(), **_per_step(outs)}


def _per_step(outs: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """One step: its summary as is; a series: the summaries by step."""
    if list(outs) == [1]:
        return dict(outs[1])
    return {"steps": {str(k): dict(v) for k, v in outs.items()}}


def validate_audience(url: str, campaign_id: str, run_date: dt.date) -> dict[str, Any]:
    """The pre-send gate on the run's snapshot (GX); raises DataQualityError and so blocks the send."""
    from martech.campaigns.audience import step_run_id
    from martech.campaigns.spec import load_campaign
    from martech.quality.audience import check_snapshot

    spec = load_campaign(paths.CAMPAIGNS_DIR / f"{campaign_id}.yml")
    eng = _engine(url)
    results = warnings = 0
    try:
        for step in spec.step_numbers:
            report = check_snapshot(eng, campaign_id, step_run_id(run_date, step), run_date)
            _say(report.summary_lines())
            results += len(report.results)
            warnings += len(report.warnings)
    finally:
        eng.dispose()
    return {"run_date": run_date.isoformat(), "expectations": results, "warnings": warnings}


def dispatch_campaign(url: str, campaign_id: str, run_date: dt.date, now: dt.datetime,
                      transport: Any = None, transport_settings: Mapping[str, Any] | None = None,
                      *, dry_run: bool = False) -> dict[str, Any]:
    """Send the run's treatment arm exactly once and record the run.

    Before a real send, a preview per variant (real members' data) is written to
    ``<outbox>/previews/<campaign>/<run>/``. ``dry_run`` renders everything and records what would be
    sent in ``campaigns.dry_runs`` (with the change against the previous run's audience), sending nothing.
    """
    from martech.campaigns.dispatch import dry_run as _dry_run
    from martech.campaigns.spec import load_campaign

    spec = _daily_spec(load_campaign(paths.CAMPAIGNS_DIR / f"{campaign_id}.yml"))
    if dry_run:
        eng = _engine(url)
        try:
            results = {step: _dry_run(eng, spec, run_date, now=now, step=step) for step in spec.step_numbers}
        finally:
            eng.dispose()
        _say([f"{campaign_id} DRY RUN for {run_date}: {results}"])
        return {"run_date": run_date.isoformat(), "dry_run": True, **_per_step(results)}
    settings = dict(transport_settings or {})
    transport = transport or make_transport(settings.pop("name", None), settings)
    eng = _engine(url)
    try:
        outs = {step: _dispatch_step(eng, spec, run_date, step, transport, now) for step in spec.step_numbers}
    finally:
        eng.dispose()
    for step, out in outs.items():
        _say([f"{campaign_id} dispatch for {run_date} step {step}: {out}"])
    return {"run_date": run_date.isoformat(), **_per_step(outs)}


def _dispatch_step(eng, spec, run_date: dt.date, step: int, transport: Any, now: dt.datetime) -> dict[str, Any]:
    import sqlalchemy as sa

    from martech.campaigns.audience import step_run_id
    from martech.campaigns.dispatch import dispatch, write_previews

    run_id = step_run_id(run_date, step)
    previews = write_previews(eng, spec, run_date, paths.outbox_dir() / "previews", now=now, step=step)
    _say([f"{spec.id} previews: {', '.join(str(p) for p in previews) or 'none (empty treatment arm)'}"])
    out = _as_dict(dispatch(eng, spec, run_date, transport, now=now, step=step))
    with eng.begin() as conn:
        counts = conn.execute(sa.text(
            "select count(*), count(*) filter (where arm = 'treatment'),"
            " count(*) filter (where arm = 'holdout') from audiences.audience_members"
            " where campaign_id = :c and run_id = :r"), {"c": spec.id, "r": run_id}).one()
        sent = conn.execute(sa.text(
            "select count(*) from campaigns.send_ledger where campaign_id = :c and run_id = :r"
            " and status = 'sent'"), {"c": spec.id, "r": run_id}).scalar_one()
        conn.execute(sa.text(
            "insert into campaigns.campaign_runs (campaign_id, run_id, run_date, definition_hash,"
            " conversion_window_days, members, treatment, holdout, sent, transport)"
            " values (:c, :r, :d, :h, :w, :m, :t, :ho, :s, :tr)"
            " on conflict (campaign_id, run_id) do update set definition_hash = excluded.definition_hash,"
            " conversion_window_days = excluded.conversion_window_days, members = excluded.members,"
            " treatment = excluded.treatment, holdout = excluded.holdout, sent = excluded.sent,"
            " transport = excluded.transport"),
            {"c": spec.id, "r": run_id, "d": run_date, "h": spec.definition_hash,
             "w": spec.conversion_window_days, "m": counts[0], "t": counts[1], "ho": counts[2],
             "s": sent, "tr": transport.name})
    return out


def ingest_events(url: str, run_date: dt.date, *, folder: Path | None = None,
                  transport_settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Load email-event feed files into raw.email_events and rebuild staging.email_events.

    With the SendGrid transport configured, SendGrid's own suppression lists are merged too.
    """
    from martech.db import run_model
    from martech.ingest.landing import ingest_email_events

    prepare_warehouse(url)
    folder = folder or paths.landing_dir() / "email_events"
    folder.mkdir(parents=True, exist_ok=True)
    eng = _engine(url)
    try:
        results = ingest_email_events(eng, folder, run_date=run_date, loaded_at=_run_ts(run_date))
        staged = run_model(eng, "staging.email_events", {"run_date": run_date, "run_ts": _run_ts(run_date)})
        suppressed = _suppress_from_events(eng)
        settings = dict(transport_settings or {})
        if settings.pop("name", None) == "sendgrid":
            from martech.campaigns import sendgrid_suppressions

            sg = make_transport("sendgrid", settings)
            with eng.begin() as conn:
                from_sendgrid = sendgrid_suppressions.merge(conn, sg._client, asm_group_id=sg.asm_group_id)
            _say([f"campaigns.suppressions: {from_sendgrid} new from SendGrid's suppression lists"])
            suppressed += from_sendgrid
    finally:
        eng.dispose()
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


def build_kpis(url: str, run_date: dt.date) -> dict[str, Any]:
    """Rebuild the kpis tables as of the run date (``martech.kpis.build``)."""
    from martech.kpis.build import build_kpis as _build

    eng = _engine(url)
    try:
        counts = _build(eng, run_date)
    finally:
        eng.dispose()
    _say([f"{name}: {n} rows" for name, n in counts.items()])
    return {"run_date": run_date.isoformat(), "rows": counts}


def apply_retention(url: str, run_date: dt.date) -> dict[str, Any]:
    """Remove raw events, quarantined rows, landed files, outbox and previews past their retention."""
    from martech.privacy.retention import apply_retention as _apply

    eng = _engine(url)
    try:
        prepare_warehouse(url)
        removed = _apply(eng, run_date, landing=paths.landing_dir(), outbox=paths.outbox_dir())
    finally:
        eng.dispose()
    _say([f"retention: {n} {kind} removed" for kind, n in removed.items()])
    return {"run_date": run_date.isoformat(), "removed": removed}


def erase_person(url: str, run_date: dt.date, *, request_id: str, contact_id: str | None = None,
                 email: str | None = None) -> dict[str, Any]:
    """Erase one person everywhere the project writes (see martech.privacy.erase); returns counts only."""
    from martech.privacy.erase import erase_person as _erase

    prepare_warehouse(url)
    eng = _engine(url)
    try:
        counts = _erase(eng, request_id=request_id, run_date=run_date, home=paths.home(),
                        contact_id=contact_id or None, email=email or None)
    finally:
        eng.dispose()
    _say([f"erasure {request_id}: {n} in {where}" for where, n in counts.items()])
    return {"run_date": run_date.isoformat(), "request_id": request_id, "counts": counts}


def _as_dict(summary: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(summary) and not isinstance(summary, type):
        data = dataclasses.asdict(summary)
    elif isinstance(summary, dict):
        data = dict(summary)
    else:
        data = dict(vars(summary))
    return {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in data.items()
            if isinstance(v, (int, float, str, bool, dt.date, type(None)))}
