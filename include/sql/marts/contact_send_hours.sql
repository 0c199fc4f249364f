-- grain: one row per contact (staging.contacts)
-- materialized: model
-- The local hour at which each contact engages with e-mail, for send-time optimisation
-- (campaign option send_time, martech.campaigns.window). Engagement is the first human open or click of
-- each message (machine opens, e.g. Apple Mail Privacy Protection's prefetches flagged sg_machine_open, are
-- excluded: they say when a proxy fetched the images, not when a person read), dated before the as-of date,
-- in the contact's time zone (unknown zones count as UTC, as the send window does). An hour's score is its
-- count plus half of each neighbouring hour's (circular), so a habit split across 9:55 and 10:05 still wins.
-- A contact with at least 3 engaged messages gets their own best hour (source own); else their cohort's
-- (country, at least 20 engaged messages; source cohort); else everyone's, or 10:00 without any engagement
-- (source default).
create table if not exists marts.contact_send_hours (
    contact_id text primary key, -- CRM contact id (staging.contacts)
    timezone text not null, -- Time zone the hours are in (the contact's, UTC when unknown)
    cohort text not null, -- Fallback cohort: the contact's country (unknown when missing)
    preferred_hour smallint not null check (preferred_hour between 0 and 23), -- Local hour to send at
    source text not null check (source in ('own', 'cohort', 'default')), -- Whose engagement chose the hour
    engaged_messages integer not null, -- The contact's messages with a human open or click before as_of_date
    hour_share double precision, -- Share of those messages first engaged with in preferred_hour (null unless own)
    as_of_date date not null -- Engagement before this date was used
)
;;
truncate marts.contact_send_hours
;;
insert into marts.contact_send_hours
with

contacts as (
    select
        c.contact_id,
        coalesce(z.name, 'UTC') as timezone,
        coalesce(nullif(btrim(c.country), ''), 'unknown') as cohort
    from staging.contacts as c
    left join pg_timezone_names as z on c.timezone = z.name
),

human_events as (
    select
        e.contact_id,
        e.event_ts,
        coalesce(e.send_id, e.message_id, e.event_id) as message_key
    from staging.email_events as e
    where
        e.event in ('open', 'click')
        and not e.machine_open
        and e.contact_id is not null
        and e.event_ts < %(run_date)s::date
),

first_engagement as (
    select distinct on (human_events.contact_id, human_events.message_key)
        human_events.contact_id,
        contacts.cohort,
        extract(hour from human_events.event_ts at time zone contacts.timezone)::integer as local_hour
    from human_events
    inner join contacts on human_events.contact_id = contacts.contact_id
    order by human_events.contact_id, human_events.message_key, human_events.event_ts
),

-- The same scoring for a contact, their cohort and everyone: one row per scope, key and local hour.
engaged_hours as (
    select
        'contact' as scope,
        contact_id as scope_key,
        local_hour
    from first_engagement
    union all
    select
        'cohort' as scope,
        cohort as scope_key,
        local_hour
    from first_engagement
    union all
    select
        'all' as scope,
        'all' as scope_key,
        local_hour
    from first_engagement
),

hour_counts as (
    select
        scope,
        scope_key,
        local_hour,
        count(*) as n
    from engaged_hours
    group by scope, scope_key, local_hour
),

totals as (
    select
        scope,
        scope_key,
        sum(n)::integer as engaged_messages
    from hour_counts
    group by scope, scope_key
),

hours as (
    select generate_series(0, 23) as h
),

scores as (
    select
        hour_counts.scope,
        hour_counts.scope_key,
        hours.h,
        sum(case when hour_counts.local_hour = hours.h then 1.0 else 0.5 end * hour_counts.n) as score,
        sum(case when hour_counts.local_hour = hours.h then hour_counts.n else 0 end) as in_hour
    from hour_counts
    cross join hours
    where mod(hour_counts.local_hour - hours.h + 24, 24) in (0, 1, 23)
    group by hour_counts.scope, hour_counts.scope_key, hours.h
),

best as (
    -- Enough engagement to trust: 3 messages of the contact's own, 20 of a cohort, any of everyone's.
    select distinct on (scores.scope, scores.scope_key)
        scores.scope,
        scores.scope_key,
        scores.h as preferred_hour,
        scores.in_hour::double precision / totals.engaged_messages as hour_share
    from scores
    inner join totals on scores.scope = totals.scope and scores.scope_key = totals.scope_key
    where totals.engaged_messages >= case scores.scope when 'contact' then 3 when 'cohort' then 20 else 1 end
    order by scores.scope asc, scores.scope_key asc, scores.score desc, scores.h asc
),

final as (
    select
        contacts.contact_id,
        contacts.timezone,
        contacts.cohort,
        coalesce(own.preferred_hour, cohort.preferred_hour, overall.preferred_hour, 10)::smallint as preferred_hour,
        case
            when own.scope_key is not null then 'own'
            when cohort.scope_key is not null then 'cohort'
            else 'default'
        end as source,
        coalesce(engaged.engaged_messages, 0) as engaged_messages,
        own.hour_share,
        %(run_date)s::date as as_of_date
    from contacts
    left join best as own on own.scope = 'contact' and contacts.contact_id = own.scope_key
    left join best as cohort on cohort.scope = 'cohort' and contacts.cohort = cohort.scope_key
    left join best as overall on overall.scope = 'all'
    left join totals as engaged on engaged.scope = 'contact' and contacts.contact_id = engaged.scope_key
)

select * from final
