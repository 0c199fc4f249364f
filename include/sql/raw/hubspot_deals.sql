-- grain: one row per HubSpot deal version received in a batch
-- materialized: table
-- lineage: batch
-- Landing table for the HubSpot CRM v3 search API (deals): text as received plus the whole object in
-- payload. A version is (deal_id, hs_lastmodifieddate).
create table if not exists raw.hubspot_deals (
    deal_id text, -- HubSpot record id (hs_object_id)
    dealname text, -- Deal name
    amount text, -- Deal amount
    dealstage text, -- Deal stage
    pipeline text, -- Sales pipeline
    closedate text, -- Expected or actual close date
    createdate text, -- When HubSpot created the deal
    hs_lastmodifieddate text, -- ISO 8601 UTC; the incremental pull's cursor
    archived text, -- 'true' for an archived record
    payload jsonb not null -- the search result object as received
)
;;
create index if not exists hubspot_deals__version on raw.hubspot_deals (deal_id, hs_lastmodifieddate)
