"""
### gdpr_erase — erase one person on request (GDPR Art. 17)

Triggered by hand with `request_id` and exactly one of `contact_id` or `email` (prefer the contact id:
Airflow keeps a run's params in its metadata database). Deletes the person's
rows from every pipeline table, keeps the send ledger, audience members and email events as
pseudonymous tombstones (the KPIs stay correct), removes their values from quality samples, deletes
outbox, preview and Data Docs files that mention them and rewrites landed exports without them. A keyed
hash of the address and of the person's ids goes on `campaigns.do_not_contact`: the staging DAG holds a
later import of them back (quarantined at landing, reason `do_not_contact`, content withheld) and campaign
eligibility excludes the address; one row with counts per table, and no personal data, goes to
`campaigns.erasure_requests`. See `martech.privacy.erase`.

Reads and writes: every table in `raw`, `staging`, `marts`, `audiences`, `campaigns`, `kpis`; files
under `MARTECH_HOME` (landing, outbox, data docs).
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from martech.dagkit import DEFAULT_ARGS, RUN_PARAMS, START_DATE, task

PARAMS = {
    **RUN_PARAMS,
    "request_id": Param("", type="string", minLength=1, description="Id of the erasure request (ticket)"),
    "contact_id": Param(None, type=["null", "string"], description="The person's contact id, or ..."),
    "email": Param(None, type=["null", "string"], description="... their e-mail address"),
}


@dag(schedule=None, start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS,
     tags=["martech", "privacy"], doc_md=__doc__, params=PARAMS, max_active_runs=1)
def gdpr_erase():
    @task
    def erase(**context):
        from martech import dagkit, pipeline

        p = context["params"]
        # Only counts are returned: the XCom and the task log must not repeat the person's identifiers.
        return dagkit.run_step(context, pipeline.erase_person, request_id=p["request_id"],
                               contact_id=p.get("contact_id"), email=p.get("email"))

    erase()


gdpr_erase()
