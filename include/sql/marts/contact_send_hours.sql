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

contact_hours as (
    select
        contact_id,
        local_hour,
        count(*) as n
    from first_engagement
    group by contact_id, local_hour
),

contact_totals as (
    select
        contact_id,
        sum(n)::integer as engaged_messages
    from contact_hours
    group by contact_id
),

hours as (
    select generate_series(0, 23) as h
),

contact_scores as (
    select
        contact_hours.contact_id,
        hours.h,
        sum(case when contact_hours.local_hour = hours.h then 1.0 else 0.5 end * contact_hours.n) as score,
        sum(case when contact_hours.local_hour = hours.h then contact_hours.n else 0 end) as in_hour
    from contact_hours
    cross join hours
    where mod(contact_hours.local_hour - hours.h + 24, 24) in (0, 1, 23)
    group by contact_hours.contact_id, hours.h
),

own_best as (
    select distinct on (contact_scores.contact_id)
        contact_scores.contact_id,
        contact_scores.h as preferred_hour,
        contact_scores.in_hour::double precision / contact_totals.engaged_messages as hour_share
    from contact_scores
    inner join contact_totals on contact_scores.contact_id = contact_totals.contact_id
    where contact_totals.engaged_messages >= 3
    order by contact_scores.contact_id asc, contact_scores.score desc, contact_scores.h asc
),

cohort_hours as (
    select
        cohort,
        local_hour,
        count(*) as n
    from first_engagement
    group by cohort, local_hour
),

cohort_totals as (
    select
        cohort,
        sum(n) as engaged_messages
    from cohort_hours
    group by cohort
),

cohort_scores as (
    select
        cohort_hours.cohort,
        hours.h,
        sum(case when cohort_hours.local_hour = hours.h then 1.0 else 0.5 end * cohort_hours.n) as score
    from cohort_hours
    cross join hours
    where mod(cohort_hours.local_hour - hours.h + 24, 24) in (0, 1, 23)
    group by cohort_hours.cohort, hours.h
),

cohort_best as (
    select distinct on (cohort_scores.cohort)
        cohort_scores.cohort,
        cohort_scores.h as preferred_hour
    from cohort_scores
    inner join cohort_totals on cohort_scores.cohort = cohort_totals.cohort
    where cohort_totals.engaged_messages >= 20
    order by cohort_scores.cohort asc, cohort_scores.score desc, cohort_scores.h asc
),

overall_best as (
    select hours.h as preferred_hour
    from first_engagement
    cross join hours
    where mod(first_engagement.local_hour - hours.h + 24, 24) in (0, 1, 23)
    group by hours.h
    order by sum(case when first_engagement.local_hour = hours.h then 1.0 else 0.5 end) desc, hours.h asc
    limit 1
),

final as (
    select
        contacts.contact_id,
        contacts.timezone,
        contacts.cohort,
        coalesce(
            own_best.preferred_hour, cohort_best.preferred_hour, (select o.preferred_hour from overall_best as o), 10
        )::smallint as preferred_hour,
        case
            when own_best.contact_id is not null then 'own'
            when cohort_best.cohort is not null then 'cohort'
            else 'default'
        end as source,
        coalesce(contact_totals.engaged_messages, 0) as engaged_messages,
        own_best.hour_share,
        %(run_date)s::date as as_of_date
    from contacts
    left join own_best on contacts.contact_id = own_best.contact_id
    left join contact_totals on contacts.contact_id = contact_totals.contact_id
    left join cohort_best on contacts.cohort = cohort_best.cohort
)

select * from final
