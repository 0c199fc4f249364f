-- grain: one row per incrementally pulled source table
-- materialized: table
-- The high-water mark of an incremental pull: the last (updated_at, key) loaded. Advanced in the
-- same transaction as the batch it covers.
create table if not exists raw.ingest_state (
    source text not null,
    table_name text not null,
    watermark_ts timestamptz,
    watermark_key text,
    last_batch_id text,
    primary key (source, table_name)
)
