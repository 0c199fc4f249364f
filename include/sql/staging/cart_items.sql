-- grain: one row per cart line (latest version received)
-- materialized: model
create table if not exists staging.cart_items (
    cart_id bigint not null,
    line_no integer not null,
    product_id bigint not null,
    quantity integer not null,
    unit_price numeric(12, 2) not null,
    updated_at timestamptz,
    primary key (cart_id, line_no)
)
;;
truncate staging.cart_items
;;
insert into staging.cart_items
with

source as (
    select * from raw.shop_cart_items
    where _loaded_at <= %(run_ts)s
),

latest as (
    select distinct on (cart_id::bigint, line_no::integer)
        cart_id::bigint as cart_id,
        line_no::integer as line_no,
        product_id::bigint as product_id,
        quantity::integer as quantity,
        unit_price::numeric(12, 2) as unit_price,
        updated_at::timestamptz as updated_at
    from source
    order by cart_id::bigint, line_no::integer, updated_at::timestamptz desc, _loaded_at desc
)

select * from latest
