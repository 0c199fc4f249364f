-- grain: one row per contact (a shop customer who signed up in the nine days before the run date)
-- Audience: shop customers who signed up in the nine days before the run date, with their signup time
-- as trigger_at; build_snapshot keeps, per step, those whose signup day is delay_days + 1 days back.
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: signup_day (date).
with

new_customers as (
    select
        cu.customer_id,
        cu.created_at
    from staging.customers as cu
    where
        cu.created_at >= %(run_date)s::date - 9
        and cu.created_at < %(run_date)s::date
        and cu.deleted_at is null
),

final as (
    select distinct on (c.contact_id)
        c.contact_id,
        c.email,
        c.first_name,
        n.created_at as trigger_at,
        (n.created_at at time zone 'UTC')::date as signup_day
    from new_customers as n
    inner join staging.contacts as c on n.customer_id = c.customer_id
    order by c.contact_id asc, n.created_at asc
)

select * from final
