-- grain: one row per contact (the customer's latest completed order placed ten days before the run date)
-- Audience: customers with a completed order placed ten days before the run date (UTC date); when a
-- customer has several such orders, the latest. Personalization: order_id, products (jsonb array of up
-- to three products of that order: product_id, name, price, image_url).
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
with

orders as (
    select distinct on (o.customer_id)
        o.customer_id,
        o.order_id
    from staging.orders as o
    where
        o.status = 'completed'
        and (o.order_ts at time zone 'UTC')::date = %(run_date)s::date - 10
    order by o.customer_id asc, o.order_ts desc, o.order_id desc
),

lines as (
    select
        o.customer_id,
        o.order_id,
        p.product_id,
        p.name,
        p.price,
        p.image_url,
        row_number() over (partition by o.order_id order by i.line_no) as n
    from orders as o
    inner join staging.order_items as i on o.order_id = i.order_id
    inner join staging.products as p on i.product_id = p.product_id
),

products as (
    select
        l.customer_id,
        l.order_id,
        jsonb_agg(
            jsonb_build_object(
                'product_id', l.product_id, 'name', l.name, 'price', l.price, 'image_url', l.image_url
            )
            order by l.n
        ) as products
    from lines as l
    where l.n <= 3
    group by l.customer_id, l.order_id
),

final as (
    select distinct on (c.contact_id)
        c.contact_id,
        c.email,
        c.first_name,
        p.order_id,
        p.products
    from products as p
    inner join staging.contacts as c on p.customer_id = c.customer_id
    order by c.contact_id asc
)

select * from final
