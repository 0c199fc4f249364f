-- grain: one row per product version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_products (
    product_id text, -- Product id
    sku text, -- Stock keeping unit
    name text, -- Product name
    category text, -- Product category
    price text, -- List price
    image_url text, -- Product image URL
    created_at text, -- When the product was created
    updated_at text, -- Last change in the shop
    _batch_id text not null, -- Ingest batch that landed the row (raw.ingest_batches.batch_id)
    _source text not null, -- Source that sent the row, as named in include/sources.yml
    _loaded_at timestamptz not null -- When its batch landed; staging reads the rows landed up to its run's cutoff
)
;;
create index if not exists shop_products__batch on raw.shop_products (_batch_id)
