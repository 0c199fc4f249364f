"""
### staging — typed, deduplicated tables, one row per entity

Runs when `ingest` has landed and checked raw data. Builds each staging table from the raw rows
loaded up to the run (the latest version of each key wins), in one transaction per table: the largest
tables read only the batches landed since their last run (`martech.staging.incremental`; the param
`full_refresh` rebuilds them from all raw rows, as the first run does), the others are rebuilt. Then it checks
them with Great Expectations (keys, values, references, freshness, row-count drift): a critical failure
stops here, before any customer model or send; the asset outlet sits on the check.

Reads: `raw.shop_*` (customers, products, orders, order items, carts, cart items, web sessions,
product views), `raw.crm_contacts`, `raw.email_events`. Writes the ten tables of
`martech.pipeline.STAGING_MODELS`: `staging.customers`, `staging.products`, `staging.orders`,
`staging.order_items`, `staging.contacts`, `staging.cart_items`, `staging.carts`,
`staging.web_sessions`, `staging.product_views`, `staging.email_events` (rebuilt again by
`email_events`), plus `raw.quarantine`, `staging.corrections`, `staging.merged_rows` and
`staging.row_accounting`. Emits `martech://warehouse/staging`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from martech.dagkit import DEFAULT_ARGS, RAW_CHECKED, RUN_PARAMS, STAGING, START_DATE, task

PARAMS = {
    **RUN_PARAMS,
    "full_refresh": Param(False, type="boolean",
                          description="Rebuild every staging table from all raw rows instead of reading only the"
                                      " batches landed since each table's last run"),
}


@dag(schedule=[RAW_CHECKED], start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS,
     tags=["martech", "staging"], doc_md=__doc__, params=PARAMS, max_active_runs=1)
def staging():
    @task
    def build_staging(**context):
        from martech import dagkit, pipeline

        return dagkit.run_step(context, pipeline.build_staging,
                               full_refresh=bool(context["params"].get("full_refresh")))

    @task(outlets=[STAGING])
    def validate_staging(built, **context):
        from martech import dagkit, pipeline

        checked = dagkit.run_step(context, pipeline.validate_staging)
        summary = {**built, "quality": {k: v for k, v in checked.items() if k != "rows"}}
        dagkit.publish(context, STAGING, summary)
        return summary

    validate_staging(build_staging())


staging()
