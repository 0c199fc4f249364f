"""
### kpis — campaign results analysts can query

Rebuilds `kpis.campaign_daily`: per campaign, send day and arm, the audience, sends, deliveries,
opens, clicks and the conversions and revenue within the campaign's attribution window, holdout
arm included.

Reads: `campaigns.campaign_runs`, `audiences.audience_members`, `campaigns.send_ledger`,
`staging.email_events`, `staging.orders`, `staging.contacts`. Writes: `kpis.campaign_daily`.
Emits `martech://warehouse/kpis`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from martech.dagkit import DEFAULT_ARGS, EMAIL_EVENTS, KPIS, MARTS, RUN_PARAMS, START_DATE


@dag(schedule=(EMAIL_EVENTS & MARTS), start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS,
     tags=["martech", "kpis"], doc_md=__doc__, params=RUN_PARAMS, max_active_runs=1)
def kpis():
    @task(outlets=[KPIS])
    def build_kpis(**context):
        from martech import dagkit, pipeline

        summary = pipeline.build_kpis(dagkit.warehouse_url(), dagkit.run_date_of(context))
        dagkit.publish(context, KPIS, summary)
        return summary

    build_kpis()


kpis()
