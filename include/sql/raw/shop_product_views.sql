-- grain: one row per product view received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_product_views (
    session_id text, -- Web session id
    view_no text, -- Position of the view in its session
    product_id text, -- Product id
    viewed_at text, -- When the product page was viewed
    updated_at text, -- Last change in the shop
    _batch_id text not null, -- Ingest batch that landed the row (raw.ingest_batches.batch_id)
    _source text not null, -- Source that sent the row, as named in include/sources.yml
    _loaded_at timestamptz not null -- When its batch landed; staging reads the rows landed up to its run's cutoff
)
;;
create index if not exists shop_product_views__batch on raw.shop_product_views (_batch_id)
