-- grain: one row per contact (a customer whose last completed order was 14 to 21 days before the run date)
-- Audience: cross-sell to customers whose last completed order was 14 to 21 days before the run date
-- (UTC dates), one row per contact.
-- Offer, in order of preference (offer_source says which one a member got):
--   'recommendations'   the customer's product-level recommendations in marts.recommendations (latest
--                       as_of on or before the run date): the top 3 by rank that rest on a product the
--                       customer bought (popularity fill-ins are left out) and that are still not bought
--                       up to the run date; used when at least 2 such products remain. Each product
--                       carries the mart's explanation ("bought X; customers who buy it buy Y").
--   'category_affinity' otherwise: the consequent of marts.product_affinity (level 'category') with the
--                       highest lift, then confidence, whose antecedent is the main category of the last
--                       order, among categories the customer never bought; its 3 best sellers by units
--                       sold up to the run date.
-- Customers with neither are left out. Consent, suppressions and missing emails are filtered by
-- build_snapshot around this query.
-- Personalization: last_category, offer_source, offer_category (the category of the first product
-- offered), products (jsonb array: product_id, name, price, image_url, reason).
-- Only customers with a completed order inside the window can have their last order there, so the
-- per-customer work (last order, what they bought) reads those customers' orders, not all of history;
-- only the best-seller ranking reads every completed line, as one aggregate per product. The CTEs
-- below are materialized on purpose: the planner cannot estimate the 14-21 day window and, inlined,
-- re-ran the product ranking once per candidate row.
with

completed_orders as not materialized (
    select
        o.order_id,
        o.customer_id,
        o.order_ts
    from staging.orders as o
    where
        o.status = 'completed'
        and (o.order_ts at time zone 'UTC')::date <= %(run_date)s::date
),

window_customers as materialized (
    select distinct o.customer_id
    from completed_orders as o
    where %(run_date)s::date - (o.order_ts at time zone 'UTC')::date between 14 and 21
),

order_lines as materialized (
    select
        o.order_id,
        o.customer_id,
        o.order_ts,
        i.line_no,
        i.line_amount,
        p.product_id,
        p.category
    from completed_orders as o
    inner join window_customers as w on o.customer_id = w.customer_id
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

-- what each candidate has bought, as arrays on the buyer's row: the offers below filter on them row by
-- row, so no join depends on the planner's (unknowable) estimate of how many buyers the window holds
customer_history as (
    select
        l.customer_id,
        array_agg(distinct l.product_id) as bought_products,
        array_agg(distinct l.category) as bought_categories
    from order_lines as l
    group by l.customer_id
),

recent_buyers as materialized (
    select
        lo.customer_id,
        lo.last_category,
        h.bought_products,
        h.bought_categories
    from last_order as lo
    inner join customer_history as h on lo.customer_id = h.customer_id
    where %(run_date)s::date - lo.last_order_date between 14 and 21
),

-- point in time: the newest recommendation set the models had built by the run date
latest_recommendations as (
    select max(r.as_of) as as_of
    from marts.recommendations as r
    where r.as_of <= %(run_date)s::date
),

recommended as (
    select
        rb.customer_id,
        rb.last_category,
        r.product_id,
        r.reason,
        p.name,
        p.price,
        p.image_url,
        p.category,
        row_number() over (partition by rb.customer_id order by r.rank asc) as offer_rank
    from recent_buyers as rb
    inner join marts.recommendations as r on rb.customer_id = r.customer_id
    inner join latest_recommendations as lr on r.as_of = lr.as_of
    inner join staging.products as p on r.product_id = p.product_id
    where
        r.because_product_id is not null
        -- bought between the models' as_of and the run date: no longer an offer
        and r.product_id <> all(rb.bought_products)
),

recommendation_offer as materialized (
    select
        rc.customer_id,
        min(rc.last_category) as last_category,
        max(rc.category) filter (where rc.offer_rank = 1) as offer_category,
        jsonb_agg(
            jsonb_build_object(
                'product_id', rc.product_id, 'name', rc.name, 'price', rc.price, 'image_url', rc.image_url,
                'reason', rc.reason
            )
            order by rc.offer_rank
        ) as products
    from recommended as rc
    where rc.offer_rank <= 3
    group by rc.customer_id
    having count(*) >= 2
),

category_offer as materialized (
    select distinct on (rb.customer_id)
        rb.customer_id,
        rb.last_category,
        a.consequent as offer_category
    from recent_buyers as rb
    inner join marts.product_affinity as a
        on a.level = 'category' and rb.last_category = a.antecedent
    where a.consequent <> all(rb.bought_categories)
    order by rb.customer_id asc, a.lift desc nulls last, a.confidence desc nulls last, a.consequent asc
),

units_sold as (
    select
        i.product_id,
        sum(i.quantity) as units_sold
    from completed_orders as o
    inner join staging.order_items as i on o.order_id = i.order_id
    group by i.product_id
),

product_sales as (
    select
        p.product_id,
        p.category,
        p.name,
        p.price,
        p.image_url,
        coalesce(u.units_sold, 0) as units_sold
    from staging.products as p
    left join units_sold as u on p.product_id = u.product_id
),

ranked_products as (
    select
        ps.*,
        row_number() over (
            partition by ps.category order by ps.units_sold desc, ps.product_id asc
        ) as sales_rank
    from product_sales as ps
),

top_products as materialized (
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

category_fallback as materialized (
    select
        co.customer_id,
        co.last_category,
        co.offer_category,
        (
            select
                jsonb_agg(
                    pr.product || jsonb_build_object(
                        'reason', 'customers who buy ' || co.last_category || ' also buy ' || co.offer_category
                    )
                    order by pr.position
                )
            from jsonb_array_elements(tp.products) with ordinality as pr (product, position)
        ) as products
    from category_offer as co
    inner join top_products as tp on co.offer_category = tp.category
),

-- a buyer's recommendations when there are, else the category fallback; one pass over both lists
-- (joined to recent_buyers instead, a nested loop per buyer was chosen on the window's estimate)
offers as (
    select distinct on (u.customer_id)
        u.customer_id,
        u.last_category,
        u.offer_source,
        u.offer_category,
        u.products
    from (
        select
            ro.customer_id,
            ro.last_category,
            1 as preference,
            'recommendations' as offer_source,
            ro.offer_category,
            ro.products
        from recommendation_offer as ro
        union all
        select
            cf.customer_id,
            cf.last_category,
            2 as preference,
            'category_affinity' as offer_source,
            cf.offer_category,
            cf.products
        from category_fallback as cf
    ) as u
    order by u.customer_id asc, u.preference asc
),

final as (
    select
        c.contact_id,
        c.email,
        c.first_name,
        o.last_category,
        o.offer_source,
        o.offer_category,
        o.products
    from offers as o
    inner join staging.contacts as c on o.customer_id = c.customer_id
)

select * from final
