-- grain: one row per funnel stage (contact, lead, customer)
-- materialized: model
-- The contact → lead → customer funnel as of the run date: every CRM contact; leads are contacts that
-- came in as leads (a lead source, lead lifecycle or lead activity) or became customers; customers are
-- contacts whose shop customer completed an order. Each stage's rate is over the stage before it.
create table if not exists kpis.funnel (
    stage text not null primary key,  -- contact, lead or customer
    stage_order integer not null,  -- 1, 2, 3
    contacts integer not null,  -- Contacts that reached the stage
    rate_from_previous numeric(8, 6),  -- contacts / contacts of the previous stage (null for the first)
    rate_from_first numeric(8, 6),  -- contacts / all contacts
    as_of_date date not null  -- Data before this date was used
)
;;
truncate kpis.funnel
;;
insert into kpis.funnel
with

contacts as (
    select * from staging.contacts
    where created_at is null or created_at < %(run_date)s::date
),

buyers as (
    select distinct customer_id from staging.orders
    where status = 'completed' and order_ts < %(run_date)s::date
),

flags as (
    select
        buyers.customer_id is not null as is_customer,
        buyers.customer_id is not null
        or contacts.lead_source is not null
        or contacts.lifecycle_status = 'lead'
        or coalesce(contacts.page_views, 0) + coalesce(contacts.email_opens, 0)
        + coalesce(contacts.form_submissions, 0) > 0 as is_lead
    from contacts
    left join buyers on contacts.customer_id = buyers.customer_id
),

stages as (
    select
        'contact' as stage,
        1 as stage_order,
        count(*) as contacts
    from flags
    union all
    select
        'lead' as stage,
        2 as stage_order,
        count(*) filter (where is_lead) as contacts
    from flags
    union all
    select
        'customer' as stage,
        3 as stage_order,
        count(*) filter (where is_customer) as contacts
    from flags
),

final as (
    select
        stage,
        stage_order,
        contacts,
        round(contacts::numeric / nullif(lag(contacts) over (order by stage_order), 0), 6) as rate_from_previous,
        round(contacts::numeric / nullif(first_value(contacts) over (order by stage_order), 0), 6)
            as rate_from_first,
        %(run_date)s::date as as_of_date
    from stages
)

select * from final
