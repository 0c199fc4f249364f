-- Audience: each customer's latest abandoned cart (staging.carts status 'abandoned') with trigger_at its
-- last change, unless the customer completed an order after it (exit as soon as the cart is bought).
-- build_snapshot keeps, per step, the carts abandoned delay_days + 1 days before the run date.
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: cart_id, cart_value, products (jsonb array of the cart's lines: product_id, name,
-- price, image_url, quantity).
with

abandoned as (
    select distinct on (ca.customer_id)
        ca.cart_id,
        ca.customer_id,
        ca.updated_at,
        ca.cart_value
    from staging.carts as ca
    where
        ca.status = 'abandoned'
        and ca.updated_at >= %(run_date)s::date - 5
        and ca.updated_at < %(run_date)s::date
    order by ca.customer_id asc, ca.updated_at desc, ca.cart_id desc
),

still_open as (
    select a.*
    from abandoned as a
    where not exists (
        select 1 from staging.orders as o
        where
            o.customer_id = a.customer_id
            and o.status <> 'cancelled'
            and o.order_ts >= a.updated_at
            and o.order_ts < %(run_date)s::date
    )
),

lines as (
    select
        so.cart_id,
        jsonb_agg(
            jsonb_build_object('product_id', p.product_id, 'name', p.name, 'price', ci.unit_price,
                               'image_url', p.image_url, 'quantity', ci.quantity)
            order by ci.line_no
        ) as products
    from still_open as so
    inner join staging.cart_items as ci on so.cart_id = ci.cart_id
    inner join staging.products as p on ci.product_id = p.product_id
    group by so.cart_id
),

final as (
    select distinct on (c.contact_id)
        c.contact_id,
        c.email,
        c.first_name,
        so.updated_at as trigger_at,
        so.cart_id,
        so.cart_value,
        l.products
    from still_open as so
    inner join lines as l on so.cart_id = l.cart_id
    inner join staging.contacts as c on so.customer_id = c.customer_id
    order by c.contact_id asc
)

select * from final
