-- grain: one row per contact (the customer's most recently abandoned cart, as of the run's hour)
-- Audience of the hourly abandoned-cart series: one row per contact, for the customer's most recently
-- abandoned cart, as the shop's data stood at the run's instant %(run_ts)s.
-- Cart and order state is read from raw (the latest version of each row updated before the run's
-- instant, pulled that hour by the campaign DAG), not from staging, which is rebuilt only daily.
-- A cart counts as abandoned when its latest version says so, or when it is still 'open' but untouched for
-- an hour (the shop's own rule, for shops whose status change does not move updated_at); trigger_at is its
-- last activity. Only carts abandoned within the last 4 days are read (the last step is due at +72 h,
-- plus catch_up_hours).
-- Exit on purchase: exit_reason 'converted' when the cart converted or the customer placed an order (not
-- cancelled) after trigger_at and before the run's instant; build_snapshot records it in
-- audiences.exclusions for the step that was due. Contacts, products: staging (daily is fresh enough).
-- build_snapshot keeps, per step, the carts due in this hour (see docs/campaigns.md).
-- Personalization: cart_id (also the series_key), cart_value, products (jsonb array of the cart's lines:
-- product_id, name, price, image_url, quantity).
with

cart_versions as (
    select
        rc.cart_id::bigint as cart_id,
        rc.customer_id::bigint as customer_id,
        lower(trim(rc.status)) as status,
        nullif(trim(rc.order_id), '')::bigint as order_id,
        rc.updated_at::timestamptz as updated_at,
        rc._loaded_at
    from raw.shop_carts as rc
    where
        rc.updated_at::timestamptz < %(run_ts)s::timestamptz
        and rc.updated_at::timestamptz >= %(run_ts)s::timestamptz - interval '4 days'
),

latest_cart as (
    select distinct on (cv.cart_id)
        cv.cart_id,
        cv.customer_id,
        cv.status,
        cv.order_id,
        cv.updated_at
    from cart_versions as cv
    order by cv.cart_id asc, cv.updated_at desc, cv._loaded_at desc
),

last_abandonment as (
    select
        cv.cart_id,
        max(cv.updated_at) as abandoned_at
    from cart_versions as cv
    where cv.status = 'abandoned'
    group by cv.cart_id
),

cart_series as (
    select
        lc.cart_id,
        lc.customer_id,
        case
            when lc.status = 'abandoned' then lc.updated_at
            when lc.status = 'open' and lc.updated_at <= %(run_ts)s::timestamptz - interval '1 hour'
                then lc.updated_at
            when lc.status = 'converted' then la.abandoned_at
        end as abandoned_at,
        case when lc.status = 'converted' then lc.updated_at end as converted_at,
        case when lc.status = 'converted' then lc.order_id end as converted_order_id
    from latest_cart as lc
    left join last_abandonment as la on lc.cart_id = la.cart_id
),

customer_cart as (
    select distinct on (cs.customer_id)
        cs.cart_id,
        cs.customer_id,
        cs.abandoned_at,
        cs.converted_at,
        cs.converted_order_id
    from cart_series as cs
    where cs.abandoned_at is not null
    order by cs.customer_id asc, cs.abandoned_at desc, cs.cart_id desc
),

order_versions as (
    select distinct on (ro.order_id::bigint)
        ro.order_id::bigint as order_id,
        ro.customer_id::bigint as customer_id,
        ro.order_ts::timestamptz as order_ts,
        lower(trim(ro.status)) as status
    from raw.shop_orders as ro
    where
        ro.updated_at::timestamptz < %(run_ts)s::timestamptz
        and ro.updated_at::timestamptz >= %(run_ts)s::timestamptz - interval '4 days'
    order by ro.order_id::bigint asc, ro.updated_at::timestamptz desc, ro._loaded_at desc
),

first_purchase as (
    select distinct on (cc.cart_id)
        cc.cart_id,
        ov.order_id,
        ov.order_ts
    from customer_cart as cc
    inner join order_versions as ov
        on
            cc.customer_id = ov.customer_id
            and cc.abandoned_at <= ov.order_ts
            and ov.order_ts < %(run_ts)s::timestamptz
    where ov.status <> 'cancelled'
    order by cc.cart_id asc, ov.order_ts asc, ov.order_id asc
),

line_versions as (
    select distinct on (ri.cart_id::bigint, ri.line_no::integer)
        ri.cart_id::bigint as cart_id,
        ri.line_no::integer as line_no,
        ri.product_id::bigint as product_id,
        ri.quantity::integer as quantity,
        ri.unit_price::numeric(12, 2) as unit_price
    from raw.shop_cart_items as ri
    where
        ri.updated_at::timestamptz < %(run_ts)s::timestamptz
        and ri.cart_id::bigint in (select cc.cart_id from customer_cart as cc)
    order by
        ri.cart_id::bigint asc, ri.line_no::integer asc, ri.updated_at::timestamptz desc, ri._loaded_at desc
),

lines as (
    select
        lv.cart_id,
        sum(lv.quantity * lv.unit_price) as cart_value,
        jsonb_agg(
            jsonb_build_object(
                'product_id', p.product_id, 'name', p.name, 'price', lv.unit_price,
                'image_url', p.image_url, 'quantity', lv.quantity
            )
            order by lv.line_no
        ) as products
    from line_versions as lv
    inner join staging.products as p on lv.product_id = p.product_id
    where lv.quantity > 0
    group by lv.cart_id
),

final as (
    select distinct on (c.contact_id)
        c.contact_id,
        c.email,
        c.first_name,
        cc.abandoned_at as trigger_at,
        cc.cart_id,
        l.cart_value,
        l.products,
        case
            when cc.converted_at is not null or fp.order_id is not null then 'converted'
        end as exit_reason,
        case
            when cc.converted_at is not null
                then 'cart ' || cc.cart_id || ' converted at ' || to_char(
                    cc.converted_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"'
                ) || coalesce(' (order ' || cc.converted_order_id || ')', '')
            when fp.order_id is not null
                then 'order ' || fp.order_id || ' at ' || to_char(
                    fp.order_ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"'
                )
        end as exit_detail
    from customer_cart as cc
    inner join lines as l on cc.cart_id = l.cart_id
    inner join staging.contacts as c on cc.customer_id = c.customer_id
    left join first_purchase as fp on cc.cart_id = fp.cart_id
    order by c.contact_id asc
)

select * from final
