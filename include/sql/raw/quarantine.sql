-- grain: one row per rejected source row
-- materialized: table
-- Nothing is dropped silently: a row that cannot be landed or staged is kept here with a reason a
-- person can act on.
create table if not exists raw.quarantine (
    table_name text not null,
    batch_id text not null,
    source_ref text not null,
    received text not null,
    reason text not null,
    run_date date not null
)
;;
create index if not exists quarantine__batch on raw.quarantine (batch_id)
