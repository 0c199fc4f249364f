-- Audience: cross-sell to customers whose last completed order was 14 to 21 days before the run date
-- (UTC dates). The offered category is the consequent of marts.product_affinity (level 'category') with
-- the highest lift, then confidence, whose antecedent is the main category of that last order, among
-- categories the customer never bought. Customers without such a category are left out.
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: last_category, offer_category, products (jsonb array of the 3 best-selling products
-- of offer_category by units sold up to the run date: product_id, name, price, image_url).
with

completed_orders as (
    select
        o.order_id,
        o.customer_id,
        o.order_ts
    from staging.orders as o
    where
        o.status = 'completed'
        and (o.order_ts at time zone 'UTC')::date <= %(run_date)s::date
),

order_lines as (
    select
        o.order_id,
        o.customer_id,
        o.order_ts,
        i.line_no,
        i.quantity,
        i.line_amount,
        p.product_id,
        p.category
    from completed_orders as o
    inner join staging.order_items as i on o.order_id = i.order_id
    inner join staging.products as p on i.product_id = p.product_id
),

last_order as (
    select distinct on (l.customer_id)
        l.customer_id,
        l.category as last_category,
        (l.order_ts at time zone 'UTC')::date as last_order_date
    from order_lines as l
    order by l.customer_id asc, l.order_ts desc, l.order_id desc, l.line_amount desc, l.line_no asc
),

recent_buyers as (
    select
        lo.customer_id,
        lo.last_category
    from last_order as lo
    where %(run_date)s::date - lo.last_order_date between 14 and 21
),

bought_categories as (
    select distinct
        l.customer_id,
        l.category
    from order_lines as l
),

offer as (
    select distinct on (rb.customer_id)
        rb.customer_id,
        rb.last_category,
        a.consequent as offer_category
    from recent_buyers as rb
    inner join marts.product_affinity as a
        on a.level = 'category' and rb.last_category = a.antecedent
    where
        not exists (
            select 1
            from bought_categories as bc
            where bc.customer_id = rb.customer_id and bc.category = a.consequent
        )
    order by rb.customer_id asc, a.lift desc nulls last, a.confidence desc nulls last, a.consequent asc
),

product_sales as (
    select
        p.product_id,
        p.category,
        p.name,
        p.price,
        p.image_url,
        coalesce(sum(l.quantity), 0) as units_sold
    from staging.products as p
    left join order_lines as l on p.product_id = l.product_id
    group by p.product_id, p.category, p.name, p.price, p.image_url
),

ranked_products as (
    select
        ps.*,
        row_number() over (
            partition by ps.category order by ps.units_sold desc, ps.product_id asc
        ) as sales_rank
    from product_sales as ps
),

top_products as (
    select
        rp.category,
        jsonb_agg(
            jsonb_build_object(
                'product_id', rp.product_id, 'name', rp.name, 'price', rp.price, 'image_url', rp.image_url
            )
            order by rp.sales_rank
        ) as products
    from ranked_products as rp
    where rp.sales_rank <= 3
    group by rp.category
),

final as (
    select
        c.contact_id,
        c.email,
        c.first_name,
        o.last_category,
        o.offer_category,
        tp.products
    from offer as o
    inner join top_products as tp on o.offer_category = tp.category
    inner join staging.contacts as c on o.customer_id = c.customer_id
)

select * from final
