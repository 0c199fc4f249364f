-- grain: one row per calendar month up to the as-of date
-- materialized: model
-- Contacts are CRM contacts (staging.contacts); a lead is a contact without a shop customer; a contact is
-- active in a month when its customer completed an order or it opened (human) or clicked a mail in the 90 days
-- up to the month's end. Qualified leads: tier A or B in the latest lead scoring of the month.
create table if not exists kpis.acquisition_monthly (
    month date not null primary key,  -- First day of the month
    new_contacts integer not null,  -- Contacts created in the month
    new_leads integer not null,  -- Contacts created in the month without a shop customer
    total_contacts integer not null,  -- Contacts created before the month's end
    active_contacts integer not null,  -- Contacts with an order, human open or click in the 90 days to the month's end
    scored_leads integer,  -- Open leads in the month's latest lead scoring (null without one)
    qualified_leads integer,  -- Of those, tier A or B
    lead_qualification_rate numeric(8, 6),  -- qualified_leads / scored_leads
    as_of_date date not null  -- Data before this date was used
)
;;
truncate kpis.acquisition_monthly
;;
insert into kpis.acquisition_monthly
with

contacts as (
    select
        contact_id,
        customer_id,
        created_at
    from staging.contacts
    where created_at < %(run_date)s::date
),

months as (
    select
        generate_series(
            date_trunc('month', min(created_at))::date, date_trunc('month', %(run_date)s::date - 1)::date, '1 month'
        )::date as month
    from contacts
),

bounds as (
    select
        month,
        least((month + interval '1 month')::date, %(run_date)s::date) as month_end
    from months
),

activity as (
    select
        contacts.contact_id,
        orders.order_ts as ts
    from contacts
    inner join staging.orders as orders on contacts.customer_id = orders.customer_id
    where orders.status = 'completed' and orders.order_ts < %(run_date)s::date
    union all
    select
        contact_id,
        event_ts as ts
    from staging.email_events
    where
        (event = 'click' or (event = 'open' and not machine_open))
        and contact_id is not null and event_ts < %(run_date)s::date
),

active as (
    select
        bounds.month,
        count(distinct activity.contact_id) as active_contacts
    from bounds
    inner join activity
        on bounds.month_end > activity.ts and activity.ts >= bounds.month_end - interval '90 days'
    group by bounds.month
),

scoring as (
    select
        bounds.month,
        max(scores.as_of) as as_of
    from bounds
    inner join marts.lead_scores as scores on bounds.month_end > scores.as_of and bounds.month <= scores.as_of
    group by bounds.month
),

qualified as (
    select
        scoring.month,
        count(*) as scored_leads,
        count(*) filter (where scores.tier in ('A', 'B')) as qualified_leads
    from scoring
    inner join marts.lead_scores as scores on scoring.as_of = scores.as_of
    group by scoring.month
),

final as (
    select
        bounds.month,
        count(*) filter (where date_trunc('month', contacts.created_at) = bounds.month) as new_contacts,
        count(*) filter (
            where date_trunc('month', contacts.created_at) = bounds.month and contacts.customer_id is null
        ) as new_leads,
        count(contacts.contact_id) as total_contacts,
        coalesce(max(active.active_contacts), 0) as active_contacts,
        max(qualified.scored_leads) as scored_leads,
        max(qualified.qualified_leads) as qualified_leads,
        round(max(qualified.qualified_leads)::numeric / nullif(max(qualified.scored_leads), 0), 6)
            as lead_qualification_rate,
        %(run_date)s::date as as_of_date
    from bounds
    left join contacts on bounds.month_end > contacts.created_at
    left join active on bounds.month = active.month
    left join qualified on bounds.month = qualified.month
    group by bounds.month
)

select * from final
