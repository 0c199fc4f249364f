-- materialized: functions
-- Rows a staging model makes from another staging table instead of from raw rows (marked by their
-- derived_from column; martech.staging.accounting.DERIVED counts what they must be).

-- Without any CRM export or HubSpot contact received by the run's cutoff (shop export files only), every
-- live shop customer becomes a contact of its own, 'shop:<customer_id>', so that the customer 360, the
-- lifecycle and the audiences are built. The shop's files carry no consent: the contacts are 'unknown',
-- which every campaign excludes (martech.staging.contacts says so in the run's summary). One contact per
-- customer is one per address, as staging.customers merges a person registered twice. Returns the rows
-- made; none when staging.customers does not exist yet (a model rebuilt on its own).
create or replace function staging.contacts_from_customers(p_run_ts timestamptz) returns bigint
language plpgsql as $$
declare
    n bigint := 0;
begin
    if to_regclass('staging.customers') is null
       or exists (select 1 from raw.crm_contacts as r where r._loaded_at <= p_run_ts)
       or exists (select 1 from raw.hubspot_contacts as h where h._loaded_at <= p_run_ts) then
        return 0;
    end if;
    insert into staging.contacts (
        contact_id, email, first_name, last_name, birthday, country, timezone, consent_status,
        consent_updated_at, lifecycle_status, customer_id, created_at, updated_at, lead_source, page_views,
        email_opens, form_submissions, derived_from)
    select
        'shop:' || cu.customer_id::text, cu.email, left(cu.first_name, 200), left(cu.last_name, 200), null,
        rc.country_code, null, 'unknown', null, 'customer', cu.customer_id, cu.created_at, cu.updated_at,
        null, null, null, null, 'staging.customers'
    from staging.customers as cu
    left join staging.ref_countries as rc on cu.country = rc.country_code
    where not cu.is_deleted;
    get diagnostics n = row_count;
    return n;
end
$$
