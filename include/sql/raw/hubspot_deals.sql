-- grain: one row per HubSpot deal version received in a batch
-- materialized: table
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
    payload jsonb not null, -- the search result object as received
    _batch_id text not null, -- Ingest batch that landed the row (raw.ingest_batches.batch_id)
    _source text not null, -- Source that sent the row, as named in include/sources.yml
    _loaded_at timestamptz not null -- When its batch landed; staging reads the rows landed up to its run's cutoff
)
;;
create index if not exists hubspot_deals__batch on raw.hubspot_deals (_batch_id)
;;
create index if not exists hubspot_deals__version on raw.hubspot_deals (deal_id, hs_lastmodifieddate)
