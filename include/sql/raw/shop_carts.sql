-- grain: one row per cart version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_carts (
    cart_id text,
    customer_id text,
    status text,
    order_id text,
    currency text,
    created_at text,
    updated_at text,
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists shop_carts__batch on raw.shop_carts (_batch_id)
