-- grain: one row per order (latest version received)
-- materialized: model
create table if not exists staging.orders (
    order_id bigint primary key,
    customer_id bigint not null,
    order_ts timestamptz not null,
    order_date date not null,
    status text not null,
    currency text,
    total_amount numeric(14, 2) not null,
    net_amount numeric(14, 2) not null,
    coupon_code text,
    updated_at timestamptz
)
;;
truncate staging.orders
;;
insert into staging.orders
with

source as (
    select * from raw.shop_orders
    where _loaded_at <= %(run_ts)s
),

latest as (
    select distinct on (order_id::bigint)
        order_id::bigint as order_id,
        customer_id::bigint as customer_id,
        order_ts::timestamptz as order_ts,
        lower(trim(status)) as status,
        upper(trim(currency)) as currency,
        total_amount::numeric(14, 2) as total_amount,
        nullif(trim(coupon_code), '') as coupon_code,
        updated_at::timestamptz as updated_at
    from source
    order by order_id::bigint, updated_at::timestamptz desc, _loaded_at desc
),

final as (
    select
        order_id,
        customer_id,
        order_ts,
        (order_ts at time zone 'UTC')::date as order_date,
        status,
        currency,
        total_amount,
        -- Refunded and cancelled orders keep their row but bring no revenue.
        case when status = 'completed' then total_amount else 0 end as net_amount,
        coupon_code,
        updated_at
    from latest
)

select * from final
