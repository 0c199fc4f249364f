-- grain: one row per incrementally built staging table and raw table feeding it
-- materialized: table
-- How far each incrementally built staging table has read its raw table: the next run examines only the
-- rows landed after loaded_through (and the rows it held as future-dated). Written by
-- staging.finish_checked; martech.staging.incremental reads it and falls back to a full rebuild when the
-- raw rows up to the watermark are no longer the ones counted (an erasure, a batch landed behind it).
create table if not exists staging.model_watermarks (
    table_name text not null, -- Staging table, e.g. staging.product_views
    raw_table text not null, -- Its raw table
    loaded_through timestamptz not null, -- Raw rows landed up to this instant are in the table (the run's cutoff)
    rows_through bigint not null, -- Raw rows landed up to loaded_through when it was recorded
    run_date date not null, -- The staging run that moved it there (a rerun reading nothing new leaves it)
    full_refresh boolean not null, -- Whether that run rebuilt the table from all raw rows
    primary key (table_name, raw_table)
)
