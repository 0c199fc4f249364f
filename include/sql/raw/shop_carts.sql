-- grain: one row per cart version received in a batch
-- materialized: table
-- lineage: batch
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_carts (
    cart_id text, -- Cart id
    customer_id text, -- Shop customer id
    status text, -- open, abandoned or converted
    order_id text, -- The order that bought the cart
    currency text, -- ISO currency code
    created_at text, -- When the cart was opened
    updated_at text -- Last change in the shop
)
