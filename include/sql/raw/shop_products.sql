-- grain: one row per product version received in a batch
-- materialized: table
-- lineage: batch
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_products (
    product_id text, -- Product id
    sku text, -- Stock keeping unit
    name text, -- Product name
    category text, -- Product category
    price text, -- List price
    image_url text, -- Product image URL
    created_at text, -- When the product was created
    updated_at text -- Last change in the shop
)
