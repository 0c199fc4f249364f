-- grain: one row per ingest batch (one source table or one file, for one run)
-- materialized: table
-- A batch is written in the same transaction as its rows, so a batch row with status 'complete'
-- proves its rows landed; a rerun of a complete batch is a no-op.
create table if not exists raw.ingest_batches (
    batch_id text primary key, -- Batch id: source, table, run and (files) checksum prefix
    source text not null, -- Source name (include/sources.yml)
    table_name text not null, -- Raw table the batch landed in
    run_date date not null, -- Run date of the ingest
    status text not null check (status in ('complete')), -- complete: written in the same transaction as its rows
    rows_received bigint not null, -- Rows the source sent
    rows_loaded bigint not null, -- Rows landed in the raw table
    rows_quarantined bigint not null default 0, -- Rows sent to raw.quarantine at landing
    watermark_from text, -- Incremental pulls: watermark before the batch
    watermark_to text, -- Incremental pulls: watermark after it
    source_file text, -- Files: the file landed
    checksum text, -- Files: sha256 of the file's bytes (a file is landed once)
    loaded_at timestamptz not null -- When the batch landed (its rows' _loaded_at)
)
;;
create unique index if not exists ingest_batches__file on raw.ingest_batches (table_name, source_file, checksum)
where source_file is not null
