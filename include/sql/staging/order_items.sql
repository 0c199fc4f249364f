-- grain: one row per order line (latest version received)
-- materialized: model
create table if not exists staging.order_items (
    order_id bigint not null,
    line_no integer not null,
    product_id bigint not null,
    quantity integer not null,
    unit_price numeric(12, 2) not null,
    line_amount numeric(14, 2) not null,
    updated_at timestamptz,
    primary key (order_id, line_no)
)
;;
truncate staging.order_items
;;
insert into staging.order_items
with

source as (
    select * from raw.shop_order_items
    where _loaded_at <= %(run_ts)s
),

latest as (
    select distinct on (order_id::bigint, line_no::integer)
        order_id::bigint as order_id,
        line_no::integer as line_no,
        product_id::bigint as product_id,
        quantity::integer as quantity,
        unit_price::numeric(12, 2) as unit_price,
        updated_at::timestamptz as updated_at
    from source
    order by order_id::bigint, line_no::integer, updated_at::timestamptz desc, _loaded_at desc
),

final as (
    select
        order_id,
        line_no,
        product_id,
        quantity,
        unit_price,
        (quantity * unit_price)::numeric(14, 2) as line_amount,
        updated_at
    from latest
)

select * from final
