-- Audience: lapsed valuable customers (winback).
-- One row per contact. RFM segment 'At Risk', 'Can''t Lose Them' or 'Hibernating' in the customer's
-- latest marts.customer_rfm row as of the run date, with monetary above the median of all customers.
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: last_category (main category of the last completed order), value_tier and
-- coupon_percent (gold 20 / silver 15 / bronze 10 by monetary percentile).
with

rfm_as_of as (
    select distinct on (r.customer_id)
        r.customer_id,
        r.monetary,
        r.segment
    from marts.customer_rfm as r
    where r.as_of_date <= %(run_date)s::date
    order by r.customer_id asc, r.as_of_date desc
),

thresholds as (
    select
        percentile_cont(0.5) within group (order by r.monetary) as p50,
        percentile_cont(0.75) within group (order by r.monetary) as p75,
        percentile_cont(0.9) within group (order by r.monetary) as p90
    from rfm_as_of as r
),

lapsed_valuable as (
    select
        r.customer_id,
        r.segment,
        case
            when r.monetary >= t.p90 then 'gold'
            when r.monetary >= t.p75 then 'silver'
            else 'bronze'
        end as value_tier
    from rfm_as_of as r
    cross join thresholds as t
    where
        r.segment in ('At Risk', 'Can''t Lose Them', 'Hibernating')
        and r.monetary > t.p50
),

last_category as (
    select distinct on (o.customer_id)
        o.customer_id,
        p.category
    from staging.orders as o
    inner join staging.order_items as i on o.order_id = i.order_id
    inner join staging.products as p on i.product_id = p.product_id
    where
        o.status = 'completed'
        and (o.order_ts at time zone 'UTC')::date <= %(run_date)s::date
    order by o.customer_id asc, o.order_ts desc, o.order_id desc, i.line_amount desc, i.line_no asc
),

final as (
    select
        c.contact_id,
        c.email,
        c.first_name,
        lv.segment as rfm_segment,
        lc.category as last_category,
        lv.value_tier,
        case lv.value_tier when 'gold' then 20 when 'silver' then 15 else 10 end as coupon_percent
    from lapsed_valuable as lv
    inner join staging.contacts as c on lv.customer_id = c.customer_id
    left join last_category as lc on lv.customer_id = lc.customer_id
)

select * from final
