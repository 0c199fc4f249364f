-- grain: one row per cart line version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_cart_items (
    cart_id text,
    line_no text,
    product_id text,
    quantity text,
    unit_price text,
    updated_at text,
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists shop_cart_items__batch on raw.shop_cart_items (_batch_id)
