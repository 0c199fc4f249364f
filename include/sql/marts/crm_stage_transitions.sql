-- grain: one row per CRM contact, stage property and transition (from_stage -> to_stage at changed_at)
-- materialized: model
-- Transitions of HubSpot's lifecycle stage and lead status, read from the successive versions of each
-- contact landed in raw.hubspot_contacts up to the run's cutoff (one version per lastmodifieddate). A
-- transition is a version whose value differs from the contact's previous non-empty value; its time is
-- that version's lastmodifieddate (the change happened at or before it). A contact's first value is
-- not a transition. Rebuilt whole on every run; as_of names the run. Values are lower case.
create table if not exists marts.crm_stage_transitions (
    as_of date not null, -- Run date of the build (versions landed before its midnight UTC)
    contact_id text not null, -- CRM contact (staging.contacts.contact_id, 'hubspot:<id>')
    stage_property text not null, -- lifecyclestage or hs_lead_status
    from_stage text not null, -- Value in the previous version
    to_stage text not null, -- Value in this version
    changed_at timestamptz not null, -- lastmodifieddate of the first version with to_stage
    primary key (contact_id, stage_property, changed_at)
)
;;
delete from marts.crm_stage_transitions
;;
insert into marts.crm_stage_transitions
with

landed as (
    select
        'hubspot:' || staging.clean(h.contact_id) as contact_id,
        staging.try_ts(
            case
                when trim(h.lastmodifieddate) ~ '^[0-9]{11,14}$'
                    then to_char(
                        to_timestamp(trim(h.lastmodifieddate)::bigint / 1000.0) at time zone 'UTC',
                        'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
                    )
                else h.lastmodifieddate
            end
        ) as modified_at,
        lower(staging.clean(h.lifecyclestage)) as lifecyclestage,
        lower(staging.clean(h.hs_lead_status)) as hs_lead_status,
        h._loaded_at
    from raw.hubspot_contacts as h
    where
        h._loaded_at <= %(run_ts)s
        and staging.clean(h.contact_id) is not null
),

versions as (
    select distinct on (l.contact_id, l.modified_at)
        l.contact_id,
        l.modified_at,
        l.lifecyclestage,
        l.hs_lead_status
    from landed as l
    where l.modified_at is not null
    order by l.contact_id asc, l.modified_at asc, l._loaded_at desc
),

stage_values as (
    select
        v.contact_id,
        'lifecyclestage' as stage_property,
        v.lifecyclestage as stage,
        v.modified_at
    from versions as v
    where v.lifecyclestage is not null
    union all
    select
        v.contact_id,
        'hs_lead_status' as stage_property,
        v.hs_lead_status as stage,
        v.modified_at
    from versions as v
    where v.hs_lead_status is not null
),

sequenced as (
    select
        s.contact_id,
        s.stage_property,
        s.stage,
        s.modified_at,
        lag(s.stage) over (
            partition by s.contact_id, s.stage_property order by s.modified_at
        ) as previous_stage
    from stage_values as s
),

final as (
    select
        %(run_date)s::date as as_of,
        q.contact_id,
        q.stage_property,
        q.previous_stage as from_stage,
        q.stage as to_stage,
        q.modified_at as changed_at
    from sequenced as q
    where q.previous_stage is not null and q.previous_stage <> q.stage
)

select * from final
