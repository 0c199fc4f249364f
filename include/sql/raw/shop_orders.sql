-- grain: one row per order version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_orders (
    order_id text,
    customer_id text,
    order_ts text,
    status text,
    currency text,
    total_amount text,
    coupon_code text,
    updated_at text,
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists shop_orders__batch on raw.shop_orders (_batch_id)
