-- grain: one row per person in the CRM (one contact per normalized e-mail address; latest version)
-- materialized: model
-- Fed by the CRM export files (raw.crm_contacts) and, when that source is enabled, HubSpot
-- (raw.hubspot_contacts; contact ids prefixed 'hubspot:', opt-outs as consent 'opted_out', everything
-- else 'unknown' — never mailed until the CRM export records a consent). A person in both is one contact.
-- Every raw row ends as exactly one of: staged, quarantined (raw.quarantine), superseded by a newer
-- version, an identical copy, or merged into the contact with the same address (staging.merged_rows).
-- Repairs are recorded in staging.corrections (kinds: martech.simulate.defects). A version updated at or
-- after the run's cutoff is held (raw.quarantine, future_updated_at; every later run examines it again).
-- Without any CRM export or HubSpot row (shop export files only), every live shop customer becomes a
-- contact of its own ('shop:<customer_id>', derived_from 'staging.customers') so the customer-level marts
-- are built; the shop's files carry no consent, so these contacts are 'unknown' and mailed to nobody
-- until a CRM export records a consent (martech.staging.contacts says so in the staging run's summary).
create table if not exists staging.contacts (
    contact_id text primary key,
    email text,
    first_name text,
    last_name text,
    birthday date,
    country text,
    timezone text,
    consent_status text not null,
    consent_updated_at timestamptz,
    lifecycle_status text,
    customer_id bigint,
    created_at timestamptz,
    updated_at timestamptz,
    lead_source text, -- How the lead came in (CRM property); null when not exported
    page_views integer, -- Lead activity: web page views recorded by the CRM
    email_opens integer, -- Lead activity: marketing e-mails opened
    form_submissions integer, -- Lead activity: forms submitted
    derived_from text, -- staging.customers for a contact made from a shop customer (no CRM export); else null
    region text, -- ISO 3166-2 region code within the contact's country (null when unknown)
    language text -- Preferred language, ISO 639-1 lower case (null when unknown)
)
;;
-- Audiences and the KPIs reach a shop customer's contact by customer id.
create index if not exists contacts__customer_id on staging.contacts (customer_id)
;;
alter table staging.contacts add column if not exists lead_source text
;;
alter table staging.contacts add column if not exists page_views integer
;;
alter table staging.contacts add column if not exists email_opens integer
;;
alter table staging.contacts add column if not exists form_submissions integer
;;
alter table staging.contacts add column if not exists derived_from text
;;
alter table staging.contacts add column if not exists region text
;;
alter table staging.contacts add column if not exists language text
;;
select staging.begin_checked('raw.crm_contacts')
;;
select staging.begin_checked('raw.hubspot_contacts')
;;
create temporary table _checked on commit drop as
with

received_rows as (
    select
        'raw.crm_contacts' as raw_table,
        r.ctid as row_position,
        r._source_file || ':' || r._line_no as source_ref,
        r.contact_id, r.email, r.first_name, r.last_name, r.birthday, r.country, r.timezone, r.consent_status,
        r.consent_updated_at, r.lifecycle_status, r.shop_customer_id, r.created_at, r.updated_at, r.lead_source,
        r.page_views, r.email_opens, r.form_submissions, r.region, r.language, r._line_no, r._batch_id,
        r._loaded_at
    from raw.crm_contacts as r
    where r._loaded_at <= %(run_ts)s
    union all
    select
        'raw.hubspot_contacts',
        h.row_position,
        'hubspot:' || coalesce(h.contact_id, ''),
        'hubspot:' || staging.clean(h.contact_id),
        h.email, h.firstname, h.lastname, null, h.country, null,
        case when lower(staging.clean(h.hs_email_optout)) = 'true' then 'opted_out' else 'unknown' end,
        -- An opt-out is a consent decision as of the record's last change; "not opted out" is none.
        case when lower(staging.clean(h.hs_email_optout)) = 'true' then h.m_lastmodified end,
        case
            when lower(staging.clean(h.lifecyclestage)) in ('customer', 'evangelist') then 'customer'
            when lower(staging.clean(h.lifecyclestage)) in (
                'subscriber', 'lead', 'marketingqualifiedlead', 'salesqualifiedlead', 'opportunity') then 'lead'
            when staging.clean(h.lifecyclestage) is not null then 'other'
        end,
        null, h.m_created, h.m_lastmodified, null, null, null, null, null, null, 0, h._batch_id, h._loaded_at
    from (
        -- HubSpot writes datetimes as ISO 8601 or as epoch milliseconds.
        select
            x.*,
            x.ctid as row_position,
            case when trim(x.createdate) ~ '^[0-9]{11,14}$'
                 then to_char(to_timestamp(trim(x.createdate)::bigint / 1000.0) at time zone 'UTC',
                              'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                 else x.createdate end as m_created,
            case when trim(x.lastmodifieddate) ~ '^[0-9]{11,14}$'
                 then to_char(to_timestamp(trim(x.lastmodifieddate)::bigint / 1000.0) at time zone 'UTC',
                              'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                 else x.lastmodifieddate end as m_lastmodified
        from raw.hubspot_contacts as x
        where x._loaded_at <= %(run_ts)s
    ) as h
),

source as materialized (
    select
        r.*,
        staging.clean(r.contact_id) as k_contact_id,
        staging.clean(r.email) as t_email,
        staging.fix_mojibake(r.first_name) as fn_decoded,
        staging.fix_mojibake(r.last_name) as ln_decoded,
        nullif(trim(r.birthday), '') as t_birthday,
        upper(nullif(trim(r.country), '')) as t_country,
        nullif(trim(r.timezone), '') as t_timezone,
        lower(nullif(trim(r.consent_status), '')) as t_consent,
        upper(nullif(trim(r.region), '')) as t_region,
        lower(nullif(trim(r.language), '')) as t_language
    from received_rows as r
),

cleaned as materialized (
    select
        s.*,
        nullif(staging.strip_markup(s.fn_decoded), '') as fn_stripped,
        nullif(staging.strip_markup(s.ln_decoded), '') as ln_stripped,
        staging.try_date(s.t_birthday) as birthday_date,
        staging.try_ts(s.created_at) as created_ts,
        staging.try_ts(s.updated_at) as updated_ts,
        staging.try_ts(s.consent_updated_at) as consent_ts,
        s.t_country in (select rc.country_code from staging.ref_countries as rc) as country_ok,
        s.t_timezone in (select tz.name from pg_timezone_names as tz) as timezone_ok,
        s.t_consent in ('opted_in', 'double_opt_in', 'opted_out', 'unknown') as consent_ok,
        -- A region is an ISO 3166-2 code of the contact's own (known) country.
        coalesce(s.t_region ~ '^[A-Z]{2}-[A-Z0-9]{1,3}$' and left(s.t_region, 2) = s.t_country, false) as region_ok,
        coalesce(s.t_language ~ '^[a-z]{2}$', false) as language_ok
    from source as s
),

judged as materialized (
    select
        c.*,
        case
            when c.k_contact_id is null then 'missing_key'
            when c.t_email is not null and not staging.is_email(c.t_email) then 'invalid_email'
            when c.updated_ts >= %(run_ts)s then 'future_updated_at'
        end as reject_code,
        case
            when c.k_contact_id is null then 'contact_id is empty; every CRM row needs its contact id'
            when c.t_email is not null and not staging.is_email(c.t_email)
                then 'email ' || quote_literal(c.t_email)
                     || ' is not an address (name@domain.tld); fix it in the CRM, the contact is not staged'
                     || ' until it parses'
            when c.updated_ts >= %(run_ts)s then staging.future_reason('updated_at', c.updated_at, %(run_ts)s)
        end as reject_reason,
        left(c.fn_stripped, 200) as c_first_name,
        left(c.ln_stripped, 200) as c_last_name,
        case
            when c.birthday_date between date '1900-01-01' and %(run_date)s::date then c.birthday_date
        end as c_birthday,
        case when c.country_ok then c.t_country end as c_country,
        case when c.timezone_ok then c.t_timezone end as c_timezone,
        case when c.consent_ok then c.t_consent else 'unknown' end as c_consent,
        case when c.region_ok and c.country_ok then c.t_region end as c_region,
        case when c.language_ok then c.t_language end as c_language,
        md5(concat_ws('|', c.contact_id, c.email, c.first_name, c.last_name, c.birthday, c.country, c.timezone,
                      c.consent_status, c.consent_updated_at, c.lifecycle_status, c.shop_customer_id,
                      c.created_at, c.updated_at, c.lead_source, c.page_views, c.email_opens,
                      c.form_submissions, c.region, c.language)) as content_hash
    from cleaned as c
),

ranked as (
    select
        j.*,
        row_number() over versions as version_rank,
        -- An identical copy sorts next to the row it copies (same times), so one window finds both.
        coalesce(lag(j.content_hash) over versions = j.content_hash
                 and lag(j._batch_id) over versions = j._batch_id, false) as is_copy
    from judged as j
    window versions as (
        partition by j.reject_code is null, j.k_contact_id
        order by j.updated_ts desc nulls last, j._loaded_at desc, j._line_no desc)
),

identities as (
    -- One contact per normalized address: the oldest contact survives.
    select
        r.*,
        lower(r.t_email) as match_email,
        case when r.reject_code is null and r.version_rank = 1 and r.t_email is not null
            then first_value(r.k_contact_id) over (
                partition by r.reject_code is null and r.version_rank = 1, lower(r.t_email)
            order by r.created_ts nulls last, r.k_contact_id) end as surviving_contact_id
    from ranked as r
)

select
    i.*,
    i.k_contact_id as row_key,
    staging.disposition(i.reject_code, i.version_rank, i.is_copy,
                        coalesce(i.surviving_contact_id <> i.k_contact_id, false)) as disposition
from identities as i
;;
insert into staging.merged_rows (run_date, table_name, kind, merged_key, surviving_key, source_ref, batch_id, match_key)
select
    %(run_date)s, c.raw_table, 'email_case_duplicate', c.k_contact_id, c.surviving_contact_id,
    c.source_ref, c._batch_id, c.match_email
from _checked as c
where c.disposition = 'merged'
union all
select %(run_date)s, c.raw_table, 'duplicate_row', c.row_key as merged_key, c.row_key as surviving_key, c.source_ref, c._batch_id, c.content_hash
from _checked as c
where c.disposition = 'duplicate'
;;
-- Two versions of one contact with the same updated_at and different content: the one staged is named.
insert into staging.corrections
    (run_date, table_name, row_key, source_ref, batch_id, kind, field, original_value, corrected_value)
select
    %(run_date)s, c.raw_table, c.row_key, c.source_ref, c._batch_id, 'conflicting_version', 'updated_at',
    c.updated_at, 'kept the version at ' || s.source_ref
from _checked as c
inner join _checked as s
    on c.k_contact_id = s.k_contact_id and s.disposition in ('staged', 'merged')
where c.disposition = 'superseded' and c.updated_ts = s.updated_ts and c.content_hash <> s.content_hash
;;
insert into staging.corrections
    (run_date, table_name, row_key, source_ref, batch_id, kind, field, original_value, corrected_value)
select %(run_date)s, c.raw_table, c.row_key, c.source_ref, c._batch_id, f.kind, f.field, f.original, f.corrected
from _checked as c
cross join lateral (
    values
        ('email_padding', 'email', c.email, c.t_email, c.email <> c.t_email),
        -- HubSpot sends no birthday at all: only an export that has the column can leave it empty.
        ('null_birthday', 'birthday', c.birthday, null, c.t_birthday is null and c.raw_table = 'raw.crm_contacts'),
        ('impossible_birthday', 'birthday', c.birthday, null, c.t_birthday is not null and c.c_birthday is null),
        ('naive_timestamp', 'created_at', c.created_at, c.created_ts::text,
         c.created_ts is not null and staging.is_naive_ts(c.created_at)),
        ('naive_timestamp', 'updated_at', c.updated_at, c.updated_ts::text,
         c.updated_ts is not null and staging.is_naive_ts(c.updated_at)),
        ('naive_timestamp', 'consent_updated_at', c.consent_updated_at, c.consent_ts::text,
         c.consent_ts is not null and staging.is_naive_ts(c.consent_updated_at)),
        ('invalid_timestamp', 'created_at', c.created_at, null, c.created_at is not null and c.created_ts is null),
        ('invalid_timestamp', 'updated_at', c.updated_at, null, c.updated_at is not null and c.updated_ts is null),
        ('invalid_timestamp', 'consent_updated_at', c.consent_updated_at, null,
         c.consent_updated_at is not null and c.consent_ts is null),
        ('wrong_encoding', 'first_name', c.first_name, c.fn_decoded, c.fn_decoded <> c.first_name),
        ('wrong_encoding', 'last_name', c.last_name, c.ln_decoded, c.ln_decoded <> c.last_name),
        ('markup_in_name', 'first_name', c.first_name, c.fn_stripped, c.fn_decoded ~ '<[^>]*>'),
        ('markup_in_name', 'last_name', c.last_name, c.ln_stripped, c.ln_decoded ~ '<[^>]*>'),
        ('overlong_name', 'first_name', c.first_name, c.c_first_name, length(c.fn_stripped) > 200),
        ('overlong_name', 'last_name', c.last_name, c.c_last_name, length(c.ln_stripped) > 200),
        ('unknown_country', 'country', c.country, null, c.t_country is not null and not c.country_ok),
        ('unknown_timezone', 'timezone', c.timezone, null, c.t_timezone is not null and not c.timezone_ok),
        -- A region is judged against a known country only (an unknown country leaves it unknown too).
        ('unknown_region', 'region', c.region, null, c.t_region is not null and c.country_ok and not c.region_ok),
        ('unknown_language', 'language', c.language, null, c.t_language is not null and not c.language_ok),
        ('invalid_consent_status', 'consent_status', c.consent_status, 'unknown',
         c.t_consent is not null and not c.consent_ok)
) as f (kind, field, original, corrected, applies)
where c.disposition <> 'quarantined' and f.applies
;;
truncate staging.contacts
;;
insert into staging.contacts
with

members as (
    -- The surviving contact and every contact merged into it share consent: the most recent consent
    -- decision of any of them wins, and an opt-out wins a tie (a person who said no is never mailed).
    select
        coalesce(c.surviving_contact_id, c.k_contact_id) as contact_id,
        c.c_consent,
        c.consent_ts,
        staging.try_bigint(c.shop_customer_id) as customer_id
    from _checked as c
    where c.disposition in ('staged', 'merged')
),

consent as (
    select distinct on (m.contact_id)
        m.contact_id,
        m.c_consent as consent_status,
        m.consent_ts as consent_updated_at
    from members as m
    order by m.contact_id asc, m.consent_ts desc nulls last, (m.c_consent = 'opted_out') desc
),

linked as (
    select
        m.contact_id,
        min(m.customer_id) as customer_id
    from members as m
    group by m.contact_id
),

final as (
    select
        c.k_contact_id as contact_id,
        lower(c.t_email) as email,
        c.c_first_name as first_name,
        c.c_last_name as last_name,
        c.c_birthday as birthday,
        c.c_country as country,
        c.c_timezone as timezone,
        consent.consent_status,
        consent.consent_updated_at,
        lower(nullif(trim(c.lifecycle_status), '')) as lifecycle_status,
        coalesce(staging.try_bigint(c.shop_customer_id), linked.customer_id) as customer_id,
        c.created_ts as created_at,
        c.updated_ts as updated_at,
        lower(nullif(trim(c.lead_source), '')) as lead_source,
        case when trim(c.page_views) ~ '^[0-9]{1,9}$' then trim(c.page_views)::integer end as page_views,
        case when trim(c.email_opens) ~ '^[0-9]{1,9}$' then trim(c.email_opens)::integer end as email_opens,
        case when trim(c.form_submissions) ~ '^[0-9]{1,9}$' then trim(c.form_submissions)::integer end
            as form_submissions,
        null::text as derived_from,
        c.c_region as region,
        c.c_language as language
    from _checked as c
    inner join consent on c.k_contact_id = consent.contact_id
    inner join linked on c.k_contact_id = linked.contact_id
    where c.disposition = 'staged'
)

select * from final
;;
select staging.finish_checked('staging.contacts', 'raw.crm_contacts', %(run_date)s, %(run_ts)s)
;;
-- Shop export files only: the live customers become the contacts (staging.contacts_from_customers).
select staging.contacts_from_customers(%(run_ts)s)
;;
-- Column comments of staging.contacts (the create table above lists its columns).
comment on column staging.contacts.birthday is 'Date of birth (null when impossible) (personal data)'
;;
comment on column staging.contacts.consent_status is 'opted_in, double_opt_in, opted_out or unknown (latest decision of merged contacts)'
;;
comment on column staging.contacts.consent_updated_at is 'When that consent was given or withdrawn'
;;
comment on column staging.contacts.contact_id is 'CRM contact id (HubSpot contacts: hubspot:<id>)'
;;
comment on column staging.contacts.country is 'ISO country code (null when unknown)'
;;
comment on column staging.contacts.created_at is 'When the CRM created the contact'
;;
comment on column staging.contacts.customer_id is 'Shop customer id (null for leads)'
;;
comment on column staging.contacts.email is 'E-mail address, trimmed and lower case (personal data)'
;;
comment on column staging.contacts.first_name is 'First name (personal data)'
;;
comment on column staging.contacts.last_name is 'Last name (personal data)'
;;
comment on column staging.contacts.lifecycle_status is 'CRM lifecycle stage, lower case'
;;
comment on column staging.contacts.region is 'ISO 3166-2 region within the country (null when unknown or not in the country)'
;;
comment on column staging.contacts.language is 'Preferred language, ISO 639-1 lower case (null when unknown)'
;;
comment on column staging.contacts.timezone is 'IANA time zone (null when unknown)'
;;
comment on column staging.contacts.updated_at is 'Last change in the CRM'
