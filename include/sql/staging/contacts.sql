-- grain: one row per CRM contact (latest version received)
-- materialized: model
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
    form_submissions integer -- Lead activity: forms submitted
)
;;
alter table staging.contacts add column if not exists lead_source text
;;
alter table staging.contacts add column if not exists page_views integer
;;
alter table staging.contacts add column if not exists email_opens integer
;;
alter table staging.contacts add column if not exists form_submissions integer
;;
truncate staging.contacts
;;
insert into staging.contacts
with

source as (
    select * from raw.crm_contacts
    where _loaded_at <= %(run_ts)s
),

latest as (
    select distinct on (trim(contact_id))
        trim(contact_id) as contact_id,
        nullif(lower(trim(email)), '') as email,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        birthday::date as birthday,
        upper(nullif(trim(country), '')) as country,
        nullif(trim(timezone), '') as timezone,
        coalesce(lower(nullif(trim(consent_status), '')), 'unknown') as consent_status,
        consent_updated_at::timestamptz as consent_updated_at,
        lower(nullif(trim(lifecycle_status), '')) as lifecycle_status,
        nullif(trim(shop_customer_id), '')::bigint as customer_id,
        created_at::timestamptz as created_at,
        updated_at::timestamptz as updated_at,
        lower(nullif(trim(lead_source), '')) as lead_source,
        case when trim(page_views) ~ '^[0-9]+$' then trim(page_views)::integer end as page_views,
        case when trim(email_opens) ~ '^[0-9]+$' then trim(email_opens)::integer end as email_opens,
        case when trim(form_submissions) ~ '^[0-9]+$' then trim(form_submissions)::integer end
            as form_submissions
    from source
    order by trim(contact_id), updated_at::timestamptz desc, _loaded_at desc, _line_no desc
)

select * from latest
