-- grain: one row per contact (moved from lead to marketingqualifiedlead in the 7 days before the run date)
-- Audience: contacts with a lifecyclestage transition lead -> marketingqualifiedlead in
-- marts.crm_stage_transitions (the build as of the run date) whose changed_at falls in the 7 days before
-- the run date, and no later lifecycle transition (a contact already moved on to sales is not mailed).
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: qualified_at (the transition's time), days_since_qualified, first_order_code.
with

moves as (
    select
        t.contact_id,
        t.changed_at
    from marts.crm_stage_transitions as t
    where
        t.as_of = %(run_date)s::date
        and t.stage_property = 'lifecyclestage'
        and t.from_stage = 'lead'
        and t.to_stage = 'marketingqualifiedlead'
        and t.changed_at >= (%(run_date)s::date - 7)::timestamp at time zone 'UTC'
        and t.changed_at < (%(run_date)s::date)::timestamp at time zone 'UTC'
),

latest as (
    select
        m.contact_id,
        max(m.changed_at) as qualified_at
    from moves as m
    where
        not exists (
            select 1
            from marts.crm_stage_transitions as later
            where
                later.as_of = %(run_date)s::date
                and later.contact_id = m.contact_id
                and later.stage_property = 'lifecyclestage'
                and later.changed_at > m.changed_at
        )
    group by m.contact_id
),

final as (
    select
        c.contact_id,
        c.email,
        c.first_name,
        l.qualified_at,
        %(run_date)s::date - (l.qualified_at at time zone 'UTC')::date as days_since_qualified,
        'WELCOME10' as first_order_code
    from latest as l
    inner join staging.contacts as c on l.contact_id = c.contact_id
)

select * from final
