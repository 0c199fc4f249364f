-- grain: one row per web session version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_web_sessions (
    session_id text, -- Tracker's session id
    customer_id text, -- Logged-in shop customer
    contact_id text, -- CRM contact identified by an e-mail click
    started_at text, -- First hit
    ended_at text, -- Last hit
    page_views text, -- Pages viewed
    product_views text, -- Product pages viewed
    updated_at text, -- Last change in the shop
    _batch_id text not null, -- Ingest batch that landed the row (raw.ingest_batches.batch_id)
    _source text not null, -- Source that sent the row, as named in include/sources.yml
    _loaded_at timestamptz not null -- When its batch landed; staging reads the rows landed up to its run's cutoff
)
;;
create index if not exists shop_web_sessions__batch on raw.shop_web_sessions (_batch_id)
