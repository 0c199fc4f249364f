-- grain: one row per first-order month cohort and month since the first order
-- materialized: model
-- A customer belongs to the month of its first completed order. For each later month: how many of the
-- cohort ordered, its revenue, the share that had ordered at least twice by then (repeat rate) and the
-- cumulative revenue per cohort customer (LTV to date).
create table if not exists kpis.cohorts_monthly (
    cohort_month date not null,  -- Month of the customers' first completed order
    months_since integer not null,  -- 0 = the first-order month
    cohort_customers integer not null,  -- Customers in the cohort
    active_customers integer not null,  -- Of those, customers with a completed order in this month
    retention_rate numeric(8, 6) not null,  -- active_customers / cohort_customers
    repeat_customers integer not null,  -- Cohort customers with two or more orders by the end of this month
    repeat_rate numeric(8, 6) not null,  -- repeat_customers / cohort_customers
    revenue numeric(14, 2) not null,  -- Net revenue of the cohort in this month
    ltv_per_customer numeric(14, 4) not null,  -- Cumulative net revenue per cohort customer up to this month
    as_of_date date not null,  -- Data before this date was used
    primary key (cohort_month, months_since)
)
;;
truncate kpis.cohorts_monthly
;;
insert into kpis.cohorts_monthly
with

orders as (
    select
        customer_id,
        order_ts,
        net_amount,
        date_trunc('month', order_ts)::date as order_month
    from staging.orders
    where status = 'completed' and order_ts < %(run_date)s::date
),

firsts as (
    select
        customer_id,
        min(order_month) as cohort_month
    from orders
    group by customer_id
),

sizes as (
    select
        cohort_month,
        count(*) as cohort_customers
    from firsts
    group by cohort_month
),

numbered as (
    select
        orders.customer_id,
        orders.net_amount,
        firsts.cohort_month,
        (
            (extract(year from orders.order_month) - extract(year from firsts.cohort_month)) * 12
            + extract(month from orders.order_month) - extract(month from firsts.cohort_month)
        )::integer as months_since,
        row_number() over (partition by orders.customer_id order by orders.order_ts) as order_no
    from orders
    inner join firsts on orders.customer_id = firsts.customer_id
),

grid as (
    select
        sizes.cohort_month,
        sizes.cohort_customers,
        offsets.months_since
    from sizes
    cross join lateral generate_series(
        0,
        (
            (extract(year from %(run_date)s::date - 1) - extract(year from sizes.cohort_month)) * 12
            + extract(month from %(run_date)s::date - 1) - extract(month from sizes.cohort_month)
        )::integer
    ) as offsets (months_since)
),

per_month as (
    select
        cohort_month,
        months_since,
        count(distinct customer_id) as active_customers,
        sum(net_amount) as revenue,
        count(*) filter (where order_no = 2) as new_repeaters
    from numbered
    group by cohort_month, months_since
),

final as (
    select
        grid.cohort_month,
        grid.months_since,
        grid.cohort_customers,
        coalesce(per_month.active_customers, 0) as active_customers,
        round(coalesce(per_month.active_customers, 0)::numeric / grid.cohort_customers, 6) as retention_rate,
        sum(coalesce(per_month.new_repeaters, 0)) over cohort_months as repeat_customers,
        round(sum(coalesce(per_month.new_repeaters, 0)) over cohort_months::numeric / grid.cohort_customers, 6)
            as repeat_rate,
        coalesce(per_month.revenue, 0) as revenue,
        round(sum(coalesce(per_month.revenue, 0)) over cohort_months / grid.cohort_customers, 4) as ltv_per_customer,
        %(run_date)s::date as as_of_date
    from grid
    left join per_month
        on grid.cohort_month = per_month.cohort_month and grid.months_since = per_month.months_since
    window cohort_months as (partition by grid.cohort_month order by grid.months_since)
)

select * from final
