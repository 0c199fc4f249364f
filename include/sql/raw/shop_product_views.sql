-- grain: one row per product view received in a batch
-- materialized: table
-- lineage: batch
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_product_views (
    session_id text, -- Web session id
    view_no text, -- Position of the view in its session
    product_id text, -- Product id
    viewed_at text, -- When the product page was viewed
    updated_at text -- Last change in the shop
)
