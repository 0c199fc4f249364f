-- grain: one row per campaign, plus one row '*' for all campaigns together
-- materialized: model
-- Engagement of the treatment arm over every send day in kpis.campaign_daily (which it is built from):
-- rates over delivered messages, click-to-open over human openers, bounces over sent messages. Revenue
-- attributed to campaigns (after a click or human open, docs/kpis.md) next to all completed revenue of the
-- same days.
create table if not exists kpis.engagement (
    campaign_id text not null primary key,  -- Campaign id, or * for all campaigns
    sent integer not null,  -- Messages sent
    delivered integer not null,  -- Members with a delivered event
    opened integer not null,  -- Members with a human open
    machine_opened integer not null,  -- Members with a machine open
    clicked integer not null,  -- Members with a click
    unsubscribed integer not null,  -- Members who unsubscribed
    spam_reported integer not null,  -- Members who reported spam
    bounced integer not null,  -- Members whose message bounced or was dropped
    open_rate numeric(8, 6),  -- opened / delivered
    click_rate numeric(8, 6),  -- clicked / delivered
    click_to_open_rate numeric(8, 6),  -- clicked / opened
    unsubscribe_rate numeric(8, 6),  -- unsubscribed / delivered
    spam_rate numeric(8, 6),  -- spam_reported / delivered
    bounce_rate numeric(8, 6),  -- bounced / sent
    conversion_rate numeric(8, 6),  -- Treatment members who converted within the window / treatment members
    attributed_revenue numeric(14, 2) not null,  -- Revenue attributed to the campaign's mails
    first_send_date date,  -- First send day counted
    last_send_date date,  -- Last send day counted
    as_of_date date not null  -- Data before this date was used
)
;;
truncate kpis.engagement
;;
insert into kpis.engagement
with

treatment as (
    select * from kpis.campaign_daily
    where arm = 'treatment' and as_of_date = %(run_date)s::date
),

per_campaign as (
    select
        campaign_id,
        sum(sent) as sent,
        sum(delivered) as delivered,
        sum(opened) as opened,
        sum(machine_opened) as machine_opened,
        sum(clicked) as clicked,
        sum(unsubscribed) as unsubscribed,
        sum(spam_reported) as spam_reported,
        sum(bounced) as bounced,
        sum(converted) as converted,
        sum(members) as members,
        sum(attributed_revenue) as attributed_revenue,
        min(send_date) as first_send_date,
        max(send_date) as last_send_date
    from treatment
    group by grouping sets ((campaign_id), ())
),

final as (
    select
        coalesce(campaign_id, '*') as campaign_id,
        sent,
        delivered,
        opened,
        machine_opened,
        clicked,
        unsubscribed,
        spam_reported,
        bounced,
        round(opened::numeric / nullif(delivered, 0), 6) as open_rate,
        round(clicked::numeric / nullif(delivered, 0), 6) as click_rate,
        round(clicked::numeric / nullif(opened, 0), 6) as click_to_open_rate,
        round(unsubscribed::numeric / nullif(delivered, 0), 6) as unsubscribe_rate,
        round(spam_reported::numeric / nullif(delivered, 0), 6) as spam_rate,
        round(bounced::numeric / nullif(sent, 0), 6) as bounce_rate,
        round(converted::numeric / nullif(members, 0), 6) as conversion_rate,
        attributed_revenue,
        first_send_date,
        last_send_date,
        %(run_date)s::date as as_of_date
    from per_campaign
    where campaign_id is not null or exists (select 1 from treatment)
)

select * from final
