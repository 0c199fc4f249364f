-- grain: one row per HubSpot deal version received in a batch
-- materialized: table
-- Landing table for the HubSpot CRM v3 search API (deals): text as received plus the whole object in
-- payload. A version is (deal_id, hs_lastmodifieddate).
create table if not exists raw.hubspot_deals (
    deal_id text, -- HubSpot record id (hs_object_id)
    dealname text,
    amount text,
    dealstage text,
    pipeline text,
    closedate text,
    createdate text,
    hs_lastmodifieddate text, -- ISO 8601 UTC; the incremental pull's cursor
    archived text,
    payload jsonb not null, -- the search result object as received
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists hubspot_deals__batch on raw.hubspot_deals (_batch_id)
;;
create index if not exists hubspot_deals__version on raw.hubspot_deals (deal_id, hs_lastmodifieddate)
