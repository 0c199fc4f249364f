"""
### campaign_<id> — one DAG per campaign file in `include/campaigns/`

Generated from the YAML definitions (validated by a schema; no database access while parsing).
Each run snapshots the audience (holdout and A/B variant by a stable hash of campaign and contact),
validates it (Great Expectations: consent, suppressions, duplicate or invalid addresses, size against
the trailing runs; a failure stops the run before anything is sent), then dispatches to the treatment
arm through the send ledger, so a rerun of the same run date sends nothing twice.

Reads: `marts.*`, `staging.*`, `campaigns.suppressions`. Writes: `audiences.audience_members`,
`audiences.snapshots`, `audiences.exclusions` (one row per excluded contact and reason),
`campaigns.coupons`, `campaigns.send_ledger`, `campaigns.campaign_runs`, the outbox. Emits
`martech://warehouse/campaigns/send_ledger`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from martech.campaigns.spec import load_campaigns
from martech.dagkit import CAMPAIGN_PARAMS, DEFAULT_ARGS, SENDS, START_DATE


def build_campaign_dag(spec):
    @dag(dag_id=f"campaign_{spec.id}", schedule=spec.schedule, start_date=START_DATE, catchup=False,
         default_args={**DEFAULT_ARGS, "owner": spec.owner}, tags=["martech", "campaign", *spec.tags],
         doc_md=f"{__doc__}\n\n#### {spec.name}\n\n{spec.description}", params=CAMPAIGN_PARAMS,
         max_active_runs=1)
    def campaign():
        @task
        def build_audience(**context):
            from martech import dagkit, pipeline

            return pipeline.build_audience(dagkit.warehouse_url(), spec.id, dagkit.run_date_of(context))

        @task
        def validate_audience(**context):
            from martech import dagkit, pipeline

            return pipeline.validate_audience(dagkit.warehouse_url(), spec.id, dagkit.run_date_of(context))

        @task(outlets=[SENDS])
        def dispatch(**context):
            from martech import dagkit, pipeline

            summary = pipeline.dispatch_campaign(dagkit.warehouse_url(), spec.id,
                                                 dagkit.run_date_of(context), dagkit.run_time_of(context),
                                                 transport_settings=dagkit.transport_settings(),
                                                 dry_run=bool((context.get("params") or {}).get("dry_run")))
            if not summary.get("dry_run"):
                dagkit.publish(context, SENDS, summary)
            return summary

        build_audience() >> validate_audience() >> dispatch()

    return campaign()


for _spec in load_campaigns():
    if _spec.enabled:
        globals()[f"campaign_{_spec.id}"] = build_campaign_dag(_spec)
