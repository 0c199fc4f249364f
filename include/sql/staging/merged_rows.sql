-- grain: one row per source row folded into another row (an identical copy or the same identity)
-- materialized: table
-- Nothing merged disappears silently: an identical copy of a row in one batch, or a second record of
-- the same person (same normalized e-mail address), is recorded here with the row it was folded into.
create table if not exists staging.merged_rows (
    run_date date not null, -- The staging run that merged
    table_name text not null, -- Raw table of the merged row
    kind text not null, -- duplicate_order_id (identical copy), same_person_two_ids / email_case_duplicate (identity)
    merged_key text not null, -- Key of the row that was folded in (contact_id, customer_id, order_id)
    surviving_key text not null, -- Key of the row it was folded into
    source_ref text not null, -- file:line for files, else the merged row's key
    batch_id text not null, -- Landing batch of the merged raw row
    match_key text -- What matched: the normalized e-mail address, or the identical row's key
)
;;
create index if not exists merged_rows__table on staging.merged_rows (table_name, kind)
