-- grain: one row per campaign, send day and arm (treatment / holdout)
-- materialized: model
-- Each send day's audience is a cohort followed for the campaign's attribution window: a member
-- converts when its customer completes an order in [send day, send day + window). Holdout members are
-- followed over the same window, so the two arms compare like with like. Windows still open on the
-- as-of date are marked window_complete = false.
create table if not exists kpis.campaign_daily (
    campaign_id text not null,  -- Campaign id (file stem of include/campaigns/<id>.yml)
    send_date date not null,  -- Run date of the campaign run whose audience this row follows
    arm text not null,  -- treatment (sent) or holdout (never sent, the control group)
    members integer not null,  -- Audience members in this arm
    sent integer not null,  -- Messages sent (ledger status sent); 0 for the holdout
    delivered integer not null,  -- Members with a delivered event
    opened integer not null,  -- Members with at least one open event
    clicked integer not null,  -- Members with at least one click event
    bounced integer not null,  -- Members whose message bounced or was dropped
    unsubscribed integer not null,  -- Members who unsubscribed or reported spam
    converted integer not null,  -- Members whose customer completed an order within the attribution window
    revenue numeric(14, 2) not null,  -- Net revenue of those orders within the window
    conversion_rate numeric(8, 6),  -- converted / members
    revenue_per_member numeric(14, 4),  -- revenue / members
    window_days integer not null,  -- Attribution window of the campaign, in days
    window_complete boolean not null,  -- True once the whole window lies before the as-of date
    as_of_date date not null,  -- Data before this date was used
    primary key (campaign_id, send_date, arm)
)
;;
truncate kpis.campaign_daily
;;
insert into kpis.campaign_daily
with

runs as (
    select * from campaigns.campaign_runs
    where run_date < %(run_date)s::date
),

members as (
    select
        m.campaign_id,
        m.run_id,
        runs.run_date,
        runs.conversion_window_days,
        m.contact_id,
        m.arm,
        contacts.customer_id
    from audiences.audience_members as m
    inner join runs on m.campaign_id = runs.campaign_id and m.run_id = runs.run_id
    left join staging.contacts as contacts on m.contact_id = contacts.contact_id
),

sends as (
    select
        campaign_id,
        run_id,
        contact_id,
        send_id
    from campaigns.send_ledger
    where status = 'sent'
),

events as (
    select
        send_id,
        bool_or(event = 'delivered') as delivered,
        bool_or(event = 'open') as opened,
        bool_or(event = 'click') as clicked,
        bool_or(event in ('bounce', 'dropped')) as bounced,
        bool_or(event in ('unsubscribe', 'spamreport')) as unsubscribed
    from staging.email_events
    where event_ts < %(run_date)s::date
    group by send_id
),

conversions as (
    select
        members.campaign_id,
        members.run_id,
        members.contact_id,
        count(orders.order_id) as orders,
        coalesce(sum(orders.net_amount), 0) as revenue
    from members
    inner join staging.orders as orders
        on
            members.customer_id = orders.customer_id
            and orders.status = 'completed'
            and members.run_date <= orders.order_ts
            and orders.order_ts < members.run_date + members.conversion_window_days
            and orders.order_ts < %(run_date)s::date
    group by members.campaign_id, members.run_id, members.contact_id
),

per_member as (
    select
        members.campaign_id,
        members.run_date,
        members.arm,
        members.conversion_window_days,
        sends.send_id is not null as sent,
        coalesce(events.delivered, false) as delivered,
        coalesce(events.opened, false) as opened,
        coalesce(events.clicked, false) as clicked,
        coalesce(events.bounced, false) as bounced,
        coalesce(events.unsubscribed, false) as unsubscribed,
        coalesce(conversions.orders, 0) > 0 as converted,
        coalesce(conversions.revenue, 0) as revenue
    from members
    left join sends
        on
            members.campaign_id = sends.campaign_id
            and members.run_id = sends.run_id
            and members.contact_id = sends.contact_id
    left join events on sends.send_id = events.send_id
    left join conversions
        on
            members.campaign_id = conversions.campaign_id
            and members.run_id = conversions.run_id
            and members.contact_id = conversions.contact_id
),

final as (
    select
        campaign_id,
        run_date as send_date,
        arm,
        count(*) as members,
        count(*) filter (where sent) as sent,
        count(*) filter (where delivered) as delivered,
        count(*) filter (where opened) as opened,
        count(*) filter (where clicked) as clicked,
        count(*) filter (where bounced) as bounced,
        count(*) filter (where unsubscribed) as unsubscribed,
        count(*) filter (where converted) as converted,
        sum(revenue) as revenue,
        round(count(*) filter (where converted)::numeric / count(*), 6) as conversion_rate,
        round(sum(revenue) / count(*), 4) as revenue_per_member,
        max(conversion_window_days) as window_days,
        run_date + max(conversion_window_days) <= %(run_date)s::date as window_complete,
        %(run_date)s::date as as_of_date
    from per_member
    group by campaign_id, run_date, arm
)

select * from final
