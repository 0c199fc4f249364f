-- grain: one row per campaign, step, send day and exclusion reason
-- materialized: model
-- Contacts the audience SQL returned but the snapshot left out, by reason (a contact left out for two
-- reasons counts under both). Together with kpis.campaign_daily: audience = members + excluded.
create table if not exists kpis.campaign_exclusions (
    campaign_id text not null,  -- Campaign id
    step integer not null,  -- Step of a series (1 for single messages)
    send_date date not null,  -- Run date of the campaign run
    reason text not null,  -- Why the contacts were left out (audiences.exclusions.reason, docs/campaigns.md)
    contacts integer not null,  -- Contacts left out for this reason
    excluded integer not null,  -- Distinct contacts left out of the run for any reason
    audience integer not null,  -- Candidates of the run: members + distinct excluded contacts
    as_of_date date not null,  -- Data before this date was used
    primary key (campaign_id, step, send_date, reason)
)
;;
truncate kpis.campaign_exclusions
;;
insert into kpis.campaign_exclusions
with

runs as (
    select
        campaign_id,
        run_id,
        run_date
    from campaigns.campaign_runs
    where run_date < %(run_date)s::date
),

exclusions as (
    select
        e.campaign_id,
        e.run_id,
        runs.run_date,
        coalesce(e.step, 1) as step,
        e.reason,
        e.contact_id
    from audiences.exclusions as e
    inner join runs on e.campaign_id = runs.campaign_id and e.run_id = runs.run_id
),

members as (
    select
        m.campaign_id,
        m.run_id,
        count(*) as members
    from audiences.audience_members as m
    inner join runs on m.campaign_id = runs.campaign_id and m.run_id = runs.run_id
    group by m.campaign_id, m.run_id
),

per_run as (
    select
        campaign_id,
        run_id,
        count(distinct contact_id) as excluded
    from exclusions
    group by campaign_id, run_id
),

final as (
    select
        e.campaign_id,
        e.step,
        e.run_date as send_date,
        e.reason,
        count(*) as contacts,
        max(per_run.excluded) as excluded,
        max(per_run.excluded) + coalesce(max(members.members), 0) as audience,
        %(run_date)s::date as as_of_date
    from exclusions as e
    inner join per_run on e.campaign_id = per_run.campaign_id and e.run_id = per_run.run_id
    left join members on e.campaign_id = members.campaign_id and e.run_id = members.run_id
    group by e.campaign_id, e.step, e.run_date, e.reason
)

select * from final
