"""
### email_events — what happened to the mails we sent

Loads every new email-event feed file (SendGrid event-webhook shape: delivered, open, click, bounce,
unsubscribe, ...) and rebuilds the deduplicated `staging.email_events`.

Reads: the email-event landing folder. Writes: `raw.email_events`, `raw.ingest_batches`,
`staging.email_events`. Emits `martech://warehouse/staging/email_events`.
"""

from __future__ import annotations

from airflow.sdk import dag

from martech.dagkit import DEFAULT_ARGS, EMAIL_EVENTS, RUN_PARAMS, START_DATE, task


@dag(schedule="0 3 * * *", start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS,
     tags=["martech", "events"], doc_md=__doc__, params=RUN_PARAMS, max_active_runs=1)
def email_events():
    @task(outlets=[EMAIL_EVENTS])
    def ingest_email_events(**context):
        from martech import dagkit, pipeline

        return dagkit.run_step(context, pipeline.ingest_events, publish_to=EMAIL_EVENTS,
                               settings={"transport_settings": dagkit.transport_settings()})

    ingest_email_events()


email_events()
