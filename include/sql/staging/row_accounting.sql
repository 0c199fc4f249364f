-- grain: one row per staging table per staging run
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
    rows_duplicate bigint not null, -- Identical copies of another row of the same batch (staging.merges)
    rows_superseded bigint not null, -- Older versions of a row that a newer version replaced
    rows_merged bigint not null, -- Second records of the same identity, folded into another (staging.merges)
    landing_quarantined bigint not null, -- Source rows rejected before landing (unreadable lines)
    primary key (run_date, table_name)
)
;;
-- Each staging model builds a temporary table _checked with one row per raw row and its
-- disposition (staged, quarantined, duplicate, superseded, merged); this writes the quarantine rows and
-- the accounting row from it, so every model handles rejects the same way.
create or replace function staging.finish_checked(p_table text, p_raw_table text, p_run_date date,
                                                  p_run_ts timestamptz) returns bigint
language plpgsql as $$
declare
    n_quarantined bigint;
begin
    delete from raw.quarantine where stage = 'staging' and table_name = p_raw_table;
    -- The row as received is rendered for rejected rows only (found again by its physical position).
    execute format(
        'insert into raw.quarantine (table_name, batch_id, source_ref, received, reason, run_date, reason_code,'
        ' stage, row_key)'
        ' select $1, c._batch_id, c.source_ref, row_to_json(r)::text, c.reject_reason, $2, c.reject_code,'
        ' ''staging'', c.row_key'
        ' from _checked as c join %s as r on r.ctid = c.row_position'
        ' where c.disposition = ''quarantined''', p_raw_table)
    using p_raw_table, p_run_date;
    get diagnostics n_quarantined = row_count;

    delete from staging.row_accounting where run_date = p_run_date and table_name = p_table;
    insert into staging.row_accounting
    select p_run_date, p_table, p_raw_table, count(*),
           count(*) filter (where c.disposition = 'staged'),
           count(*) filter (where c.disposition = 'quarantined'),
           count(*) filter (where c.disposition = 'duplicate'),
           count(*) filter (where c.disposition = 'superseded'),
           count(*) filter (where c.disposition = 'merged'),
           (select count(*) from raw.quarantine as q
            join raw.ingest_batches as b on b.batch_id = q.batch_id
            where q.stage = 'landing' and q.table_name = p_raw_table and b.loaded_at <= p_run_ts)
    from _checked as c;
    return n_quarantined;
end
$$
;;
-- Clears what a model records besides its table before it records it again (reruns replace), and
-- gives the rebuild's sorts memory for the rest of its transaction.
create or replace function staging.begin_checked(p_raw_table text) returns void
language sql as $$
    select set_config('work_mem', '256MB', true);
    delete from staging.corrections where table_name = p_raw_table;
    delete from staging.merges where table_name = p_raw_table;
$$
