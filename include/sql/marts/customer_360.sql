-- grain: one row per CRM contact, with the shop behaviour of its linked customer
-- materialized: model
create table if not exists marts.customer_360 (
    contact_id text primary key,  -- CRM contact id
    customer_id bigint,  -- Shop customer id (null for leads)
    email text, -- E-mail address (not readable by analyst) (personal data)
    first_name text, -- First name (not readable by analyst) (personal data)
    last_name text, -- Last name (not readable by analyst) (personal data)
    birthday date, -- Date of birth (not readable by analyst) (personal data)
    country text, -- Country code
    timezone text, -- IANA time zone
    consent_status text not null,  -- opted_in, double_opt_in, opted_out or unknown
    is_contactable boolean not null,  -- Consent given, email present and not suppressed
    lifecycle_status text, -- lead, customer, ...
    orders_count integer not null,  -- Completed orders before the as-of date
    net_revenue numeric(14, 2) not null,  -- Revenue of those orders
    first_order_at timestamptz, -- First completed order
    last_order_at timestamptz, -- Latest completed order
    favourite_category text,  -- Category with the highest spend
    rfm_segment text,  -- Latest RFM segment
    as_of_date date not null  -- Data before this date was used
)
;;
truncate marts.customer_360
;;
insert into marts.customer_360
with

contacts as (
    select * from staging.contacts
),

orders as (
    select * from staging.orders
    where status = 'completed' and order_ts < %(run_date)s::date
),

category_spend as (
    select
        orders.customer_id,
        products.category,
        sum(items.line_amount) as spend
    from orders
    inner join staging.order_items as items on orders.order_id = items.order_id
    inner join staging.products as products on items.product_id = products.product_id
    group by orders.customer_id, products.category
),

favourite as (
    select distinct on (customer_id)
        customer_id,
        category as favourite_category
    from category_spend
    order by customer_id asc, spend desc, category asc
),

order_stats as (
    select
        customer_id,
        count(*) as orders_count,
        sum(net_amount) as net_revenue,
        min(order_ts) as first_order_at,
        max(order_ts) as last_order_at
    from orders
    group by customer_id
),

rfm as (
    select distinct on (customer_id)
        customer_id,
        segment
    from marts.customer_rfm
    where as_of_date <= %(run_date)s::date
    order by customer_id asc, as_of_date desc
),

suppressed as (
    select distinct email from campaigns.suppressions
),

final as (
    select
        contacts.contact_id,
        contacts.customer_id,
        contacts.email,
        contacts.first_name,
        contacts.last_name,
        contacts.birthday,
        contacts.country,
        contacts.timezone,
        contacts.consent_status,
        (
            contacts.consent_status in ('opted_in', 'double_opt_in')
            and contacts.email is not null
            and suppressed.email is null
        ) as is_contactable,
        contacts.lifecycle_status,
        coalesce(order_stats.orders_count, 0) as orders_count,
        coalesce(order_stats.net_revenue, 0) as net_revenue,
        order_stats.first_order_at,
        order_stats.last_order_at,
        favourite.favourite_category,
        rfm.segment as rfm_segment,
        %(run_date)s::date as as_of_date
    from contacts
    left join order_stats on contacts.customer_id = order_stats.customer_id
    left join favourite on contacts.customer_id = favourite.customer_id
    left join rfm on contacts.customer_id = rfm.customer_id
    left join suppressed on contacts.email = suppressed.email
)

select * from final
