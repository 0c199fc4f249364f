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
arm through the send ledger, so a rerun of the same run date sends nothing twice. The dispatch is three
tasks: `prepare_dispatch` (freshness gate, previews, seed list: once per run), `dispatch_partition`
mapped over the customer hash partitions (`dispatch.partitions` in `include/campaigns/_settings.yml`;
each partition sends its own contacts and can be retried or rerun alone), and `dispatch`, which counts
the run from the ledger into `campaigns.campaign_runs` and emits the asset event once all are done.

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

from martech import dagkit, paths
from martech.campaigns.spec import scan_campaigns
from martech.dagkit import CAMPAIGN_PARAMS, DEFAULT_ARGS, HOURLY_CAMPAIGN_PARAMS, SENDS, START_DATE, task

MAX_PARALLEL_PARTITIONS = 16  # partitions of one run sent at once, however many workers are free


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
            from martech.campaigns import hourly as pull

            with dagkit.warehouse(shop_url=dagkit.shop_url()) as wh:
                return pull.refresh_shop(wh, dagkit.run_of(context, hourly=True))

        @task
        def build_audience(**context):
            return dagkit.campaign_step(context, "build_audience", spec.id, hourly=hourly, sends=False)

        @task
        def validate_audience(**context):
            return dagkit.campaign_step(context, "validate_audience", spec.id, hourly=hourly, sends=False)

        @task
        def prepare_dispatch(**context):
            if dagkit.dry_run_of(context):
                return []  # the dry run renders everything in `dispatch`
            return dagkit.campaign_step(context, "prepare_dispatch", spec.id, hourly=hourly)

        @task(max_active_tis_per_dagrun=MAX_PARALLEL_PARTITIONS)
        def dispatch_partition(assignment, **context):
            return dagkit.campaign_step(context, "dispatch_partition", spec.id, assignment, hourly=hourly)

        # Runs when every partition is done, failed or not: the run's row is counted from the ledger.
        @task(outlets=[SENDS], trigger_rule="all_done")
        def dispatch(assignments, results, **context):
            if dagkit.dry_run_of(context):
                return dagkit.campaign_step(context, "dispatch_dry_run", spec.id, hourly=hourly)
            summary = dagkit.campaign_step(context, "finish_dispatch", spec.id, assignments, list(results or []),
                                           hourly=hourly)
            dagkit.publish(context, SENDS, summary)
            return summary

        audience = build_audience()
        assignments = prepare_dispatch()
        audience >> validate_audience() >> assignments
        # one task instance per customer hash partition (dispatch.partitions in _settings.yml)
        dispatch(assignments, dispatch_partition.expand(assignment=assignments))
        if hourly:  # an hourly series first pulls the shop's newest carts and orders
            refresh_shop() >> audience

    return campaign()


for _spec in scan_campaigns(paths.campaigns_dir())[0]:
    if _spec.enabled:
        globals()[f"campaign_{_spec.id}"] = build_campaign_dag(_spec)
