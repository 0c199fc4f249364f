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
    updated_at timestamptz
)
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
        updated_at::timestamptz as updated_at
    from source
    order by trim(contact_id), updated_at::timestamptz desc, _loaded_at desc, _line_no desc
)

select * from latest
