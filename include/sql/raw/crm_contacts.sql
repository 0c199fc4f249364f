-- grain: one row per line of a CRM contacts export file, as received
-- materialized: table
-- Landing table for CRM exports: text columns as in the file, plus where each row came from.
create table if not exists raw.crm_contacts (
    contact_id text,
    email text,
    first_name text,
    last_name text,
    birthday text,
    country text,
    timezone text,
    consent_status text,
    consent_updated_at text,
    lifecycle_status text,
    shop_customer_id text,
    created_at text,
    updated_at text,
    lead_source text,
    page_views text,
    email_opens text,
    form_submissions text,
    _source_file text not null,
    _line_no integer not null,
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists crm_contacts__batch on raw.crm_contacts (_batch_id)
;;
alter table raw.crm_contacts add column if not exists lead_source text
;;
alter table raw.crm_contacts add column if not exists page_views text
;;
alter table raw.crm_contacts add column if not exists email_opens text
;;
alter table raw.crm_contacts add column if not exists form_submissions text
