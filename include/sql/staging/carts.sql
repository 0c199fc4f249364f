-- grain: one row per shop cart (latest version received)
-- materialized: model
create table if not exists staging.carts (
    cart_id bigint primary key,
    customer_id bigint not null,
    created_at timestamptz not null,
    updated_at timestamptz not null, -- Last change of the cart (the abandonment time for abandoned carts)
    status text not null, -- open, abandoned or converted
    order_id bigint, -- The order that bought the cart (converted carts)
    cart_value numeric(12, 2) not null, -- Sum of quantity times unit price of its lines
    currency text
)
;;
truncate staging.carts
;;
insert into staging.carts
with

source as (
    select * from raw.shop_carts
    where _loaded_at <= %(run_ts)s
),

latest as (
    select distinct on (cart_id::bigint)
        cart_id::bigint as cart_id,
        customer_id::bigint as customer_id,
        created_at::timestamptz as created_at,
        updated_at::timestamptz as updated_at,
        lower(trim(status)) as status,
        nullif(trim(order_id), '')::bigint as order_id,
        upper(nullif(trim(currency), '')) as currency
    from source
    order by cart_id::bigint, updated_at::timestamptz desc, _loaded_at desc
),

lines as (
    select
        cart_id,
        sum(quantity * unit_price) as cart_value
    from staging.cart_items
    group by cart_id
),

final as (
    select
        latest.cart_id,
        latest.customer_id,
        latest.created_at,
        latest.updated_at,
        latest.status,
        latest.order_id,
        coalesce(lines.cart_value, 0)::numeric(12, 2) as cart_value,
        latest.currency
    from latest
    left join lines on latest.cart_id = lines.cart_id
)

select * from final
