-- grain: one row per line of a CRM contacts export file, as received
-- materialized: table
-- lineage: file
-- Landing table for CRM exports: text columns as in the file, plus where each row came from.
create table if not exists raw.crm_contacts (
    contact_id text, -- CRM contact id
    email text, -- E-mail address (personal data)
    first_name text, -- First name (personal data)
    last_name text, -- Last name (personal data)
    birthday text, -- Date of birth (personal data)
    country text, -- Country code
    timezone text, -- IANA time zone name
    consent_status text, -- Marketing consent: opted_in, double_opt_in, opted_out, unknown
    consent_updated_at text, -- When the consent was last given or withdrawn
    lifecycle_status text, -- CRM lifecycle stage
    shop_customer_id text, -- The contact's shop customer id (null for leads)
    created_at text, -- When the CRM created the contact
    updated_at text, -- Last change in the CRM; the newest version wins in staging
    lead_source text, -- How the lead came in
    page_views text, -- Lead activity: web page views
    email_opens text, -- Lead activity: marketing e-mails opened
    form_submissions text, -- Lead activity: forms submitted
    region text, -- ISO 3166-2 region code (e.g. DE-BY), optional export column
    language text -- Preferred language, ISO 639-1 (e.g. de), optional export column
)
;;
-- Warehouses created before these export columns existed get them once (a no-op afterwards).
alter table raw.crm_contacts
add column if not exists lead_source text, add column if not exists page_views text,
add column if not exists email_opens text, add column if not exists form_submissions text,
add column if not exists region text, add column if not exists language text
