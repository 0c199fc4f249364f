-- grain: one row per day with completed orders before the as-of date
-- materialized: model
-- A new customer's order is its first completed order; every later one is a returning customer's.
create table if not exists kpis.revenue_daily (
    order_date date not null primary key,  -- UTC date of the orders
    orders integer not null,  -- Completed orders
    revenue numeric(14, 2) not null,  -- Net revenue of those orders
    aov numeric(14, 4) not null,  -- Average order value: revenue / orders
    new_customer_orders integer not null,  -- First orders of their customers
    new_customer_revenue numeric(14, 2) not null,  -- Net revenue of first orders
    returning_customer_orders integer not null,  -- Later orders
    returning_customer_revenue numeric(14, 2) not null,  -- Net revenue of later orders
    as_of_date date not null  -- Data before this date was used
)
;;
truncate kpis.revenue_daily
;;
insert into kpis.revenue_daily
with

orders as (
    select
        order_date,
        net_amount,
        row_number() over (partition by customer_id order by order_ts, order_id) = 1 as is_first
    from staging.orders
    where status = 'completed' and order_ts < %(run_date)s::date
),

final as (
    select
        order_date,
        count(*) as orders,
        sum(net_amount) as revenue,
        round(sum(net_amount) / count(*), 4) as aov,
        count(*) filter (where is_first) as new_customer_orders,
        coalesce(sum(net_amount) filter (where is_first), 0) as new_customer_revenue,
        count(*) filter (where not is_first) as returning_customer_orders,
        coalesce(sum(net_amount) filter (where not is_first), 0) as returning_customer_revenue,
        %(run_date)s::date as as_of_date
    from orders
    group by order_date
)

select * from final
