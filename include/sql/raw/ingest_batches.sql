-- grain: one row per ingest batch (one source table or one file, for one run)
-- materialized: table
-- A batch is written in the same transaction as its rows, so a batch row with status 'complete'
-- proves its rows landed; a rerun of a complete batch is a no-op.
create table if not exists raw.ingest_batches (
    batch_id text primary key,
    source text not null,
    table_name text not null,
    run_date date not null,
    status text not null check (status in ('complete')),
    rows_received bigint not null,
    rows_loaded bigint not null,
    rows_quarantined bigint not null default 0,
    watermark_from text,
    watermark_to text,
    source_file text,
    checksum text,
    loaded_at timestamptz not null
)
;;
create unique index if not exists ingest_batches__file on raw.ingest_batches (table_name, source_file, checksum)
where source_file is not null
