-- grain: one row per order line version received in a batch
-- materialized: table
-- lineage: batch
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_order_items (
    order_id text, -- Order id
    line_no text, -- Line within the order
    product_id text, -- Product id
    quantity text, -- Quantity
    unit_price text, -- Price per unit
    updated_at text -- Last change in the shop
)
