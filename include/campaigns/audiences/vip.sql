-- grain: one row per contact (a customer in Champions in the latest RFM snapshot)
-- Audience: customers whose latest RFM snapshot on or before the run date puts them in Champions.
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: orders (count), favourite_category (most units bought), member_since (first order date).
with

latest_rfm as (
    select distinct on (r.customer_id)
        r.customer_id,
        r.segment,
        r.frequency,
        r.first_order_at
    from marts.customer_rfm as r
    where r.as_of_date <= %(run_date)s::date
    order by r.customer_id asc, r.as_of_date desc
),

-- Materialized, and the category counts restricted to it: the planner cannot estimate how few rows a
-- distinct on keeps and, unrestricted, joined every champion to every customer's favourite (minutes).
champions as materialized (
    select
        lr.customer_id,
        lr.frequency,
        lr.first_order_at
    from latest_rfm as lr
    where lr.segment = 'Champions'
),

category_units as (
    select
        o.customer_id,
        p.category,
        sum(i.quantity) as units
    from staging.orders as o
    inner join champions as ch on o.customer_id = ch.customer_id
    inner join staging.order_items as i on o.order_id = i.order_id
    inner join staging.products as p on i.product_id = p.product_id
    where o.status = 'completed' and o.order_ts < %(run_date)s::date
    group by o.customer_id, p.category
),

favourite as materialized (
    select distinct on (cu.customer_id)
        cu.customer_id,
        cu.category
    from category_units as cu
    order by cu.customer_id asc, cu.units desc, cu.category asc
),

final as (
    select distinct on (c.contact_id)
        c.contact_id,
        c.email,
        c.first_name,
        r.frequency as orders,
        coalesce(f.category, 'products') as favourite_category,
        (r.first_order_at at time zone 'UTC')::date as member_since
    from champions as r
    inner join staging.contacts as c on r.customer_id = c.customer_id
    left join favourite as f on r.customer_id = f.customer_id
    order by c.contact_id asc
)

select * from final
