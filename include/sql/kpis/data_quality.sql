-- grain: one row per expectation per table per validation run
-- materialized: table
-- Written by martech.quality.record_results after validate_raw: a rerun of the same run_id replaces
-- that run's rows. The expectations themselves are declared in martech.quality.suites().
create table if not exists kpis.data_quality (
    run_id text not null, -- The validation run (the Airflow run id of the ingest DAG run)
    run_date date not null, -- The run date whose landed raw batches were validated
    table_name text not null, -- The raw table validated, e.g. raw.shop_orders
    expectation text not null, -- Great Expectations expectation type, e.g. expect_column_values_to_match_regex
    column_name text not null default '', -- Column(s) checked, comma separated for compound keys; empty string for table-level expectations
    kwargs jsonb not null, -- The expectation arguments (regex, value set, column list ...)
    success boolean not null, -- Whether the expectation held on the validated rows
    critical boolean not null, -- True when a failure stops the pipeline (validate_raw fails); false for a warning that is only recorded
    unexpected_count bigint, -- Rows that broke the expectation (null for expectations that do not count rows)
    unexpected_sample jsonb not null default '[]'::jsonb, -- Up to 5 distinct offending values, as received
    observed text, -- Human-readable outcome, e.g. 3 of 1,200 rows unexpected (0.25%)
    primary key (run_id, table_name, expectation, column_name)
)
;;
create index if not exists data_quality__run_date on kpis.data_quality (run_date)
