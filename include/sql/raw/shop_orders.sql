-- grain: one row per order version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_orders (
    order_id text, -- Order id
    customer_id text, -- Shop customer id
    order_ts text, -- When the order was placed
    status text, -- Order status
    currency text, -- ISO currency code
    total_amount text, -- Order total
    coupon_code text, -- Coupon redeemed with the order
    updated_at text, -- Last change in the shop; the incremental pull's cursor
    _batch_id text not null, -- Ingest batch that landed the row (raw.ingest_batches.batch_id)
    _source text not null, -- Source that sent the row, as named in include/sources.yml
    _loaded_at timestamptz not null -- When its batch landed; staging reads the rows landed up to its run's cutoff
)
;;
create index if not exists shop_orders__batch on raw.shop_orders (_batch_id)
