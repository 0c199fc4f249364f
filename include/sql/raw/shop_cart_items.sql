-- grain: one row per cart line version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_cart_items (
    cart_id text, -- Cart id
    line_no text, -- Line within the cart
    product_id text, -- Product id
    quantity text, -- Quantity
    unit_price text, -- Price per unit
    updated_at text, -- Last change in the shop
    _batch_id text not null, -- Ingest batch that landed the row (raw.ingest_batches.batch_id)
    _source text not null, -- Source that sent the row, as named in include/sources.yml
    _loaded_at timestamptz not null -- When its batch landed; staging reads the rows landed up to its run's cutoff
)
;;
create index if not exists shop_cart_items__batch on raw.shop_cart_items (_batch_id)
