"""
### ingest — land shop and CRM data in `raw`, then check it

Pulls the shop database's tables incrementally (watermark on `updated_at` + key, kept in
`raw.ingest_state`) and every new CRM contacts export file, with PostgreSQL `COPY`. Then runs the
Great Expectations suites on exactly the rows this run landed; a failed critical expectation fails
`validate_raw`, and nothing downstream starts.

HubSpot (contacts, deals) and Shopify (customers, orders, abandoned checkouts) are pulled when
enabled in `include/sources.yml` (off by default), with the token of the connection `hubspot` /
`shopify`; pages are checkpointed, so a retry resumes where the failed try stopped.

Reads: shop database (`shop.*`, connection `shop_db`), CRM export folder, HubSpot and Shopify APIs.
Writes: `raw.shop_*`, `raw.crm_contacts`, `raw.hubspot_*`, `raw.shopify_*`, `raw.ingest_batches`,
`raw.ingest_state`, `raw.quarantine`, `kpis.data_quality`. Emits `martech://warehouse/raw` from the check.
"""

from __future__ import annotations

from airflow.sdk import dag

from martech.dagkit import DEFAULT_ARGS, RAW_CHECKED, RUN_PARAMS, START_DATE, task

TAGS = ["martech", "ingest"]


@dag(schedule="0 2 * * *", start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS,
     tags=TAGS, doc_md=__doc__, params=RUN_PARAMS, max_active_runs=1)
def ingest():
    @task
    def ingest_shop(**context):
        from martech import dagkit, pipeline

        return dagkit.run_step(context, pipeline.ingest_shop, settings={"shop_url": dagkit.shop_url()})

    @task
    def ingest_crm(**context):
        from martech import dagkit, pipeline

        return dagkit.run_step(context, pipeline.ingest_crm)

    @task
    def ingest_files(**context):
        from martech import dagkit, pipeline

        return dagkit.run_step(context, pipeline.ingest_files, root=dagkit.files_root())

    @task
    def ingest_hubspot(**context):
        from martech import dagkit
        from martech.ingest.connectors import run

        return dagkit.run_step(context, run.ingest_hubspot, credentials=dagkit.saas_credentials)

    @task
    def ingest_shopify(**context):
        from martech import dagkit
        from martech.ingest.connectors import run

        return dagkit.run_step(context, run.ingest_shopify, credentials=dagkit.saas_credentials)

    @task(outlets=[RAW_CHECKED])
    def validate_raw(**context):
        from martech import dagkit, pipeline

        return dagkit.run_step(context, pipeline.validate_raw, publish_to=RAW_CHECKED)

    [ingest_shop(), ingest_crm(), ingest_files(), ingest_hubspot(), ingest_shopify()] >> validate_raw()


ingest()
