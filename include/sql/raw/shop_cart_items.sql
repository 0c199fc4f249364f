-- grain: one row per cart line version received in a batch
-- materialized: table
-- lineage: batch
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_cart_items (
    cart_id text, -- Cart id
    line_no text, -- Line within the cart
    product_id text, -- Product id
    quantity text, -- Quantity
    unit_price text, -- Price per unit
    updated_at text -- Last change in the shop
)
