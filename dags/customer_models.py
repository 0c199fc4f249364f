"""
### customer_models — the scores marketing acts on

RFM recency / frequency / monetary with 1–5 quintile scores and the 11 named segments (pandas),
category affinity (support, confidence, lift), the customer 360 and lifecycle stages (SQL).

Reads: `staging.orders`, `staging.order_items`, `staging.products`, `staging.contacts`,
`campaigns.suppressions`. Writes: `marts.customer_rfm`, `marts.product_affinity`,
`marts.customer_360`, `marts.customer_lifecycle`,
`marts.segment_migration`, `marts.clv_predictions`, `marts.lead_scores`, `marts.recommendations`,
`marts.customer_segments`, `marts.replenishment_due`, `marts.contact_send_hours`. Emits `martech://warehouse/marts`.
"""

from __future__ import annotations

from airflow.sdk import dag

from martech.dagkit import DEFAULT_ARGS, MARTS, RUN_PARAMS, STAGING, START_DATE, task


@dag(schedule=[STAGING], start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS,
     tags=["martech", "models"], doc_md=__doc__, params=RUN_PARAMS, max_active_runs=1)
def customer_models():
    @task(outlets=[MARTS])
    def build_customer_models(**context):
        from martech import dagkit, pipeline

        return dagkit.run_step(context, pipeline.build_customer_models, publish_to=MARTS)

    build_customer_models()


customer_models()
