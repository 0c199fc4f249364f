-- grain: one row per order line version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_order_items (
    order_id text,
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
create index if not exists shop_order_items__batch on raw.shop_order_items (_batch_id)
