-- grain: one row per HubSpot contact version received in a batch
-- materialized: table
-- lineage: batch
-- Landing table for the HubSpot CRM v3 search API: the properties staging needs as text, exactly as
-- received, plus the whole object in payload. A version is (contact_id, lastmodifieddate); the pull's
-- watermark makes each version land once.
create table if not exists raw.hubspot_contacts (
    contact_id text, -- HubSpot record id (hs_object_id)
    email text, -- E-mail address (personal data)
    firstname text, -- First name (personal data)
    lastname text, -- Last name (personal data)
    country text, -- Country
    lifecyclestage text, -- HubSpot lifecycle stage
    hs_lead_status text, -- HubSpot lead status (NEW, OPEN, IN_PROGRESS, ...)
    hs_email_optout text, -- 'true' when the contact opted out of all marketing e-mail
    createdate text, -- When HubSpot created the record
    lastmodifieddate text, -- ISO 8601 UTC; the incremental pull's cursor
    archived text, -- 'true' for an archived record
    payload jsonb not null -- the search result object as received (id, properties, createdAt, updatedAt, archived)
)
;;
-- Warehouses created before the lead status was pulled get the column once (a no-op afterwards).
alter table raw.hubspot_contacts add column if not exists hs_lead_status text
;;
create index if not exists hubspot_contacts__version on raw.hubspot_contacts (contact_id, lastmodifieddate)
