-- grain: one row per contact (a customer with an order in the year before the run date)
-- Audience: customers who ordered (any order not cancelled) in the 365 days before the run date (UTC
-- dates). The campaign's targeting keeps those whose country is in season (calendar winter_warmers in
-- calendars/seasons.yml) on the run date; its content picks the subject and template by language.
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: country, language (content selection), timezone, last_order_day (date),
-- orders_last_year.
with

recent_orders as (
    select
        o.customer_id,
        max((o.order_ts at time zone 'UTC')::date) as last_order_day,
        count(*) as orders_last_year
    from staging.orders as o
    where
        o.status <> 'cancelled'
        and o.order_ts >= %(run_date)s::date - 365
        and o.order_ts < %(run_date)s::date
    group by o.customer_id
),

final as (
    select distinct on (c.contact_id)
        c.contact_id,
        c.email,
        c.first_name,
        c.country,
        c.language,
        c.timezone,
        r.last_order_day,
        r.orders_last_year
    from recent_orders as r
    inner join staging.contacts as c on r.customer_id = c.customer_id
    order by c.contact_id asc
)

select * from final
