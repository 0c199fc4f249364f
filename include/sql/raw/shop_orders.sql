-- grain: one row per order version received in a batch
-- materialized: table
-- lineage: batch
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_orders (
    order_id text, -- Order id
    customer_id text, -- Shop customer id
    order_ts text, -- When the order was placed
    status text, -- Order status
    currency text, -- ISO currency code
    total_amount text, -- Order total
    coupon_code text, -- Coupon redeemed with the order
    updated_at text -- Last change in the shop; the incremental pull's cursor
)
