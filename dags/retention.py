"""
### retention — remove personal data older than its retention period

Once a day: rows of `raw.email_events` and `raw.quarantine`, landed export files, and outbox and
preview folders older than their period (`MARTECH_RETENTION_<KIND>_DAYS`, see
`martech.privacy.retention`) are removed, counted from the run date.

Reads: `raw.ingest_batches`. Writes (deletes from): `raw.email_events`, `raw.quarantine`, the landing
folder, the outbox and its previews.
"""

from __future__ import annotations

from airflow.sdk import dag

from martech.dagkit import DEFAULT_ARGS, RUN_PARAMS, START_DATE, task


@dag(schedule="@daily", start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS,
     tags=["martech", "privacy"], doc_md=__doc__, params=RUN_PARAMS, max_active_runs=1)
def retention():
    @task
    def apply_retention(**context):
        from martech import dagkit, pipeline

        return dagkit.run_step(context, pipeline.apply_retention)

    apply_retention()


retention()
