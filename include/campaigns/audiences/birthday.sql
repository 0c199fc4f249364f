-- grain: one row per contact whose birthday is the run date
-- Audience: contacts whose birthday (month and day) is the run date.
-- People born on 29 February are greeted on 28 February in years without a 29 February
-- (the run date is 28 Feb and the day after it is 1 Mar).
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: is_customer (lifecycle_status = 'customer') to pick the copy.
with

contacts as (
    select
        c.contact_id,
        c.email,
        c.first_name,
        c.lifecycle_status,
        to_char(c.birthday, 'MM-DD') as birthday_md
    from staging.contacts as c
    where c.birthday is not null
),

run_day as (
    select
        to_char(%(run_date)s::date, 'MM-DD') as run_md,
        to_char(%(run_date)s::date + 1, 'MM-DD') as next_md
),

final as (
    select
        c.contact_id,
        c.email,
        c.first_name,
        coalesce(c.lifecycle_status = 'customer', false) as is_customer
    from contacts as c
    cross join run_day as d
    where
        c.birthday_md = d.run_md
        or (c.birthday_md = '02-29' and d.run_md = '02-28' and d.next_md = '03-01')
)

select * from final
