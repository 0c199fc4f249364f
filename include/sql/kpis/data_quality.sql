-- grain: one row per expectation per table per validation run
-- materialized: table
-- Written by martech.quality.record_results after validate_raw: a rerun of the same run_id replaces
-- that run's rows. The expectations themselves are declared in martech.quality.suites().
create table if not exists kpis.data_quality (
    run_id text not null,
    run_date date not null,
    table_name text not null,
    expectation text not null,
    column_name text not null default '',
    kwargs jsonb not null,
    success boolean not null,
    critical boolean not null,
    unexpected_count bigint,
    unexpected_sample jsonb not null default '[]'::jsonb,
    observed text,
    primary key (run_id, table_name, expectation, column_name)
)
;;
create index if not exists data_quality__run_date on kpis.data_quality (run_date)
;;
comment on column kpis.data_quality.run_id is 'The validation run (the Airflow run id of the ingest DAG run)'
;;
comment on column kpis.data_quality.run_date is 'The run date whose landed raw batches were validated'
;;
comment on column kpis.data_quality.table_name is 'The raw table validated, e.g. raw.shop_orders'
;;
comment on column kpis.data_quality.expectation is
'Great Expectations expectation type, e.g. expect_column_values_to_match_regex'
;;
comment on column kpis.data_quality.column_name is
'Column(s) checked, comma separated for compound keys; empty string for table-level expectations'
;;
comment on column kpis.data_quality.kwargs is 'The expectation arguments (regex, value set, column list ...)'
;;
comment on column kpis.data_quality.success is 'Whether the expectation held on the validated rows'
;;
comment on column kpis.data_quality.critical is
'True when a failure stops the pipeline (validate_raw fails); false for a warning that is only recorded'
;;
comment on column kpis.data_quality.unexpected_count is
'Rows that broke the expectation (null for expectations that do not count rows)'
;;
comment on column kpis.data_quality.unexpected_sample is 'Up to 5 distinct offending values, as received'
;;
comment on column kpis.data_quality.observed is 'Human-readable outcome, e.g. 3 of 1,200 rows unexpected (0.25%)'
