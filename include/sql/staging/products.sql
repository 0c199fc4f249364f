-- grain: one row per product (latest version received)
-- materialized: model
create table if not exists staging.products (
    product_id bigint primary key,
    sku text,
    name text,
    category text not null,
    price numeric(12, 2),
    image_url text,
    created_at timestamptz,
    updated_at timestamptz
)
;;
truncate staging.products
;;
insert into staging.products
with

source as (
    select * from raw.shop_products
    where _loaded_at <= %(run_ts)s
),

final as (
    select distinct on (product_id::bigint)
        product_id::bigint as product_id,
        trim(sku) as sku,
        trim(name) as name,
        coalesce(nullif(trim(category), ''), 'Uncategorised') as category,
        price::numeric(12, 2) as price,
        image_url,
        created_at::timestamptz as created_at,
        updated_at::timestamptz as updated_at
    from source
    order by product_id::bigint, updated_at::timestamptz desc, _loaded_at desc
)

select * from final
