"""
### kpis — campaign results analysts can query

Rebuilds `kpis.campaign_daily` (per campaign, step, variant, arm and send day: sends, deliveries, human
and machine opens, clicks, conversions and revenue within the attribution window, cost and ROI),
`kpis.campaign_exclusions` and `kpis.campaign_uplift` (treatment against holdout with 95 % intervals,
A/B variants against each other) and `kpis.campaign_goals` (each campaign YAML's goal: KPI value against
its target). Formulas: docs/kpis.md.

Reads: `campaigns.campaign_runs`, `audiences.audience_members`, `audiences.exclusions`,
`audiences.snapshots`, `campaigns.send_ledger`, `staging.email_events`, `staging.orders`,
`staging.contacts`. Writes: `campaigns.member_outcomes`, `kpis.campaign_daily`,
`kpis.campaign_exclusions`, `kpis.campaign_uplift`, `kpis.campaign_goals`, `kpis.send_time_comparison`.
Emits `martech://warehouse/kpis`. Then writes the daily report (`MARTECH_HOME/reports/report.html`,
served in the UI by the martech plugin) from those tables and the model marts: docs/report.md.
"""

from __future__ import annotations

from airflow.sdk import dag

from martech.dagkit import DEFAULT_ARGS, EMAIL_EVENTS, KPIS, MARTS, RUN_PARAMS, START_DATE, task


@dag(schedule=(EMAIL_EVENTS & MARTS), start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS,
     tags=["martech", "kpis"], doc_md=__doc__, params=RUN_PARAMS, max_active_runs=1)
def kpis():
    @task(outlets=[KPIS])
    def build_kpis(**context):
        from martech import dagkit, pipeline

        return dagkit.run_step(context, pipeline.build_kpis, publish_to=KPIS)

    @task
    def build_report(**context):
        from martech import dagkit
        from martech.kpis.report import write_report

        with dagkit.warehouse() as wh:
            return str(write_report(wh.engine, dagkit.run_date_of(context)))

    build_kpis() >> build_report()


kpis()
