-- grain: one row per contact (a customer with a consumable product whose reminder is due on the run date)
-- Audience: customers for whom marts.replenishment_due (latest as_of on or before the run date) holds a
-- product whose reminder is due: remind_on on or before the run date and at most 6 days before it (a
-- week of daily runs; the campaign's cooldown mails each need once). A product bought again after the
-- purchase the prediction rests on (any order not cancelled, up to the run date) is no longer due.
-- Up to three due products per contact, the most urgent (earliest predicted need) first.
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: product_id, product_name, category, predicted_next_date, days_left (predicted date
-- minus run date; negative when overdue), last_purchase_date, products (jsonb array: product_id, name,
-- price, image_url, predicted_next_date).
with

latest as (
    select max(r.as_of) as as_of
    from marts.replenishment_due as r
    where r.as_of <= %(run_date)s::date
),

due as materialized (
    select
        r.customer_id,
        r.product_id,
        r.category,
        r.last_purchase_date,
        r.predicted_next_date
    from marts.replenishment_due as r
    inner join latest as l on r.as_of = l.as_of
    where %(run_date)s::date between r.remind_on and r.remind_on + 6
),

bought_since as materialized (
    select distinct
        d.customer_id,
        d.product_id
    from due as d
    inner join staging.orders as o on d.customer_id = o.customer_id
    inner join staging.order_items as i on o.order_id = i.order_id and d.product_id = i.product_id
    where
        o.status <> 'cancelled'
        and (o.order_ts at time zone 'UTC')::date > d.last_purchase_date
        and (o.order_ts at time zone 'UTC')::date <= %(run_date)s::date
),

ranked as (
    select
        d.*,
        p.name,
        p.price,
        p.image_url,
        row_number() over (
            partition by d.customer_id order by d.predicted_next_date asc, d.product_id asc
        ) as urgency
    from due as d
    inner join staging.products as p on d.product_id = p.product_id
    where not exists (
        select 1
        from bought_since as b
        where b.customer_id = d.customer_id and b.product_id = d.product_id
    )
),

offers as (
    select
        r.customer_id,
        max(r.product_id) filter (where r.urgency = 1) as product_id,
        max(r.name) filter (where r.urgency = 1) as product_name,
        max(r.category) filter (where r.urgency = 1) as category,
        min(r.predicted_next_date) as predicted_next_date,
        max(r.last_purchase_date) filter (where r.urgency = 1) as last_purchase_date,
        jsonb_agg(
            jsonb_build_object(
                'product_id', r.product_id, 'name', r.name, 'price', r.price, 'image_url', r.image_url,
                'predicted_next_date', r.predicted_next_date
            )
            order by r.urgency
        ) as products
    from ranked as r
    where r.urgency <= 3
    group by r.customer_id
),

final as (
    select
        c.contact_id,
        c.email,
        c.first_name,
        o.product_id,
        o.product_name,
        o.category,
        o.predicted_next_date,
        o.predicted_next_date - %(run_date)s::date as days_left,
        o.last_purchase_date,
        o.products
    from offers as o
    inner join staging.contacts as c on o.customer_id = c.customer_id
)

select * from final
