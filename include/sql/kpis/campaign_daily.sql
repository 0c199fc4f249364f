-- grain: one row per campaign, step, variant, arm (treatment / holdout) and send day
-- materialized: model
-- Each send day's audience is a cohort followed for the campaign's attribution window: a member
-- converts when its customer completes an order in [send day, send day + window). Holdout members are
-- followed over the same window, so the two arms compare like with like (kpis.campaign_uplift). The
-- attributed columns credit the mail only for orders soon after a click or a human open (windows as
-- parameters). Machine opens (sg_machine_open, e.g. Apple Mail Privacy Protection) are counted apart and
-- never as human opens. Contacts left out of the audience have no arm: see kpis.campaign_exclusions.
-- Per-member outcomes: campaigns.member_outcomes. Formulas: docs/kpis.md.
create table if not exists kpis.campaign_daily (
    campaign_id text not null,  -- Campaign id (file stem of include/campaigns/<id>.yml)
    send_date date not null,  -- Run date of the campaign run whose audience this row follows
    arm text not null,  -- treatment (sent) or holdout (never sent, the control group)
    members integer not null,  -- Eligible audience members in this arm and variant
    sent integer not null,  -- Messages sent (ledger status sent); 0 for the holdout
    delivered integer not null,  -- Members with a delivered event
    opened integer not null,  -- Members with at least one human open (machine opens excluded)
    clicked integer not null,  -- Members with at least one click event
    bounced integer not null,  -- Members whose message bounced or was dropped
    unsubscribed integer not null,  -- Members who unsubscribed (list or group, or one-click)
    converted integer not null,  -- Members whose customer completed an order within the attribution window
    revenue numeric(14, 2) not null,  -- Net revenue of those orders within the window
    conversion_rate numeric(8, 6),  -- converted / members
    revenue_per_member numeric(14, 4),  -- revenue / members
    window_days integer not null,  -- Attribution window of the campaign, in days
    window_complete boolean not null,  -- True once the whole window lies before the as-of date
    as_of_date date not null,  -- Data before this date was used
    step integer not null default 1,  -- Step of a series (1 for single messages)
    variant text not null default '',  -- A/B variant id the members were assigned
    machine_opened integer not null default 0,  -- Members with a machine open (sg_machine_open)
    spam_reported integer not null default 0,  -- Members who reported the mail as spam
    attributed_conversions integer not null default 0,  -- Members with an order within the click or open window after a click or human open
    attributed_revenue numeric(14, 2) not null default 0,  -- Net revenue of those attributed orders
    revenue_per_recipient numeric(14, 4),  -- attributed_revenue / sent (null without sends)
    cost numeric(14, 4) not null default 0,  -- sent × cost per send
    roi numeric(14, 4),  -- (attributed_revenue − cost) / cost (null when cost is 0); incremental ROI: kpis.campaign_uplift
    click_window_days integer not null default 7,  -- Attribution window after a click, in days
    open_window_days integer not null default 1  -- Attribution window after a human open, in days
)
;;
-- Warehouses built before steps and variants get the new columns and key once (a no-op afterwards).
alter table kpis.campaign_daily add column if not exists step integer not null default 1
;;
alter table kpis.campaign_daily add column if not exists variant text not null default ''
;;
alter table kpis.campaign_daily add column if not exists machine_opened integer not null default 0
;;
alter table kpis.campaign_daily add column if not exists spam_reported integer not null default 0
;;
alter table kpis.campaign_daily add column if not exists attributed_conversions integer not null default 0
;;
alter table kpis.campaign_daily add column if not exists attributed_revenue numeric(14, 2) not null default 0
;;
alter table kpis.campaign_daily add column if not exists revenue_per_recipient numeric(14, 4)
;;
alter table kpis.campaign_daily add column if not exists cost numeric(14, 4) not null default 0
;;
alter table kpis.campaign_daily add column if not exists roi numeric(14, 4)
;;
alter table kpis.campaign_daily add column if not exists click_window_days integer not null default 7
;;
alter table kpis.campaign_daily add column if not exists open_window_days integer not null default 1
;;
truncate kpis.campaign_daily
;;
alter table kpis.campaign_daily drop constraint if exists campaign_daily_pkey
;;
alter table kpis.campaign_daily add constraint campaign_daily_pkey primary key (
    campaign_id, step, variant, arm, send_date
)
;;
insert into kpis.campaign_daily (
    campaign_id, step, variant, arm, send_date, members, sent, delivered, opened, machine_opened, clicked,
    bounced, unsubscribed, spam_reported, converted, revenue, conversion_rate, revenue_per_member,
    attributed_conversions, attributed_revenue, revenue_per_recipient, cost, roi, window_days,
    window_complete, click_window_days, open_window_days, as_of_date
)
with

counted as (
    select
        campaign_id,
        step,
        variant,
        arm,
        run_date as send_date,
        count(*) as members,
        count(*) filter (where sent) as sent,
        count(*) filter (where delivered) as delivered,
        count(*) filter (where opened) as opened,
        count(*) filter (where machine_opened) as machine_opened,
        count(*) filter (where clicked) as clicked,
        count(*) filter (where bounced) as bounced,
        count(*) filter (where unsubscribed) as unsubscribed,
        count(*) filter (where spam_reported) as spam_reported,
        count(*) filter (where converted) as converted,
        sum(revenue) as revenue,
        count(*) filter (where attributed) as attributed_conversions,
        sum(attributed_revenue) as attributed_revenue,
        max(conversion_window_days) as window_days
    from campaigns.member_outcomes
    where as_of_date = %(run_date)s::date
    group by campaign_id, step, variant, arm, run_date
),

final as (
    select
        campaign_id,
        step,
        variant,
        arm,
        send_date,
        members,
        sent,
        delivered,
        opened,
        machine_opened,
        clicked,
        bounced,
        unsubscribed,
        spam_reported,
        converted,
        revenue,
        round(converted::numeric / members, 6) as conversion_rate,
        round(revenue / members, 4) as revenue_per_member,
        attributed_conversions,
        attributed_revenue,
        round(attributed_revenue / nullif(sent, 0), 4) as revenue_per_recipient,
        sent * %(cost_per_send)s::numeric as cost,
        round((attributed_revenue - sent * %(cost_per_send)s::numeric) / nullif(sent * %(cost_per_send)s::numeric, 0), 4)
            as roi,
        window_days,
        send_date + window_days <= %(run_date)s::date as window_complete,
        %(click_window_days)s::integer as click_window_days,
        %(open_window_days)s::integer as open_window_days,
        %(run_date)s::date as as_of_date
    from counted
)

select * from final
