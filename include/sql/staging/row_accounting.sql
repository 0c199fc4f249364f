-- grain: one row per staging table, raw table feeding it and staging run
-- materialized: table
-- Every raw row is accounted for: received = staged + quarantined + duplicate copies + superseded
-- versions + identity merges. martech.staging checks the equation against the tables after each
-- rebuild and fails the run when it does not hold.
create table if not exists staging.row_accounting (
    run_date date not null, -- The staging run
    table_name text not null, -- Staging table, e.g. staging.orders
    raw_table text not null, -- Its raw table
    rows_received bigint not null, -- Raw rows landed up to the run's cutoff
    rows_staged bigint not null, -- Rows in the staging table
    rows_quarantined bigint not null, -- Rows rejected by staging (raw.quarantine, stage 'staging')
    rows_duplicate bigint not null, -- Identical copies of another row of the same batch (staging.merged_rows)
    rows_superseded bigint not null, -- Older versions of a row that a newer version replaced
    rows_merged bigint not null, -- Second records of the same identity, folded into another (staging.merged_rows)
    landing_quarantined bigint not null, -- Source rows rejected before landing (unreadable lines)
    primary key (run_date, table_name, raw_table)
)
;;
-- Warehouses from before a staging table could have several raw tables: widen the key once.
do $$
begin
    if (select count(*) from pg_index as i join pg_class as c on c.oid = i.indexrelid
        where c.relname = 'row_accounting_pkey' and i.indnatts = 2) > 0 then
        alter table staging.row_accounting drop constraint row_accounting_pkey;
        alter table staging.row_accounting add primary key (run_date, table_name, raw_table);
    end if;
end
$$
