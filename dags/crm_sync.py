"""
### crm_sync — scores written back to HubSpot as contact properties

After each `customer_models` run (the marts asset), writes every contact's lead-score tier, RFM segment,
lifecycle stage, churn-risk band and predicted CLV to HubSpot (`martech_*` contact properties, batch
upsert by email, at most 100 contacts per request, paced under HubSpot's burst limit). Only the values
that changed since the last acknowledged write are sent; a run interrupted by an outage resumes where it
stopped, without sending an input twice. Erased contacts (`campaigns.do_not_contact`) are never written.
Off unless the hubspot source in `include/sources.yml` says `write_back: true`, with the token of its
connection (`hubspot`). Details: docs/crm.md.

Reads: `staging.contacts`, `marts.lead_scores`, `marts.customer_rfm`, `marts.customer_lifecycle`,
`marts.clv_predictions`, `campaigns.do_not_contact`. Writes: `campaigns.crm_write_batches`,
`campaigns.crm_property_writes`, HubSpot contact properties.
"""

from __future__ import annotations

from airflow.sdk import dag

from martech.dagkit import DEFAULT_ARGS, MARTS, RUN_PARAMS, START_DATE, task


@dag(schedule=MARTS, start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS,
     tags=["martech", "crm"], doc_md=__doc__, params=RUN_PARAMS, max_active_runs=1)
def crm_sync():
    @task
    def write_back_scores(**context):
        from martech import dagkit
        from martech.crm import writeback

        return dagkit.run_step(context, writeback.run_write_back, credentials=dagkit.saas_credentials)

    write_back_scores()


crm_sync()
