"""
### `campaign_<id>` — one DAG per campaign file in `include/campaigns/`

Generated from the YAML definitions (validated by a schema; no database access while parsing). A file
that does not validate gets no DAG and is reported as the import error of `campaign_spec_errors.py`;
the other campaigns keep theirs. Campaign DAGs are created paused: nothing is sent until someone
unpauses one, and a run dispatches only when the marts it reads and the suppressions are as of its
run date (`martech.campaigns.freshness`).
Each run snapshots the audience (holdout and A/B variant by a stable hash of campaign and contact),
validates it (Great Expectations: consent, suppressions, duplicate or invalid addresses, size against
the trailing runs; a failure stops the run before anything is sent), then dispatches to the treatment
arm through the send ledger, so a rerun of the same run date sends nothing twice.

An hourly series (the abandoned cart) first pulls the shop's carts, cart lines and orders up to the run's
hour (`refresh_shop`), and its runs are per hour (`<date>T<HH>`, param `run_ts`); each step goes once per
cart however many hourly runs see it.

Reads: `marts.*`, `staging.*`, `campaigns.suppressions` (hourly: also the shop and `raw.shop_*`). Writes:
`audiences.audience_members`, `audiences.snapshots`, `audiences.exclusions` (one row per excluded contact
and reason), `campaigns.coupons`, `campaigns.send_ledger`, `campaigns.campaign_runs`, the outbox (hourly:
also `raw.shop_carts`, `raw.shop_cart_items`, `raw.shop_orders`). Emits
`martech://warehouse/campaigns/send_ledger`.
"""

from __future__ import annotations

from airflow.sdk import dag

from martech import paths
from martech.campaigns.spec import scan_campaigns
from martech.dagkit import CAMPAIGN_PARAMS, DEFAULT_ARGS, HOURLY_CAMPAIGN_PARAMS, SENDS, START_DATE, task


def build_campaign_dag(spec):
    hourly = spec.hourly

    @dag(dag_id=f"campaign_{spec.id}", schedule=spec.schedule, start_date=START_DATE, catchup=False,
         default_args={**DEFAULT_ARGS, "owner": spec.owner}, tags=["martech", "campaign", *spec.tags],
         doc_md=f"{__doc__}\n\n#### {spec.name}\n\n{spec.description}",
         params=HOURLY_CAMPAIGN_PARAMS if hourly else CAMPAIGN_PARAMS, max_active_runs=1,
         is_paused_upon_creation=True)
    def campaign():
        @task
        def refresh_shop(**context):
            from martech import dagkit
            from martech.campaigns import hourly as pull

            with dagkit.warehouse(shop_url=dagkit.shop_url()) as wh:
                return pull.refresh_shop(wh, dagkit.run_of(context, hourly=True))

        @task
        def build_audience(**context):
            from martech import dagkit
            from martech.campaigns import runner

            with dagkit.warehouse() as wh:
                return runner.build_audience(wh, spec.id, dagkit.run_of(context, hourly=hourly))

        @task
        def validate_audience(**context):
            from martech import dagkit
            from martech.campaigns import runner

            with dagkit.warehouse() as wh:
                return runner.validate_audience(wh, spec.id, dagkit.run_of(context, hourly=hourly))

        @task(outlets=[SENDS])
        def dispatch(**context):
            from martech import dagkit
            from martech.campaigns import runner

            with dagkit.warehouse(transport_settings=dagkit.transport_settings()) as wh:
                summary = runner.dispatch(wh, spec.id, dagkit.run_of(context, hourly=hourly),
                                          dagkit.run_time_of(context),
                                          dry_run=bool((context.get("params") or {}).get("dry_run")))
            if not summary.get("dry_run"):
                dagkit.publish(context, SENDS, summary)
            return summary

        audience = build_audience()
        audience >> validate_audience() >> dispatch()
        if hourly:  # an hourly series first pulls the shop's newest carts and orders
            refresh_shop() >> audience

    return campaign()


for _spec in scan_campaigns(paths.campaigns_dir())[0]:
    if _spec.enabled:
        globals()[f"campaign_{_spec.id}"] = build_campaign_dag(_spec)
