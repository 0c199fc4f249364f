-- grain: one row per campaign run member (campaign, run, contact): what was sent, what happened, what it bought
-- materialized: model
-- The per-person base of kpis.campaign_daily and kpis.campaign_uplift (it holds contact ids, so it stays
-- in the campaigns schema). A member converts when its customer completes an order in
-- [send day, send day + attribution window); an order is attributed to the mail when it follows a click
-- within click_window_days or a human open within open_window_days. Only data before the as-of date.
create table if not exists campaigns.member_outcomes (
    campaign_id text not null,  -- Campaign id
    run_id text not null,  -- Campaign run id (per step)
    run_date date not null,  -- Run date (the send day)
    conversion_window_days integer not null,  -- Attribution window of the run, in days
    step integer not null,  -- Step of a series (1 for single messages)
    variant text not null,  -- A/B variant assigned
    contact_id text not null,  -- Audience member
    arm text not null,  -- treatment or holdout
    customer_id bigint,  -- The member's shop customer (null for leads)
    sent boolean not null,  -- A ledger row with status sent exists
    delivered boolean not null,  -- A delivered event was received
    opened boolean not null,  -- A human open was received (machine opens excluded)
    machine_opened boolean not null,  -- A machine open (sg_machine_open) was received
    clicked boolean not null,  -- A click was received
    bounced boolean not null,  -- A bounce or drop was received
    unsubscribed boolean not null,  -- An unsubscribe or group unsubscribe was received
    spam_reported boolean not null,  -- A spam report was received
    first_click timestamptz,  -- First click
    first_open timestamptz,  -- First human open
    converted boolean not null,  -- A completed order within the attribution window
    revenue numeric(14, 2) not null,  -- Net revenue of the orders within the window
    attributed boolean not null,  -- An order within the click or open window
    attributed_revenue numeric(14, 2) not null,  -- Net revenue of the attributed orders
    as_of_date date not null,  -- Data before this date was used
    primary key (campaign_id, run_id, contact_id)
)
;;
truncate campaigns.member_outcomes
;;
insert into campaigns.member_outcomes
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
        coalesce(m.step, 1) as step,
        m.variant,
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
        bool_or(event = 'open' and not machine_open) as opened,
        bool_or(event = 'open' and machine_open) as machine_opened,
        bool_or(event = 'click') as clicked,
        bool_or(event in ('bounce', 'dropped')) as bounced,
        bool_or(event in ('unsubscribe', 'group_unsubscribe')) as unsubscribed,
        bool_or(event = 'spamreport') as spam_reported,
        min(event_ts) filter (where event = 'click') as first_click,
        min(event_ts) filter (where event = 'open' and not machine_open) as first_open
    from staging.email_events
    where event_ts < %(run_date)s::date
    group by send_id
),

completed_orders as (
    select
        customer_id,
        order_ts,
        net_amount
    from staging.orders
    where status = 'completed' and order_ts < %(run_date)s::date
),

per_member as (
    select
        members.*,
        sends.send_id is not null as sent,
        coalesce(events.delivered, false) as delivered,
        coalesce(events.opened, false) as opened,
        coalesce(events.machine_opened, false) as machine_opened,
        coalesce(events.clicked, false) as clicked,
        coalesce(events.bounced, false) as bounced,
        coalesce(events.unsubscribed, false) as unsubscribed,
        coalesce(events.spam_reported, false) as spam_reported,
        events.first_click,
        events.first_open
    from members
    left join sends
        on
            members.campaign_id = sends.campaign_id
            and members.run_id = sends.run_id
            and members.contact_id = sends.contact_id
    left join events on sends.send_id = events.send_id
),

member_orders as (
    select
        per_member.campaign_id,
        per_member.run_id,
        per_member.contact_id,
        o.net_amount,
        per_member.run_date <= o.order_ts
        and o.order_ts < per_member.run_date + per_member.conversion_window_days as in_window,
        coalesce(
            per_member.first_click <= o.order_ts
            and o.order_ts < per_member.first_click + make_interval(days => %(click_window_days)s), false
        )
        or coalesce(
            per_member.first_open <= o.order_ts
            and o.order_ts < per_member.first_open + make_interval(days => %(open_window_days)s), false
        ) as attributed
    from per_member
    inner join completed_orders as o on per_member.customer_id = o.customer_id
),

conversions as (
    select
        campaign_id,
        run_id,
        contact_id,
        count(*) filter (where in_window) as orders,
        coalesce(sum(net_amount) filter (where in_window), 0) as revenue,
        count(*) filter (where attributed) as attributed_orders,
        coalesce(sum(net_amount) filter (where attributed), 0) as attributed_revenue
    from member_orders
    group by campaign_id, run_id, contact_id
),

-- In the table's column order: members, their send and events, then their orders.
final as (
    select
        per_member.*,
        coalesce(conversions.orders, 0) > 0 as converted,
        coalesce(conversions.revenue, 0) as revenue,
        coalesce(conversions.attributed_orders, 0) > 0 as attributed,
        coalesce(conversions.attributed_revenue, 0) as attributed_revenue,
        %(run_date)s::date as as_of_date
    from per_member
    left join conversions
        on
            per_member.campaign_id = conversions.campaign_id
            and per_member.run_id = conversions.run_id
            and per_member.contact_id = conversions.contact_id
)

select * from final
