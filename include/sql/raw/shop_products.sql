-- grain: one row per product version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_products (
    product_id text,
    sku text,
    name text,
    category text,
    price text,
    image_url text,
    created_at text,
    updated_at text,
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists shop_products__batch on raw.shop_products (_batch_id)
