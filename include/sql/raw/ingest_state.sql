-- grain: one row per incrementally pulled source table
-- materialized: table
-- The high-water mark of an incremental pull: the last (updated_at, key) loaded. Advanced in the
-- same transaction as the batch it covers.
create table if not exists raw.ingest_state (
    source text not null, -- Source name (include/sources.yml)
    table_name text not null, -- Raw table pulled into
    watermark_ts timestamptz, -- updated_at of the last row loaded
    watermark_key text, -- Key of the last row loaded (ties on updated_at)
    last_batch_id text, -- Batch that advanced the watermark
    primary key (source, table_name)
)
