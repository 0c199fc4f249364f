-- grain: one row per product view received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_product_views (
    session_id text,
    view_no text,
    product_id text,
    viewed_at text,
    updated_at text,
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists shop_product_views__batch on raw.shop_product_views (_batch_id)
