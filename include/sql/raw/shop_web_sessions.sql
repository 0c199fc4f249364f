-- grain: one row per web session version received in a batch
-- materialized: table
-- lineage: batch
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_web_sessions (
    session_id text, -- Tracker's session id
    customer_id text, -- Logged-in shop customer
    contact_id text, -- CRM contact identified by an e-mail click
    started_at text, -- First hit
    ended_at text, -- Last hit
    page_views text, -- Pages viewed
    product_views text, -- Product pages viewed
    updated_at text -- Last change in the shop
)
