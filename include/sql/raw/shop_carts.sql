-- grain: one row per cart version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_carts (
    cart_id text, -- Cart id
    customer_id text, -- Shop customer id
    status text, -- open, abandoned or converted
    order_id text, -- The order that bought the cart
    currency text, -- ISO currency code
    created_at text, -- When the cart was opened
    updated_at text, -- Last change in the shop
    _batch_id text not null, -- Ingest batch that landed the row (raw.ingest_batches.batch_id)
    _source text not null, -- Source that sent the row, as named in include/sources.yml
    _loaded_at timestamptz not null -- When its batch landed; staging reads the rows landed up to its run's cutoff
)
;;
create index if not exists shop_carts__batch on raw.shop_carts (_batch_id)
