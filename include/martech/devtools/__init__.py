"""Developer tooling: the demo, benchmarks, the defect evaluation, warehouse summaries and the local Airflow set-up."""
